"""VIF: Sheikh & Bovik's pixel-domain visual information fidelity of each source carried into the fused image."""

from __future__ import annotations

import warnings

from collections.abc import Sequence
from typing import Any

import torch

from mmif.metrics._utils import FusionInputs, filter_valid, gaussian_taps, local_moments, reduce_sources

__all__ = ["vif"]

_EPS = 1e-10


def _vif_terms(var_s: torch.Tensor, var_f: torch.Tensor, cov: torch.Tensor, sigma_nsq: float) -> tuple[float, float]:
    """The numerator and denominator sums of one scale, with the reference's guards."""
    g = cov / (var_s + _EPS)
    sv = var_f - g * cov
    flat_s = var_s < _EPS
    g = torch.where(flat_s, 0.0, g)
    sv = torch.where(flat_s, var_f, sv)
    var_s = torch.where(flat_s, 0.0, var_s)
    flat_f = var_f < _EPS
    g = torch.where(flat_f, 0.0, g)
    sv = torch.where(flat_f, 0.0, sv)
    sv = torch.where(g < 0, var_f, sv)
    g = g.clamp_min(0.0)
    sv = sv.clamp_min(_EPS)  # sv <= eps -> eps
    num = torch.log10(1.0 + g * g * var_s / (sv + sigma_nsq)).sum()
    den = torch.log10(1.0 + var_s / sigma_nsq).sum()
    return float(num), float(den)


def _vif_per_source(inp: FusionInputs, scales: int, sigma_nsq: float, used: int | None = None) -> torch.Tensor:
    s = inp.require_sources("vif")
    f = inp.fused
    dims = inp.spatial_dims
    num = torch.zeros(s.shape[0], dtype=torch.float64)
    den = torch.zeros(s.shape[0], dtype=torch.float64)
    for scale in range(1, (used or scales) + 1):  # the finest `used` scales of a `scales`-scale pyramid
        size = 2 ** (scales - scale + 1) + 1
        taps = gaussian_taps(size, size / 5.0)
        if scale > 1:  # low-pass, then keep every second sample
            both = filter_valid(torch.cat([f.unsqueeze(0), s]), taps, dims, step=2, name="vif")
            f, s = both[0], both[1:]
        mu_f, ff = local_moments(f, None, taps, dims, name="vif")
        var_f = (ff - mu_f * mu_f).clamp_min(0.0)
        for i in range(s.shape[0]):  # one source at a time bounds the memory for volumes
            mu_s, ss, fs = local_moments(f, s[i], taps, dims, name="vif")
            var_s = (ss - mu_s * mu_s).clamp_min(0.0)
            n_i, d_i = _vif_terms(var_s, var_f, fs - mu_s * mu_f, sigma_nsq)
            num[i] += n_i
            den[i] += d_i
    return num / den  # 0 / 0 (a constant source) -> NaN


def _vif_min_side(scales: int, used: int | None = None) -> int:
    """The smallest side that survives the 'valid' filters and subsampling of the finest ``used`` of ``scales``."""
    need = 1
    for scale in range(used or scales, 0, -1):
        size = 2 ** (scales - scale + 1) + 1
        need = need + size - 1
        if scale > 1:
            need = 2 * (need - 1) + 1 + size - 1
    return need


def _vif(
    inp: FusionInputs, scales: int = 4, sigma_nsq: float = 2.0, reduction: str = "sum", fewer_scales: bool = True
) -> float:
    if scales < 1:
        raise ValueError(f"vif: scales must be >= 1, got {scales}")
    side = min(inp.fused.shape)
    used = scales
    if side < _vif_min_side(scales):
        used = max((k for k in range(1, scales) if _vif_min_side(scales, k) <= side), default=0)
        if not fewer_scales or used == 0:
            raise ValueError(
                f"vif: {scales} scales need image sides >= {_vif_min_side(scales)}, got {tuple(inp.fused.shape)}"
            )
        warnings.warn(
            f"vif: image {tuple(inp.fused.shape)} is too small for {scales} scales (needs sides >= "
            f"{_vif_min_side(scales)}); using the finest {used}",
            stacklevel=3,
        )
    per_source = inp.cached(("vif", scales, used, sigma_nsq), lambda: _vif_per_source(inp, scales, sigma_nsq, used))
    return reduce_sources(per_source, reduction, "vif")


def vif(
    fused: Any,
    sources: Sequence[Any],
    scales: int = 4,
    sigma_nsq: float = 2.0,
    reduction: str = "sum",
    fewer_scales: bool = True,
) -> float:
    """VIF: pixel-domain visual information fidelity (VIFp) of each source in ``F``, summed over the sources.

    With ``S`` the reference (source) and ``F`` the distorted image, at each scale :math:`s = 1..4` local Gaussian
    statistics (window side :math:`n_s = 2^{5-s}+1`, σ = :math:`n_s/5`, 'valid' filtering; the images are low-passed
    with the same window and subsampled by 2 before scales 2..4) give the gain
    :math:`g = \\sigma_{SF}/\\sigma_S^2` and the distortion variance :math:`\\sigma_v^2 = \\sigma_F^2 - g\\sigma_{SF}`,
    and

    .. math::

        \\mathrm{VIF}(S, F) = \\frac{\\sum_{s}\\sum_{x} \\log_{10}\\!\\big(1 + \\frac{g^2\\sigma_S^2}
                                 {\\sigma_v^2 + \\sigma_n^2}\\big)}
                                {\\sum_{s}\\sum_{x} \\log_{10}\\!\\big(1 + \\frac{\\sigma_S^2}{\\sigma_n^2}\\big)},
        \\qquad \\mathrm{VIF} = \\sum_{i=1}^{N} \\mathrm{VIF}(S_i, F)

    with :math:`\\sigma_n^2 = 2` and the reference implementation's guards for flat windows and negative gains.
    This is Sheikh & Bovik's VIFp, not Han et al.'s VIFF. NaN for a constant source (0/0).

    Extends to 3D with separable ``n×n×n`` Gaussian windows and subsampling along all three axes.

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255 (every side >= 89 for all 4 scales).
        sources: ``N >= 2`` images of the same shape.
        scales: number of scales (4 in the reference).
        sigma_nsq: the HVS noise variance :math:`\\sigma_n^2`.
        reduction: ``"sum"`` (the reference) or ``"mean"`` over the sources.
        fewer_scales: for an image too small for all ``scales``, sum over the finest scales that fit (same windows;
            with a warning) instead of raising ``ValueError`` — for small crops and phantoms; published tables use
            256² images and all 4 scales.
    """
    return _vif(
        FusionInputs(fused, sources, "vif"),
        scales=scales,
        sigma_nsq=sigma_nsq,
        reduction=reduction,
        fewer_scales=fewer_scales,
    )

