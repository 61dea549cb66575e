"""Differentiable filters shared by the fusion loss terms (2D and 3D): Gaussian local statistics and Sobel magnitude."""

from __future__ import annotations

import torch

from monai.networks.layers import separable_filtering
from monai.transforms import SobelGradients

__all__ = [
    "gaussian_window",
    "gaussian_smooth",
    "local_mean_std",
    "sobel_components",
    "sobel_magnitude",
    "crop_border",
]


def gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1D Gaussian of odd length ``size`` (the window MONAI's SSIM uses), shape ``(size,)``."""
    dist = torch.arange(start=(1 - size) / 2, end=(1 + size) / 2, step=1.0)
    gauss = torch.exp(-0.5 * (dist / sigma) ** 2)
    return gauss / gauss.sum()


def crop_border(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Remove ``radius`` voxels on each side of every spatial dimension of ``x`` (N, C, *spatial)."""
    if radius == 0:
        return x
    return x[(slice(None), slice(None)) + (slice(radius, -radius),) * (x.ndim - 2)]


def gaussian_smooth(x: torch.Tensor, size: int, sigma: float, valid: bool = False) -> torch.Tensor:
    """Separable Gaussian smoothing of ``x`` (N, C, *spatial) per channel.

    Args:
        x: input ``(N, C, H, W[, D])``.
        size: odd window length.
        sigma: Gaussian standard deviation.
        valid: return only the voxels whose window lies inside the image (size ``n - size + 1`` per dimension, as a
            convolution without padding); otherwise the border is replicated and the size kept.
    """
    kernel = gaussian_window(size, sigma).to(x)
    smoothed = separable_filtering(x, [kernel] * (x.ndim - 2), mode="replicate")
    return crop_border(smoothed, size // 2) if valid else smoothed


def local_mean_std(
    x: torch.Tensor, size: int, sigma: float, valid: bool = False, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-weighted local mean and standard deviation ``sqrt(var + eps)`` of ``x`` (N, C, *spatial).

    See :func:`gaussian_smooth` for ``size``, ``sigma`` and ``valid``.
    """
    mean = gaussian_smooth(x, size, sigma, valid)
    var = (gaussian_smooth(x * x, size, sigma, valid) - mean * mean).clamp_min(0.0)
    return mean, torch.sqrt(var + eps)


def sobel_components(x: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Sobel derivatives of ``x`` (N, C, *spatial) along every spatial axis, stacked: ``(N, C, spatial_dims, *spatial)``.

    Uses MONAI's normalised Sobel kernels (:class:`monai.transforms.SobelGradients`: derivative ``[-1, 0, 1] / 2``,
    smoothing ``[1, 2, 1] / 4``), so a unit step gives 0.5 per axis; borders are replicated.
    """
    sobel = SobelGradients(kernel_size=kernel_size)
    diff, smooth = sobel.kernel_diff.to(x), sobel.kernel_smooth.to(x)
    spatial_dims = x.ndim - 2
    components = []
    for axis in range(spatial_dims):
        kernels = [smooth] * spatial_dims
        kernels[axis] = diff
        components.append(separable_filtering(x, kernels, mode="replicate"))
    return torch.stack(components, dim=2)


def sobel_magnitude(x: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """L1 gradient magnitude ``sum_axis |Sobel_axis(x)|`` of ``x`` (N, C, *spatial), per channel, 2D or 3D (the
    components of :func:`sobel_components`)."""
    return sobel_components(x, kernel_size).abs().sum(dim=2)
