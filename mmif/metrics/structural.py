"""Structural similarity of the fused image with each source: SSIM and MS-SSIM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mmif.metrics._utils import FusionInputs, gaussian_taps, local_moments, pool_half, reduce_sources

__all__ = ["ssim", "ms_ssim", "MS_SSIM_WEIGHTS"]

#: the standard MS-SSIM scale weights (Wang, Simoncelli & Bovik, 2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _ssim(inp: FusionInputs, data_range: float = 2.0, win_size: int = 7, k1: float = 0.01, k2: float = 0.03,
          reduction: str = "sum") -> float:
    if win_size < 2 or win_size % 2 == 0:
        raise ValueError(f"ssim: win_size must be an odd number >= 3, got {win_size}")
    s = inp.require_sources("ssim")
    dims = inp.spatial_dims
    taps = (1.0 / win_size,) * win_size
    mu_f, ff = inp.cached(("moments_F", taps), lambda: local_moments(inp.fused, None, taps, dims, name="ssim"))
    npix = win_size**dims
    cov_norm = npix / (npix - 1.0)  # sample covariance, as skimage's default use_sample_covariance=True
    var_f = cov_norm * (ff - mu_f * mu_f)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    per_source = []
    for i in range(s.shape[0]):
        mu_s, ss, fs = local_moments(inp.fused, s[i], taps, dims, name="ssim")
        var_s = cov_norm * (ss - mu_s * mu_s)
        cov = cov_norm * (fs - mu_f * mu_s)
        smap = ((2 * mu_f * mu_s + c1) * (2 * cov + c2)) / ((mu_f * mu_f + mu_s * mu_s + c1) * (var_f + var_s + c2))
        per_source.append(smap.mean())
    return reduce_sources(torch.stack(per_source), reduction, "ssim")


def ssim(fused: Any, sources: Sequence[Any], data_range: float = 2.0, win_size: int = 7, k1: float = 0.01,
         k2: float = 0.03, reduction: str = "sum") -> float:
    """SSIM of ``F`` with each source, summed over the sources (scikit-image's ``structural_similarity``).

    .. math::

        \\mathrm{SSIM} = \\sum_{i=1}^{N} \\operatorname{mean}_{x}
            \\frac{(2\\mu_F\\mu_{S_i} + C_1)(2\\sigma_{F S_i} + C_2)}
                 {(\\mu_F^2 + \\mu_{S_i}^2 + C_1)(\\sigma_F^2 + \\sigma_{S_i}^2 + C_2)},
        \\qquad C_1 = (K_1 R)^2,\\; C_2 = (K_2 R)^2

    with uniform ``7×7`` windows, sample (co)variances (``n / (n - 1)``), and the mean over the windows lying fully
    inside the image. **The default** ``data_range`` **R = 2 is the reference evaluator's quirk** (scikit-image's
    default for float input) that published tables inherit; ``data_range=255`` gives the physically meaningful SSIM
    (the reference's ``SSIM_dr255``).

    Extends to 3D with ``7×7×7`` windows (as scikit-image does for volumes).

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: ``N >= 2`` images of the same shape.
        data_range: ``R`` above (2: reference default; 255: 8-bit range).
        win_size: odd window side.
        k1, k2: the SSIM constants.
        reduction: ``"sum"`` (the reference) or ``"mean"`` over the sources.
    """
    return _ssim(FusionInputs(fused, sources, "ssim"), data_range=data_range, win_size=win_size, k1=k1, k2=k2,
                 reduction=reduction)


def _ms_ssim(inp: FusionInputs, data_range: float = 255.0, weights: Sequence[float] = MS_SSIM_WEIGHTS,
             win_size: int = 11, win_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
             reduction: str = "mean") -> float:
    s = inp.require_sources("ms_ssim")
    weights = tuple(float(w) for w in weights)
    levels = len(weights)
    min_side = 2 ** (levels - 1)
    if min(inp.fused.shape) < min_side:
        raise ValueError(f"ms_ssim: {levels} scales need image sides >= {min_side}, got {tuple(inp.fused.shape)}")
    taps = gaussian_taps(win_size, win_sigma)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    # float32 as the reference (pytorch_msssim): the constants dwarf the round-off of the local variances
    dims = inp.spatial_dims
    f, x = inp.fused.float(), s.float()
    factors = []  # per level: (N,) clipped means
    for level in range(levels):
        mu_f, ff = local_moments(f, None, taps, dims, skip_short_axes=True, name="ms_ssim")
        var_f = ff - mu_f * mu_f
        values = []
        for i in range(x.shape[0]):
            mu_s, ss, fs = local_moments(f, x[i], taps, dims, skip_short_axes=True, name="ms_ssim")
            cs_map = (2 * (fs - mu_f * mu_s) + c2) / (var_f + (ss - mu_s * mu_s) + c2)
            if level == levels - 1:
                cs_map = cs_map * (2 * mu_f * mu_s + c1) / (mu_f * mu_f + mu_s * mu_s + c1)  # full SSIM at the top
            values.append(torch.relu(cs_map.mean()))
        factors.append(torch.stack(values))
        if level < levels - 1:
            f, x = pool_half(f, dims), pool_half(x, dims)
    stacked = torch.stack(factors).double()  # (levels, N)
    per_source = torch.prod(stacked ** torch.tensor(weights, dtype=torch.float64).view(-1, 1), dim=0)
    return reduce_sources(per_source, reduction, "ms_ssim")


def ms_ssim(fused: Any, sources: Sequence[Any], data_range: float = 255.0,
            weights: Sequence[float] = MS_SSIM_WEIGHTS, win_size: int = 11, win_sigma: float = 1.5,
            k1: float = 0.01, k2: float = 0.03, reduction: str = "mean") -> float:
    """MS-SSIM of ``F`` with each source, averaged over the sources (``pytorch_msssim`` conventions).

    .. math::

        \\mathrm{MS\\text{-}SSIM}(S, F) = [l_M(S, F)\\, cs_M(S, F)]^{w_M} \\prod_{j=1}^{M-1} cs_j(S, F)^{w_j},
        \\qquad \\mathrm{MS\\text{-}SSIM} = \\frac{1}{N}\\sum_{i=1}^N \\mathrm{MS\\text{-}SSIM}(S_i, F)

    with ``11×11`` Gaussian windows (σ = 1.5, 'valid' filtering; an axis shorter than the window is left unfiltered),
    population (co)variances, ``M = 5`` scales with the standard weights, 2× average pooling between scales (zero
    padding of odd sides counted), and each scale's mean clipped at 0 (a negative contrast-structure term makes the
    product 0). Equivalent to images / 255 with data range 1.

    Extends to 3D with ``11×11×11`` windows and 2×2×2 pooling.

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255; every side >= 2^(M-1).
        sources: ``N >= 2`` images of the same shape.
        data_range: the dynamic range of the values (255 for 0..255).
        weights: per-scale exponents (their count sets the number of scales).
        win_size, win_sigma: the Gaussian window.
        k1, k2: the SSIM constants.
        reduction: ``"mean"`` (the reference) or ``"sum"`` over the sources.
    """
    return _ms_ssim(FusionInputs(fused, sources, "ms_ssim"), data_range=data_range, weights=weights,
                    win_size=win_size, win_sigma=win_sigma, k1=k1, k2=k2, reduction=reduction)
