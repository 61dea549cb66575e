"""Anatomy under function: does the fused image show the MRI's structure where the tracer outshines it, and does its
brightness there still follow the tracer?

For a pair of an anatomical image ``A`` (the first source, the MRI) and a functional image ``B`` (PET/SPECT luminance,
or CT), both on 0..255, with ``G`` a Gaussian blur of sigma 4 px, the region where the function dominates at low
frequency is

.. math::

    M = \\{\\, G{*}B > G{*}A + 10 \\;\\text{and}\\; G{*}B > 20 \\,\\}.

There max-abs copies ``B`` and the sulci, the grey/white boundary and the fissures of ``A`` disappear. Two scores:

- :func:`anatomy`: the Xydeas-Petrović edge preservation of ``A`` in ``F`` (the Q^{AF} term of Q^{AB/F}), averaged
  over ``M`` with weights ``|grad A|``; about 1 for ``F = A``, low for max-abs;
- :func:`function`: ``1 - mean_M |G*F - G*B| / mean_M |G*A - G*B|``; 1 when ``F``'s low-frequency brightness follows
  the tracer, 0 when it follows the MRI (negative when it is further from the tracer than the MRI is).

With more than two sources each functional source (the second onwards) is scored against the first and the scores are
averaged over the sources whose ``M`` is not empty. Both are NaN when every ``M`` is empty (nothing outshines the
anatomy, e.g. a CT slice without bone) or carries no MRI edge (:func:`anatomy`). Volumes ``(H, W, D)``: the blur and
``M`` are 3D, the edge terms are taken on the 2D slices along the last axis (as :func:`~mmif.metrics.qabf`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mmif.metrics._utils import FusionInputs, gaussian_taps, slices_last_axis
from mmif.metrics.edges import _slices, edge_preservation

__all__ = ["anatomy", "function", "function_dominant_mask", "FUNCTION_SIGMA", "FUNCTION_MARGIN", "FUNCTION_FLOOR"]

#: the Gaussian blur (pixels) that separates the low-frequency brightness from the anatomy's detail.
FUNCTION_SIGMA = 4.0
#: ``M``: the blurred functional image exceeds the blurred MRI by more than this (grey levels) ...
FUNCTION_MARGIN = 10.0
#: ... and is brighter than this.
FUNCTION_FLOOR = 20.0


def gaussian_blur(x: torch.Tensor, spatial_dims: int, sigma: float = FUNCTION_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur (truncated at 3 sigma, edges replicated) of ``x`` ``(..., *spatial)``, same size."""
    radius = int(math.ceil(3.0 * sigma))
    taps = torch.tensor(gaussian_taps(2 * radius + 1, sigma), dtype=x.dtype)
    lead = x.shape[:-spatial_dims]
    y = x.reshape(-1, 1, *x.shape[-spatial_dims:])
    for axis in range(spatial_dims):
        dim = y.ndim - spatial_dims + axis
        y = y.movedim(dim, -1)
        shape = y.shape
        flat = F.pad(y.reshape(-1, 1, shape[-1]), (radius, radius), mode="replicate")
        y = F.conv1d(flat, taps.view(1, 1, -1)).reshape(shape).movedim(-1, dim)
    return y.reshape(*lead, *x.shape[-spatial_dims:])


def function_dominant_mask(anatomical: Any, functional: Any, blurred: bool = False) -> torch.Tensor:
    """``M``, the voxels where the functional image outshines the anatomical one at low frequency (bool tensor).

    Args:
        anatomical, functional: images on 0..255 of one shape (2D or 3D), or their blurs when ``blurred=True``.
    """
    a = torch.as_tensor(anatomical, dtype=torch.float64)
    b = torch.as_tensor(functional, dtype=torch.float64)
    if not blurred:
        a, b = gaussian_blur(torch.stack([a, b]), a.ndim).unbind(0)
    return (b > a + FUNCTION_MARGIN) & (b > FUNCTION_FLOOR)


def _blurred(inp: FusionInputs) -> torch.Tensor:
    """``(N + 1, *spatial)``: the blurred sources then the blurred ``F``."""
    return inp.cached("function_blur", lambda: gaussian_blur(
        torch.cat([inp.require_sources("anatomy/function"), inp.fused.unsqueeze(0)]), inp.spatial_dims))


def _masks(inp: FusionInputs) -> torch.Tensor:
    """``(N - 1, *spatial)``: ``M`` of each functional source against the first source."""
    def make():
        g = _blurred(inp)
        return torch.stack([function_dominant_mask(g[0], g[m], blurred=True) for m in range(1, inp.num_sources)])
    return inp.cached("function_masks", make)


def _anatomy(inp: FusionInputs) -> float:
    masks = _masks(inp)
    # Q^{AF} of the first source: the same per-pixel terms as Q^{AB/F} (shared with it when computed together)
    q, g = inp.cached("edge_preservation", lambda: edge_preservation(_slices(inp, "anatomy")))
    q_a, g_a = q[0].double(), g[0].double()
    scores = []
    for mask in masks:
        w = g_a * slices_last_axis(mask, inp.spatial_dims)
        total = float(w.sum())
        if total > 0:
            scores.append(float((q_a * w).sum()) / total)
    return sum(scores) / len(scores) if scores else math.nan


def _function(inp: FusionInputs) -> float:
    masks = _masks(inp)
    g = _blurred(inp)
    g_a, g_f = g[0], g[-1]
    scores = []
    for m, mask in enumerate(masks, start=1):
        if not bool(mask.any()):
            continue
        g_b = g[m][mask]
        # within M, |G*A - G*B| > FUNCTION_MARGIN: the denominator is never 0
        scores.append(1.0 - float((g_f[mask] - g_b).abs().mean() / (g_a[mask] - g_b).abs().mean()))
    return sum(scores) / len(scores) if scores else math.nan


def anatomy(fused: Any, sources: Sequence[Any]) -> float:
    """The MRI's edges kept in ``F`` where the functional image outshines it (0..1, higher is better).

    .. math::

        \\mathrm{anatomy} = \\frac{\\sum_{x \\in M} Q^{AF}(x)\\, g_A(x)}{\\sum_{x \\in M} g_A(x)}

    with ``Q^{AF}`` and ``g_A`` the Xydeas-Petrović terms of :func:`~mmif.metrics.qabf` (3×3 Sobel, standard
    constants) and ``M`` of :func:`function_dominant_mask` (see the module docstring).

    Args:
        fused: ``F``, ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: the anatomical image first, then ``>= 1`` functional images of the same shape.

    Returns:
        the score, NaN where ``M`` is empty or holds no edge of the anatomical image.
    """
    return _anatomy(FusionInputs(fused, sources, "anatomy"))


def function(fused: Any, sources: Sequence[Any]) -> float:
    """How closely ``F``'s low-frequency brightness follows the functional image where that outshines the MRI.

    .. math::

        \\mathrm{function} = 1 - \\frac{\\operatorname{mean}_M |G{*}F - G{*}B|}{\\operatorname{mean}_M |G{*}A - G{*}B|}

    1 for ``F = B``, 0 for ``F = A`` (see the module docstring for ``G`` and ``M``).

    Args:
        fused: ``F``, ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: the anatomical image first, then ``>= 1`` functional images of the same shape.

    Returns:
        the score (<= 1), NaN where ``M`` is empty.
    """
    return _function(FusionInputs(fused, sources, "function"))
