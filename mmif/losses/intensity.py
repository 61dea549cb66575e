"""Intensity (brightness) term of the fusion loss."""

from __future__ import annotations

import math

import torch

from monai.utils import LossReduction

from mmif.losses.base import FusionTermLoss, voxel_mean
from mmif.losses.filters import gaussian_smooth

__all__ = ["IntensityLoss"]


class IntensityLoss(FusionTermLoss):
    """Mean absolute difference between the fused image and an intensity target built from the sources.

    With ``lowpass_sigma`` set, both the fused image and the sources are first blurred by a Gaussian of that sigma:
    the term then asks only the fused image's low-frequency brightness to follow the target (the function of a
    PET/SPECT source), leaving its detail free to carry another source's anatomy.

    Targets:

    - ``"max"``: the element-wise maximum of the sources (keeps the bright structures of every modality);
    - ``"saliency"``: a per-voxel weighted mean ``sum_m w_m S_m`` with ``w_m`` proportional to the Gaussian-smoothed
      absolute deviation of source ``m`` from its own mean (voxels that stand out in a source draw the target to it).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        target: ``"max"`` or ``"saliency"``.
        saliency_sigma: Gaussian sigma (voxels) of the saliency smoothing; the window is ``2 * ceil(3 sigma) + 1``.
        lowpass_sigma: ``None`` (compare the images themselves) or the Gaussian sigma (voxels) of the low-pass taken
            of the fused image and of the sources before they are compared.
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        target: str = "max",
        saliency_sigma: float = 3.0,
        lowpass_sigma: float | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(spatial_dims, reduction)
        if target not in ("max", "saliency"):
            raise ValueError(f"{type(self).__name__}: target must be 'max' or 'saliency', got {target!r}.")
        if saliency_sigma <= 0:
            raise ValueError(f"{type(self).__name__}: saliency_sigma must be positive, got {saliency_sigma}.")
        if lowpass_sigma is not None and not lowpass_sigma > 0:
            raise ValueError(f"{type(self).__name__}: lowpass_sigma must be positive or None, got {lowpass_sigma}.")
        self.target = target
        self.saliency_sigma = float(saliency_sigma)
        self.lowpass_sigma = None if lowpass_sigma is None else float(lowpass_sigma)

    def intensity_target(self, sources: torch.Tensor) -> torch.Tensor:
        """``sources`` (B, M, *spatial) -> target (B, 1, *spatial)."""
        if self.target == "max":
            return sources.amax(dim=1, keepdim=True)
        image_mean = sources.flatten(2).mean(dim=2).view(*sources.shape[:2], *(1,) * self.spatial_dims)
        deviation = (sources - image_mean).abs()
        size = 2 * math.ceil(3.0 * self.saliency_sigma) + 1
        saliency = gaussian_smooth(deviation, size, self.saliency_sigma) + 1e-6
        weights = saliency / saliency.sum(dim=1, keepdim=True)
        return (weights * sources).sum(dim=1, keepdim=True)

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        if self.lowpass_sigma is not None:
            size = 2 * math.ceil(3.0 * self.lowpass_sigma) + 1
            fused = gaussian_smooth(fused, size, self.lowpass_sigma)
            sources = gaussian_smooth(sources, size, self.lowpass_sigma)
        return voxel_mean((fused - self.intensity_target(sources)).abs())
