"""Multi-level n-D discrete wavelet transform of batches, through PyWavelets.

:func:`pywt.wavedecn` / :func:`pywt.waverecn` transform along the given axes and loop over the others in C, so a whole
``(B, M, *spatial)`` batch goes through one call, in 2D and 3D alike. The default ``"periodization"`` mode keeps every
level at ``ceil(n / 2)`` samples and reconstructs odd sizes exactly (the result is cropped back to the input size).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pywt
import torch

__all__ = ["max_wavelet_levels", "fuse_wavelet_coefficients"]

Rule = Callable[[np.ndarray], np.ndarray]


def max_wavelet_levels(spatial_size: tuple[int, ...], wavelet: str) -> int:
    """The deepest useful decomposition level for ``spatial_size`` (PyWavelets' ``dwtn_max_level``), at least 1."""
    return max(1, pywt.dwtn_max_level(spatial_size, wavelet))


def fuse_wavelet_coefficients(
    image: torch.Tensor, wavelet: str, levels: int, mode: str, approx_rule: Rule, detail_rule: Rule
) -> torch.Tensor:
    """Decompose every source, fuse the coefficients with the given rules and reconstruct.

    Args:
        image: ``(B, M, *spatial)`` sources.
        wavelet: a PyWavelets wavelet name (``"db2"``, ``"haar"``, ...).
        levels: decomposition levels.
        mode: PyWavelets signal extension mode.
        approx_rule: ``(B, M, *s) -> (B, 1, *s)`` rule for the approximation (low-pass) coefficients.
        detail_rule: the same for every detail sub-band.

    Returns:
        ``(B, 1, *spatial)`` on the device and dtype of ``image``.
    """
    spatial = tuple(image.shape[2:])
    axes = tuple(range(2, image.ndim))
    arr = image.detach().cpu().numpy()
    with warnings.catch_warnings():
        # images smaller than the filter get level 1 anyway; the transform stays invertible, only boundary-affected
        warnings.filterwarnings("ignore", message="Level value of .* is too high", category=UserWarning)
        coeffs = pywt.wavedecn(arr, wavelet, mode=mode, level=levels, axes=axes)
    fused = [approx_rule(coeffs[0])]
    for bands in coeffs[1:]:
        fused.append({key: detail_rule(band) for key, band in bands.items()})
    out = pywt.waverecn(fused, wavelet, mode=mode, axes=axes)
    out = out[(..., *[slice(0, s) for s in spatial])]
    return torch.as_tensor(np.ascontiguousarray(out), device=image.device, dtype=image.dtype)
