"""Gaussian and Laplacian pyramids in torch, for 2D and 3D images (Burt & Adelson, 1983).

The filters follow OpenCV's ``pyrDown``/``pyrUp``: the separable 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16`` with
mirror borders (``BORDER_REFLECT_101`` = torch ``"reflect"``). ``pyr_down`` blurs and keeps every second sample
(size ``ceil(n / 2)``); ``pyr_up`` inserts zeros, blurs with ``2 ** spatial_dims`` times the kernel and crops to the
requested size, so odd sizes need no padding of the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import separable_filtering

__all__ = ["BINOMIAL_KERNEL", "pyr_down", "pyr_up", "max_pyramid_levels", "laplacian_pyramid", "reconstruct_laplacian"]

#: the 5-tap binomial (Gaussian-like) kernel of OpenCV's pyramids.
BINOMIAL_KERNEL = (1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16)


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    kernel = torch.tensor(BINOMIAL_KERNEL, dtype=x.dtype, device=x.device) * gain
    return separable_filtering(x, kernel, mode="reflect")


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur and subsample by 2 along every spatial dimension.

    Args:
        x: ``(B, C, *spatial)`` with every spatial size >= 3.

    Returns:
        ``(B, C, *ceil(spatial / 2))``.
    """
    blurred = _blur(x)
    return blurred[(..., *[slice(None, None, 2)] * (x.ndim - 2))]


def pyr_up(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Upsample by 2 (zero insertion + blur) to ``size``.

    Args:
        x: ``(B, C, *spatial)``.
        size: the target spatial size, each ``2 * n`` or ``2 * n - 1`` for an input size ``n`` (the size of the level
            that ``x`` was reduced from).

    Returns:
        ``(B, C, *size)``.
    """
    spatial_dims = x.ndim - 2
    up = x.new_zeros((*x.shape[:2], *[2 * s for s in x.shape[2:]]))
    up[(..., *[slice(None, None, 2)] * spatial_dims)] = x
    up = _blur(up, gain=2.0)
    return up[(..., *[slice(0, int(s)) for s in size])]


def max_pyramid_levels(spatial_size: Sequence[int]) -> int:
    """How many times an image can be reduced by :func:`pyr_down` (each reduced level must be >= 3 in every dim)."""
    levels, size = 0, list(spatial_size)
    while min(size) >= 3:
        size = [(s + 1) // 2 for s in size]
        levels += 1
    return levels


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Decompose into ``levels`` band-pass (detail) images and one low-pass base image.

    Args:
        x: ``(B, C, *spatial)``.
        levels: number of detail bands (reductions); at most :func:`max_pyramid_levels` of the spatial size.

    Returns:
        ``[L_0, ..., L_{levels-1}, G_levels]``: ``L_i`` has the size of the ``i``-th Gaussian level (``L_0`` full size),
        ``G_levels`` is the coarsest Gaussian level. :func:`reconstruct_laplacian` inverts it exactly.
    """
    bands, current = [], x
    for _ in range(levels):
        low = pyr_down(current)
        bands.append(current - pyr_up(low, current.shape[2:]))
        current = low
    bands.append(current)
    return bands


def reconstruct_laplacian(bands: Sequence[torch.Tensor]) -> torch.Tensor:
    """Collapse a pyramid from :func:`laplacian_pyramid`: upsample the base and add the details, coarse to fine."""
    x = bands[-1]
    for detail in reversed(bands[:-1]):
        x = pyr_up(x, detail.shape[2:]) + detail
    return x
