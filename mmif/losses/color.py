"""Colour term of the fusion loss: the fused luminance must keep the functional image's chroma inside the RGB gamut."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from monai.utils import LossReduction

from mmif.losses.base import reduce_per_sample, voxel_mean
from mmif.transforms.color import ycbcr_to_rgb

__all__ = ["ColorGamutLoss"]


class ColorGamutLoss(_Loss):
    """Penalises fused luminance that, recombined with the colour source's Cb/Cr, leaves the [0, 1] RGB gamut.

    The output image is ``RGB(fused Y, Cb, Cr)`` (BT.601, :func:`mmif.transforms.color.ycbcr_to_rgb` with
    ``clip=False``). Values outside [0, 1] get clipped when saved, which shifts the hue of PET/SPECT colours; the loss
    is the mean distance of R, G, B to [0, 1] (``relu(-v) + relu(v - 1)``). Grey samples (``is_color`` false) give 0.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def __init__(self, spatial_dims: int = 2, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if spatial_dims not in (2, 3):
            raise ValueError(f"{type(self).__name__}: spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims

    def per_sample(
        self, fused: torch.Tensor, chroma: torch.Tensor, is_color: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-sample gamut violation ``(B,)``; see :meth:`forward` for the arguments."""
        name = type(self).__name__
        if fused.ndim != self.spatial_dims + 2 or fused.shape[1] != 1:
            raise ValueError(f"{name}: fused must be (B, 1, *spatial), got {tuple(fused.shape)}.")
        if chroma.shape != (fused.shape[0], 2, *fused.shape[2:]):
            raise ValueError(f"{name}: chroma must be (B, 2, *spatial) matching fused, got {tuple(chroma.shape)}.")
        rgb = ycbcr_to_rgb(torch.cat([fused, chroma.to(fused)], dim=1), channel_dim=1, clip=False)
        violation = voxel_mean(torch.relu(-rgb) + torch.relu(rgb - 1.0))
        if is_color is None:
            return violation
        is_color = torch.as_tensor(is_color, device=fused.device).reshape(-1)
        if is_color.shape[0] != fused.shape[0]:
            raise ValueError(
                f"{name}: is_color must have one value per sample ({fused.shape[0]}), got {tuple(is_color.shape)}."
            )
        return violation * is_color.to(violation.dtype)

    def forward(self, fused: torch.Tensor, chroma: torch.Tensor, is_color: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            fused: ``(B, 1, H, W[, D])`` fused luminance.
            chroma: ``(B, 2, H, W[, D])`` Cb, Cr of the colour source in [0, 1] (0.5 = neutral).
            is_color: ``(B,)`` bool/0-1, which samples have a colour source; ``None`` treats all as colour (neutral
                chroma is in gamut for any Y in [0, 1] anyway).

        Returns:
            the loss: a scalar, or ``(B,)`` for ``reduction="none"``.
        """
        return reduce_per_sample(self.per_sample(fused, chroma, is_color), self.reduction)
