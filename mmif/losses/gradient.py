"""Gradient (detail) term of the fusion loss."""

from __future__ import annotations

import torch

from monai.utils import LossReduction

from mmif.losses.base import FusionTermLoss, voxel_mean
from mmif.losses.filters import sobel_magnitude

__all__ = ["GradientLoss"]


class GradientLoss(FusionTermLoss):
    """Mean absolute difference between the fused image's Sobel magnitude and the largest of the sources' magnitudes.

    The magnitude is the L1 norm of the Sobel derivatives along every spatial axis (2D or 3D Sobel, see
    :func:`mmif.losses.filters.sobel_magnitude`), so the fused image is pushed to keep the strongest edge of any source.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        kernel_size: odd Sobel kernel size (>= 3).
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def __init__(
        self, spatial_dims: int = 2, kernel_size: int = 3, reduction: LossReduction | str = LossReduction.MEAN
    ) -> None:
        super().__init__(spatial_dims, reduction)
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"{type(self).__name__}: kernel_size must be odd and >= 3, got {kernel_size}.")
        self.kernel_size = kernel_size

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        target = sobel_magnitude(sources, self.kernel_size).amax(dim=1, keepdim=True)
        return voxel_mean((sobel_magnitude(fused, self.kernel_size) - target).abs())
