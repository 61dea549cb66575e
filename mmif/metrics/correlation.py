"""Pixel-wise comparisons of the fused image with its sources: MSE, PSNR, CC, SCD.

All take ``F`` and ``N >= 2`` sources on the 0..255 scale, ``(H, W)`` or ``(H, W, D)``; all extend to 3D unchanged
(sums and means over every voxel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mmif.metrics._utils import FusionInputs, pearson, reduce_sources

__all__ = ["mse", "psnr", "cc", "scd"]


def _mse_per_source(inp: FusionInputs) -> torch.Tensor:
    s = inp.require_sources("mse")
    dims = tuple(range(1, s.ndim))
    return inp.cached("mse_per_source", lambda: (s - inp.fused).square().mean(dim=dims))


def _mse(inp: FusionInputs, reduction: str = "mean") -> float:
    return reduce_sources(_mse_per_source(inp), reduction, "mse")


def mse(fused: Any, sources: Sequence[Any], reduction: str = "mean") -> float:
    """MSE between ``F`` and the sources, averaged over the sources (lower is better).

    .. math::

        \\mathrm{MSE} = \\frac{1}{N}\\sum_{i=1}^{N} \\frac{1}{|\\Omega|}\\sum_{x} (S_i(x) - F(x))^2

    Extends to 3D unchanged.

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: ``N >= 2`` images of the same shape.
        reduction: ``"mean"`` over sources (the reference) or ``"sum"``.
    """
    return _mse(FusionInputs(fused, sources, "mse"), reduction=reduction)


def _psnr(inp: FusionInputs, data_range: float | None = None) -> float:
    peak = float(inp.fused.max()) if data_range is None else float(data_range)
    m = float(_mse_per_source(inp).mean())
    if m == 0.0:
        return math.inf
    if peak == 0.0:
        return -math.inf
    return 10.0 * math.log10(peak * peak / m)


def psnr(fused: Any, sources: Sequence[Any], data_range: float | None = None) -> float:
    """PSNR of ``F`` against the sources, from the MSE averaged over the sources.

    .. math::

        \\mathrm{PSNR} = 10 \\log_{10} \\frac{P^2}{\\frac{1}{N}\\sum_i \\mathrm{MSE}(S_i, F)}

    with the peak :math:`P = \\max F` by default (the reference evaluator's convention, not 255).
    ``inf`` when the MSE is zero.

    Extends to 3D unchanged.

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: ``N >= 2`` images of the same shape.
        data_range: a fixed peak (e.g. 255) instead of ``max(F)``.
    """
    return _psnr(FusionInputs(fused, sources, "psnr"), data_range=data_range)


def _cc(inp: FusionInputs, reduction: str = "mean") -> float:
    s = inp.require_sources("cc")
    r = inp.cached("cc_per_source", lambda: pearson(s, inp.fused, inp.spatial_dims))
    return reduce_sources(r, reduction, "cc")


def cc(fused: Any, sources: Sequence[Any], reduction: str = "mean") -> float:
    """CC: Pearson correlation of each source with ``F``, averaged over the sources.

    .. math::

        \\mathrm{CC} = \\frac{1}{N}\\sum_{i=1}^{N} r(S_i, F), \\qquad
        r(X, Y) = \\frac{\\sum (X-\\bar X)(Y-\\bar Y)}{\\sqrt{\\sum (X-\\bar X)^2 \\sum (Y-\\bar Y)^2}}

    NaN when a source or ``F`` is constant. Extends to 3D unchanged.

    Args:
        reduction: ``"mean"`` (the reference) or ``"sum"`` over the sources.
    """
    return _cc(FusionInputs(fused, sources, "cc"), reduction=reduction)


def _scd(inp: FusionInputs, reduction: str = "sum") -> float:
    s = inp.require_sources("scd")
    # F - sum_{j != i} S_j  =  F - (sum_j S_j - S_i)
    diff = inp.fused - (s.sum(0) - s)
    return reduce_sources(pearson(s, diff, inp.spatial_dims), reduction, "scd")


def scd(fused: Any, sources: Sequence[Any], reduction: str = "sum") -> float:
    """SCD: sum of the correlations of differences (Aslantas & Bendes, 2015).

    .. math::

        \\mathrm{SCD} = \\sum_{i=1}^{N} r\\Big(S_i,\\; F - \\sum_{j \\ne i} S_j\\Big)

    For two sources this is the reference's :math:`r(A, F - B) + r(B, F - A)`: the part of ``F`` not explained by
    the other sources should correlate with each source.

    **Undefined case:** when ``F - sum_{j != i} S_j`` is constant (e.g. ``F`` equals a source with two sources) its
    correlation is 0/0 and SCD is NaN, as in the reference. NaN values are skipped by MONAI's reductions.

    Extends to 3D unchanged.

    Args:
        reduction: ``"sum"`` (the reference) or ``"mean"`` over the sources.
    """
    return _scd(FusionInputs(fused, sources, "scd"), reduction=reduction)
