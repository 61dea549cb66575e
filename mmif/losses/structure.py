"""Structure term of the fusion loss: SSIM against the locally more structured source."""

from __future__ import annotations

import torch

from monai.metrics.regression import compute_ssim_and_cs
from monai.utils import LossReduction

from mmif.losses.base import FusionTermLoss, voxel_mean
from mmif.losses.filters import local_mean_std

__all__ = ["StructureLoss"]


class StructureLoss(FusionTermLoss):
    """``1 - mean SSIM`` between the fused image and, per voxel, the source with the largest local standard deviation.

    The SSIM maps of the fused image against every source come from MONAI's
    :func:`monai.metrics.regression.compute_ssim_and_cs` (Gaussian window, no padding; 2D or 3D). At each window
    position the map of the source with the largest local standard deviation (same window) is kept, so the fused image
    is compared with the locally more structured source. ``component="cs"`` uses only the contrast-structure factor
    (leaving brightness to :class:`~mmif.losses.IntensityLoss`), ``"ssim"`` the full SSIM.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3 (3D: consider ``win_size=7`` for speed).
        win_size: odd Gaussian window length; inputs must be at least this large.
        kernel_sigma: Gaussian standard deviation.
        component: ``"cs"`` or ``"ssim"``.
        k1: SSIM luminance stability constant.
        k2: SSIM contrast stability constant.
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        win_size: int = 11,
        kernel_sigma: float = 1.5,
        component: str = "cs",
        k1: float = 0.01,
        k2: float = 0.03,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(spatial_dims, reduction)
        name = type(self).__name__
        if win_size < 3 or win_size % 2 == 0 or kernel_sigma <= 0:
            raise ValueError(f"{name}: need an odd win_size >= 3 and kernel_sigma > 0.")
        if component not in ("cs", "ssim"):
            raise ValueError(f"{name}: component must be 'cs' or 'ssim', got {component!r}.")
        self.win_size = win_size
        self.kernel_sigma = float(kernel_sigma)
        self.component = component
        self.k1 = k1
        self.k2 = k2

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        if min(fused.shape[2:]) < self.win_size:
            raise ValueError(
                f"{type(self).__name__}: spatial size {tuple(fused.shape[2:])} is smaller than win_size "
                f"{self.win_size}."
            )
        ssim, cs = compute_ssim_and_cs(
            fused.expand_as(sources),
            sources,
            spatial_dims=self.spatial_dims,
            kernel_size=[self.win_size] * self.spatial_dims,
            kernel_sigma=[self.kernel_sigma] * self.spatial_dims,
            data_range=1.0,
            k1=self.k1,
            k2=self.k2,
        )
        maps = cs if self.component == "cs" else ssim
        _, std = local_mean_std(sources, self.win_size, self.kernel_sigma, valid=True)
        chosen = maps.gather(1, std.argmax(dim=1, keepdim=True))
        return 1.0 - voxel_mean(chosen)
