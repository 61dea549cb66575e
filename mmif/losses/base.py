"""Shared base of the fusion loss terms: shape checks and per-sample reduction."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from monai.utils import LossReduction

__all__ = ["FusionTermLoss", "check_fusion_inputs", "reduce_per_sample", "voxel_mean"]


def check_fusion_inputs(fused: torch.Tensor, sources: torch.Tensor, spatial_dims: int, owner: str) -> None:
    """Raise ``ValueError`` unless ``fused`` is ``(B, 1, *spatial)`` and ``sources`` is ``(B, M, *spatial)``."""
    if fused.ndim != spatial_dims + 2 or fused.shape[1] != 1:
        raise ValueError(
            f"{owner}: fused must be (B, 1, *spatial) with {spatial_dims} spatial dims, got {tuple(fused.shape)}."
        )
    if sources.ndim != fused.ndim or sources.shape[0] != fused.shape[0] or sources.shape[2:] != fused.shape[2:]:
        raise ValueError(
            f"{owner}: sources must be (B, M, *spatial) matching fused {tuple(fused.shape)}, "
            f"got {tuple(sources.shape)}."
        )
    if sources.shape[1] < 1:
        raise ValueError(f"{owner}: sources need at least one channel.")


def reduce_per_sample(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-sample values ``(B,)``: ``"mean"``/``"sum"`` over the batch, ``"none"`` returns them unchanged."""
    if reduction == LossReduction.MEAN.value:
        return values.mean()
    if reduction == LossReduction.SUM.value:
        return values.sum()
    return values


class FusionTermLoss(_Loss):
    """Base of a fusion loss term: ``forward(fused, sources)`` -> per-sample values reduced by ``reduction``.

    Subclasses implement :meth:`per_sample`, which returns one value per batch item ``(B,)`` (a mean over voxels).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"`` for the per-sample values ``(B,)``.
    """

    def __init__(self, spatial_dims: int = 2, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if spatial_dims not in (2, 3):
            raise ValueError(f"{type(self).__name__}: spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """
        Args:
            fused: ``(B, 1, H, W[, D])`` fused luminance in [0, 1].
            sources: ``(B, M, H, W[, D])`` source luminance in [0, 1], one channel per modality.

        Returns:
            the loss: a scalar, or ``(B,)`` for ``reduction="none"``.
        """
        check_fusion_inputs(fused, sources, self.spatial_dims, type(self).__name__)
        return reduce_per_sample(self.per_sample(fused, sources), self.reduction)


def voxel_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the batch: ``(B, ...)`` -> ``(B,)``."""
    return x.flatten(1).mean(dim=1)
