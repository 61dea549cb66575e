"""Contrast term of the fusion loss."""

from __future__ import annotations

import torch

from monai.utils import LossReduction

from mmif.losses.base import FusionTermLoss, voxel_mean
from mmif.losses.filters import local_mean_std

__all__ = ["ContrastLoss"]


class ContrastLoss(FusionTermLoss):
    """Mean absolute difference between the fused image's local standard deviation and the largest of the sources'.

    Local statistics use a Gaussian window (as in SSIM) with replicated borders.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        win_size: odd Gaussian window length.
        kernel_sigma: Gaussian standard deviation.
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        win_size: int = 11,
        kernel_sigma: float = 1.5,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(spatial_dims, reduction)
        if win_size < 3 or win_size % 2 == 0 or kernel_sigma <= 0:
            raise ValueError(f"{type(self).__name__}: need an odd win_size >= 3 and kernel_sigma > 0.")
        self.win_size = win_size
        self.kernel_sigma = float(kernel_sigma)

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        _, target = local_mean_std(sources, self.win_size, self.kernel_sigma)
        _, std = local_mean_std(fused, self.win_size, self.kernel_sigma)
        return voxel_mean((std - target.amax(dim=1, keepdim=True)).abs())
