"""Hybrid fusion loss: weighted sum of the intensity, gradient, structure, contrast, colour and information terms."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from monai.utils import LossReduction

from mmif.losses.anatomy import AnatomyLoss, EdgeTransferLoss
from mmif.losses.base import check_fusion_inputs, reduce_per_sample
from mmif.losses.color import ColorGamutLoss
from mmif.losses.contrast import ContrastLoss
from mmif.losses.gradient import GradientLoss
from mmif.losses.information import InformationLoss
from mmif.losses.intensity import IntensityLoss
from mmif.losses.structure import StructureLoss

__all__ = ["FusionLoss"]


class FusionLoss(_Loss):
    """Hybrid loss of a fused image against its sources, balancing brightness, detail, structure, contrast and colour.

    ``total = sum_k weight_k * term_k`` with the terms :class:`~mmif.losses.IntensityLoss` (``"intensity"``),
    :class:`~mmif.losses.GradientLoss` (``"gradient"``), :class:`~mmif.losses.StructureLoss` (``"structure"``),
    :class:`~mmif.losses.ContrastLoss` (``"contrast"``), :class:`~mmif.losses.ColorGamutLoss` (``"color"``, only
    when ``chroma`` is given), :class:`~mmif.losses.InformationLoss` (``"information"``, off by default) and
    :class:`~mmif.losses.AnatomyLoss` (``"anatomy"``, the MRI's edges where a functional source outshines it; off by
    default) and :class:`~mmif.losses.EdgeTransferLoss` (``"edge"``, every source's edges, a differentiable Q^{AB/F};
    off by default). Terms
    with weight 0 are not computed. After each call, :attr:`last_terms` holds the unweighted, reduced, detached value
    of every term (0 for skipped ones), for logging.

    ``forward(fused, sources)`` is the MONAI ``SupervisedTrainer`` call ``loss_function(pred, targets)`` with the
    channel-stacked sources as targets; the colour term needs ``chroma``/``is_color`` passed by keyword.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        intensity_weight: weight of the intensity term.
        gradient_weight: weight of the gradient (detail) term.
        structure_weight: weight of the structure (SSIM) term.
        contrast_weight: weight of the contrast term.
        color_weight: weight of the colour-gamut term.
        information_weight: weight of the information (normalised mutual information) term.
        anatomy_weight: weight of the anatomy term.
        edge_weight: weight of the edge-transfer term.
        intensity_target: ``"max"`` or ``"saliency"`` (see :class:`~mmif.losses.IntensityLoss`).
        intensity_lowpass_sigma: ``None`` or the sigma of the low-pass under which the intensity term compares (see
            :class:`~mmif.losses.IntensityLoss`).
        win_size: odd Gaussian window of the structure and contrast terms (inputs must be at least this large when the
            structure term is on).
        kernel_sigma: Gaussian sigma of that window.
        structure_component: ``"cs"`` or ``"ssim"`` (see :class:`~mmif.losses.StructureLoss`).
        information_bins: Parzen bins of the information term (see :class:`~mmif.losses.InformationLoss`).
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for per-sample values ``(B,)``.
    """

    TERMS = ("intensity", "gradient", "structure", "contrast", "color", "information", "anatomy", "edge")

    def __init__(
        self,
        spatial_dims: int = 2,
        intensity_weight: float = 1.0,
        gradient_weight: float = 2.0,
        structure_weight: float = 0.5,
        contrast_weight: float = 1.0,
        color_weight: float = 1.0,
        information_weight: float = 0.0,
        anatomy_weight: float = 0.0,
        edge_weight: float = 0.0,
        intensity_target: str = "max",
        intensity_lowpass_sigma: float | None = None,
        win_size: int = 11,
        kernel_sigma: float = 1.5,
        structure_component: str = "cs",
        information_bins: int = 32,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        name = type(self).__name__
        weights = dict(
            zip(
                self.TERMS,
                (
                    intensity_weight,
                    gradient_weight,
                    structure_weight,
                    contrast_weight,
                    color_weight,
                    information_weight,
                    anatomy_weight,
                    edge_weight,
                ),
            )
        )
        if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
            raise ValueError(f"{name}: weights must be >= 0 and at least one > 0, got {weights}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"{name}: spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.weights = {k: float(w) for k, w in weights.items()}
        none = LossReduction.NONE
        self.intensity = IntensityLoss(
            spatial_dims, target=intensity_target, lowpass_sigma=intensity_lowpass_sigma, reduction=none
        )
        self.gradient = GradientLoss(spatial_dims, reduction=none)
        self.structure = StructureLoss(
            spatial_dims, win_size=win_size, kernel_sigma=kernel_sigma, component=structure_component, reduction=none
        )
        self.contrast = ContrastLoss(spatial_dims, win_size=win_size, kernel_sigma=kernel_sigma, reduction=none)
        self.color = ColorGamutLoss(spatial_dims, reduction=none)
        self.information = InformationLoss(spatial_dims, num_bins=information_bins, reduction=none)
        self.anatomy = AnatomyLoss(spatial_dims, reduction=none)
        self.edge = EdgeTransferLoss(spatial_dims, reduction=none)
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(
        self,
        fused: torch.Tensor,
        sources: torch.Tensor,
        chroma: torch.Tensor | None = None,
        is_color: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            fused: ``(B, 1, H, W[, D])`` fused luminance in [0, 1].
            sources: ``(B, M, H, W[, D])`` source luminance in [0, 1].
            chroma: optional ``(B, 2, H, W[, D])`` Cb, Cr of the colour source (for the colour term).
            is_color: optional ``(B,)`` bool, which samples have a colour source (see
                :class:`~mmif.losses.ColorGamutLoss`).

        Returns:
            the weighted total: a scalar, or ``(B,)`` for ``reduction="none"``.
        """
        check_fusion_inputs(fused, sources, self.spatial_dims, type(self).__name__)
        total = fused.new_zeros(fused.shape[0])
        terms: dict[str, torch.Tensor] = {}
        for name in self.TERMS:
            weight = self.weights[name]
            if weight == 0 or (name == "color" and chroma is None):
                terms[name] = reduce_per_sample(fused.new_zeros(fused.shape[0]), self.reduction).detach()
                continue
            term = getattr(self, name)
            values = term.per_sample(fused, chroma, is_color) if name == "color" else term.per_sample(fused, sources)
            total = total + weight * values
            terms[name] = reduce_per_sample(values, self.reduction).detach()
        self.last_terms = terms
        return reduce_per_sample(total, self.reduction)
