"""Gradient-based metrics of Petrović and Xydeas: Q^{AB/F} (edge information transferred) and N^{AB/F} (artifacts).

Both are defined on 2D Sobel edge strength and orientation. For volumes ``(H, W, D)`` they are computed on the 2D
slices along the last axis, with the weighted sums pooled over all slices (a gradient-weighted average of the
per-slice values; blank slices carry no weight instead of giving NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mmif.metrics._utils import FusionInputs, slices_last_axis, sobel_2d

__all__ = ["qabf", "nabf", "edge_preservation"]


def _slices(inp: FusionInputs, name: str) -> torch.Tensor:
    """``(N + 1, [D,] H, W)``: the sources then ``F``, as 2D slices along the last axis."""
    s = inp.require_sources(name)
    # float32 as the reference evaluators (exact for the Sobel sums of 8-bit values; halves the elementwise work)
    return inp.cached("edge_slices", lambda: slices_last_axis(
        torch.cat([s, inp.fused.unsqueeze(0)]).float(), inp.spatial_dims))


def edge_preservation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel Xydeas-Petrović edge preservation of each source in ``F`` (the Q^{AB/F} terms, standard constants).

    Args:
        x: ``(N + 1, ..., H, W)`` float: the ``N`` sources then ``F``, 2D slices in the last two axes.

    Returns:
        ``(q, g)``: ``Q^{S_i F}`` and the source edge strengths ``g_{S_i}``, both ``(N, ..., H, W)``.
    """
    gx, gy = sobel_2d(x, padding="zeros")  # convolve2d(mode='same') of the reference
    g = torch.sqrt(gx * gx + gy * gy)
    # the reference's convolve2d flips the masks: its G_y / G_x is (top - bottom) / (right - left) = -gy / gx
    a = torch.where(gx == 0, math.pi / 2, torch.atan(-gy / torch.where(gx == 0, 1.0, gx)))
    g_s, g_f = g[:-1], g[-1:]
    a_s, a_f = a[:-1], a[-1:]
    # relative strength: the smaller over the larger; where equal the reference keeps g_F itself
    ratio = torch.where(g_s > g_f, g_f / torch.where(g_s > g_f, g_s, 1.0), g_s / torch.where(g_s < g_f, g_f, 1.0))
    ratio = torch.where(g_s == g_f, g_f.expand_as(g_s), ratio)
    align = 1.0 - torch.abs(a_s - a_f) / (math.pi / 2)
    q_g = 0.9994 / (1.0 + torch.exp(-15.0 * (ratio - 0.5)))
    q_a = 0.9879 / (1.0 + torch.exp(-22.0 * (align - 0.8)))
    return q_g * q_a, g_s


def _qabf(inp: FusionInputs) -> float:
    q, g_s = inp.cached("edge_preservation", lambda: edge_preservation(_slices(inp, "qabf")))
    return float((q * g_s).double().sum() / g_s.double().sum())


def qabf(fused: Any, sources: Sequence[Any]) -> float:
    """Q^{AB/F}: Xydeas & Petrović's edge-information preservation, weighted by source edge strength (0..1).

    With 3×3 Sobel responses (zero padding) :math:`g = \\sqrt{G_x^2 + G_y^2}`, :math:`\\alpha = \\arctan(G_y/G_x)`
    (π/2 where :math:`G_x = 0`), relative strength :math:`G^{SF} = \\min(g_S, g_F)/\\max(g_S, g_F)` and orientation
    agreement :math:`A^{SF} = 1 - |\\alpha_S - \\alpha_F|/(\\pi/2)`:

    .. math::

        Q^{SF} = \\frac{0.9994}{1 + e^{-15(G^{SF} - 0.5)}} \\cdot \\frac{0.9879}{1 + e^{-22(A^{SF} - 0.8)}},
        \\qquad
        Q^{AB/F} = \\frac{\\sum_i \\sum_x Q^{S_i F}(x)\\, g_{S_i}(x)}{\\sum_i \\sum_x g_{S_i}(x)}

    (L = 1). As in the reference, where :math:`g_S = g_F` the ratio is taken as :math:`g_F` itself (≈ 1 for 8-bit
    images, whose non-zero Sobel magnitudes are >= 1).

    2D only: a volume ``(H, W, D)`` is scored slice-wise along the last axis with the sums pooled over the slices.

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: ``N >= 2`` images of the same shape.
    """
    return _qabf(FusionInputs(fused, sources, "qabf"))


def _nabf(inp: FusionInputs, weight_floor: float = 0.0) -> float:
    x = _slices(inp, "nabf")
    gx, gy = sobel_2d(x, padding="reflect")
    g = torch.sqrt(gx * gx + gy * gy) / 8.0  # the MATLAB code's Sobel masks are scaled by 1/8
    # alpha = atan(G_v / G_h) with the reference's flipped masks: G_v = -gx / 8, G_h = -gy / 8; an exact zero G_h is
    # +0 there, so G_v / G_h = -sign(gx) * inf -> -sign(gx) * pi / 2
    a = torch.atan(gx / torch.where(gy == 0, 1.0, gy))
    a = torch.where(gy == 0, -torch.sign(gx) * (math.pi / 2), a)  # gx = gy = 0 -> sign 0 -> 0, as the reference
    g_s, g_f = g[:-1], g[-1:]
    a_s, a_f = a[:-1], a[-1:]
    zero = (g_s == 0) | (g_f == 0)
    lo, hi = torch.minimum(g_s, g_f), torch.maximum(g_s, g_f)
    ratio = torch.where(zero, 0.0, lo / torch.where(zero, 1.0, hi))
    align = torch.abs(torch.abs(a_s - a_f) - math.pi / 2) * (2.0 / math.pi)
    q_g = 0.9999 / (1.0 + torch.exp(-19.0 * (ratio - 0.5)))
    q_a = 0.9995 / (1.0 + torch.exp(-22.0 * (align - 0.5)))
    q = torch.sqrt(q_g * q_a)
    w = torch.where(g_s >= 2.0, g_s**1.5, weight_floor)
    artifact = (g_f > g_s).all(dim=0)
    return float(((1.0 - q) * w).sum(0).mul(artifact).double().sum() / w.double().sum())


def nabf(fused: Any, sources: Sequence[Any], weight_floor: float = 0.0) -> float:
    """N^{AB/F}: Petrović's fusion-artifact measure in Shreyamsha Kumar's modified form (lower is better).

    With 3×3 Sobel responses / 8 (mirror padding) :math:`g`, :math:`\\alpha = \\arctan(G_v/G_h)`, relative strength
    :math:`G^{SF} = \\min/\\max` of :math:`g_S, g_F` (0 where either is 0), orientation agreement
    :math:`A^{SF} = \\big||\\alpha_S - \\alpha_F| - \\pi/2\\big| \\cdot 2/\\pi`,

    .. math::

        Q^{SF} = \\sqrt{\\frac{0.9999}{1 + e^{-19(G^{SF} - 0.5)}} \\cdot \\frac{0.9995}{1 + e^{-22(A^{SF} - 0.5)}}},
        \\qquad w_S = g_S^{1.5} [g_S \\ge 2]

    .. math::

        N^{AB/F} = \\frac{\\sum_x [g_F > \\max_i g_{S_i}] \\sum_i (1 - Q^{S_i F}) w_{S_i}}{\\sum_x \\sum_i w_{S_i}}

    i.e. the loss of edge agreement counted only where ``F`` has stronger edges than every source (artifacts).

    2D only: a volume ``(H, W, D)`` is scored slice-wise along the last axis with the sums pooled over the slices.

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: ``N >= 2`` images of the same shape.
        weight_floor: the weight of weak-edge pixels (:math:`g_S < 2`); 0 as in the reference, the original MATLAB
            code uses 0.001.
    """
    return _nabf(FusionInputs(fused, sources, "nabf"), weight_floor=weight_floor)
