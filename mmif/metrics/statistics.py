"""No-reference metrics of the fused image alone: EN, SD, SF, AG.

All take the fused image ``F`` on the 0..255 scale, ``(H, W)`` or ``(H, W, D)``; every one extends to 3D.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mmif.metrics._utils import FusionInputs

__all__ = ["entropy", "standard_deviation", "spatial_frequency", "average_gradient"]


def _entropy(inp: FusionInputs, base: float = 2.0) -> float:
    f, _ = inp.rounded
    hist = inp.cached("hist_F", lambda: torch.bincount(f.reshape(-1), minlength=256).to(torch.float64))
    p = hist[hist > 0] / hist.sum()
    return float(-(p * torch.log(p)).sum() / math.log(base))


def entropy(fused: Any, base: float = 2.0) -> float:
    """EN: Shannon entropy of the 256-bin grey-level histogram of ``F``.

    .. math::

        \\mathrm{EN} = -\\sum_{l=0}^{255} p_l \\log_2 p_l

    where :math:`p_l` is the fraction of pixels with grey level :math:`l` (values rounded half to even and clipped to
    0..255, as the reference evaluator's ``uint8(round(F))``).

    Extends to 3D unchanged (histogram of all voxels).

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        base: logarithm base (2: bits, the reference; ``math.e``: nats).

    Returns:
        the entropy (higher is better).
    """
    return _entropy(FusionInputs(fused, None, "entropy", need_sources=False), base=base)


def _standard_deviation(inp: FusionInputs) -> float:
    return float(inp.fused.std(correction=0))


def standard_deviation(fused: Any) -> float:
    """SD: population standard deviation of ``F``.

    .. math::

        \\mathrm{SD} = \\sqrt{\\frac{1}{|\\Omega|}\\sum_{x\\in\\Omega} (F(x) - \\mu_F)^2}

    Extends to 3D unchanged (all voxels).
    """
    return _standard_deviation(FusionInputs(fused, None, "standard_deviation", need_sources=False))


def _spatial_frequency(inp: FusionInputs) -> float:
    f = inp.fused
    total = 0.0
    for axis in range(f.ndim):
        if f.shape[axis] < 2:
            raise ValueError(f"spatial_frequency: image side {f.shape[axis]} is too short (needs >= 2)")
        total += float(torch.diff(f, dim=axis).square().mean())
    return math.sqrt(total)


def spatial_frequency(fused: Any) -> float:
    """SF: root of the summed mean squared forward differences along each axis.

    .. math::

        \\mathrm{SF} = \\sqrt{\\mathrm{mean}\\big((F_{i,j+1}-F_{i,j})^2\\big)
                              + \\mathrm{mean}\\big((F_{i+1,j}-F_{i,j})^2\\big)}

    (row frequency and column frequency; each mean over its own difference image).

    Extends to 3D with a third term for the slice axis:
    :math:`\\sqrt{\\mathrm{RF}^2 + \\mathrm{CF}^2 + \\mathrm{DF}^2}`.
    """
    return _spatial_frequency(FusionInputs(fused, None, "spatial_frequency", need_sources=False))


def _average_gradient(inp: FusionInputs) -> float:
    f = inp.fused
    if min(f.shape) < 2:
        raise ValueError(f"average_gradient: every image side must be >= 2, got {tuple(f.shape)}")
    grads = torch.gradient(f)  # central differences, one-sided at the borders (numpy.gradient)
    sq = torch.stack(grads).square().sum(0)
    return float(torch.sqrt(sq / f.ndim).mean())


def average_gradient(fused: Any) -> float:
    """AG: mean gradient magnitude (RMS over the axes) with central differences.

    .. math::

        \\mathrm{AG} = \\frac{1}{|\\Omega|}\\sum_{x\\in\\Omega} \\sqrt{\\frac{G_x(x)^2 + G_y(x)^2}{2}}

    with :math:`G` from ``numpy.gradient`` (central differences inside, one-sided at the borders).

    Extends to 3D as :math:`\\sqrt{(G_x^2 + G_y^2 + G_z^2)/3}`.
    """
    return _average_gradient(FusionInputs(fused, None, "average_gradient", need_sources=False))
