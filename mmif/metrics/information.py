"""Information-theoretic metrics: MI (grey-level mutual information) and FMI (Haghighat's feature MI)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mmif.metrics._utils import FusionInputs, reduce_sources, slices_last_axis

__all__ = ["mutual_information", "fmi"]


def _plogp_sum(counts: torch.Tensor, total: float) -> torch.Tensor:
    """``sum p log p`` over the last axis of a count tensor (natural log, 0 log 0 = 0)."""
    p = counts / total
    return torch.where(p > 0, p * torch.log(torch.where(p > 0, p, 1.0)), 0.0).sum(-1)


def _mutual_information(inp: FusionInputs, base: float = math.e, reduction: str = "sum") -> float:
    f, s = inp.rounded
    if s is None:
        raise ValueError("mutual_information: needs the source images")
    n = s.shape[0]
    total = float(f.numel())
    offsets = (torch.arange(n) * 65536).view(-1, *([1] * f.ndim))
    joint = torch.bincount((offsets + f * 256 + s).reshape(-1), minlength=n * 65536).view(n, 256, 256)
    joint = joint.to(torch.float64)
    h_f = -_plogp_sum(joint[0].sum(1), total)
    h_s = -_plogp_sum(joint.sum(1), total)
    h_fs = -_plogp_sum(joint.view(n, -1), total)
    mi = (h_f + h_s - h_fs) / math.log(base)
    return reduce_sources(mi, reduction, "mutual_information")


def mutual_information(fused: Any, sources: Sequence[Any], base: float = math.e, reduction: str = "sum") -> float:
    """MI: mutual information between ``F`` and each source, from exact 256×256 joint grey-level histograms.

    .. math::

        \\mathrm{MI} = \\sum_{i=1}^{N} \\sum_{a,f} p_{S_i F}(a, f) \\ln \\frac{p_{S_i F}(a, f)}{p_{S_i}(a)\\, p_F(f)}

    in **nats** and summed over the sources by default (the reference). Values are rounded half to even to integer
    grey levels 0..255 first (a no-op for 8-bit images, whose exact values the reference uses as labels).

    Extends to 3D unchanged (histograms over all voxels).

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: ``N >= 2`` images of the same shape.
        base: logarithm base (``math.e``: nats, the reference; 2: bits).
        reduction: ``"sum"`` (the reference) or ``"mean"`` over the sources.
    """
    return _mutual_information(FusionInputs(fused, sources, "mutual_information"), base=base, reduction=reduction)


# ------------------------------------------------------------------------------------------------------- FMI

def _wavelet_features(img: torch.Tensor) -> torch.Tensor:
    """One-level 2D DWT (Meyer 'dmey', symmetric extension) as the block image ``[[cA, cH], [cV, cD]]``, in [0, 1]."""
    import pywt

    ca, (ch, cv, cd) = pywt.dwt2(img.numpy(), "dmey", mode="symmetric")
    block = np.block([[ca, ch], [cv, cd]])
    lo, hi = block.min(), block.max()
    block = (block - lo) / (hi - lo) if hi > lo else np.zeros_like(block)
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float64))


def _windows(feat: torch.Tensor, w: int) -> torch.Tensor:
    """``(..., H, W)`` -> ``(..., P, w*w)``: every ``w × w`` window, column-major inside (MATLAB's ``(:)``)."""
    win = feat.unfold(-2, w, 1).unfold(-2, w, 1)  # (..., H', W', w_rows, w_cols)
    return win.transpose(-1, -2).reshape(*win.shape[:-4], -1, w * w)


def _window_pdfs(win: torch.Tensor) -> torch.Tensor:
    """Min-max normalised window values divided by their sum; a constant window gives the uniform pdf."""
    lo = win.amin(-1, keepdim=True)
    hi = win.amax(-1, keepdim=True)
    flat = hi == lo
    norm = torch.where(flat, 1.0, (win - lo) / torch.where(flat, 1.0, hi - lo))
    return norm / norm.sum(-1, keepdim=True)


def _neg_plog2p(p: torch.Tensor) -> torch.Tensor:
    """``-p log2 |p|`` elementwise, 0 at 0 (the Fréchet-bound joint pdf can have small negative entries)."""
    a = p.abs()
    return torch.where(a > 0, -p * torch.log2(torch.where(a > 0, a, 1.0)), 0.0)


def _fmi_pair(pa: torch.Tensor, pf: torch.Tensor) -> torch.Tensor:
    """Normalised feature MI per window between source pdfs ``pa`` and fused pdfs ``pf``, both ``(P, K)``."""
    k = pa.shape[-1]
    ca, cf = pa.cumsum(-1), pf.cumsum(-1)
    ea, ef = _neg_plog2p(pa).sum(-1), _neg_plog2p(pf).sum(-1)
    # correlation of the two pdf vectors, and their standard deviations over the index 1..K
    ac, fc = pa - pa.mean(-1, keepdim=True), pf - pf.mean(-1, keepdim=True)
    den = (ac * ac).sum(-1) * (fc * fc).sum(-1)
    c = (ac * fc).sum(-1) / torch.sqrt(torch.where(den == 0, 1.0, den))
    idx = torch.arange(1, k + 1, dtype=torch.float64)
    sd_a = torch.sqrt(((idx**2 * pa).sum(-1) - (idx * pa).sum(-1) ** 2).abs())
    sd_f = torch.sqrt(((idx**2 * pf).sum(-1) - (idx * pf).sum(-1) ** 2).abs())
    # Fréchet upper (c >= 0) / lower (c < 0) bound joint CDFs, rows = F index, columns = A index
    cfi, caj = cf.unsqueeze(-1), ca.unsqueeze(-2)
    independent = cfi * caj
    upper = torch.minimum(cfi, caj)
    lower = (cfi + caj - 1.0).clamp_min(0.0)
    positive = (c >= 0).view(-1, 1, 1)
    bound = torch.where(positive, upper, lower)
    # mixing weight: c sd_a sd_f / sum_ij (bound_ij - F_i A_j), 0 for an uncorrelated / flat pair
    denom = (bound - independent).sum((-1, -2))
    mix = c * sd_a * sd_f / torch.where(denom == 0, 1.0, denom)
    mix = torch.where(c * sd_a * sd_f == 0, 0.0, mix).view(-1, 1, 1)
    # joint pdf = mix * d2(bound) + (1 - mix) * pf_i pa_j  (d2: finite differences of the CDF along both axes)
    b = torch.nn.functional.pad(bound, (1, 0, 1, 0))
    bound_pdf = b[..., 1:, 1:] - b[..., :-1, 1:] - b[..., 1:, :-1] + b[..., :-1, :-1]
    jpdf = mix * bound_pdf + (1.0 - mix) * pf.unsqueeze(-1) * pa.unsqueeze(-2)
    joint = _neg_plog2p(jpdf).sum((-1, -2))
    total = ea + ef
    mi = total - joint
    return torch.where(mi == 0, 0.0, 2.0 * mi / torch.where(total == 0, 1.0, total))


def _fmi(inp: FusionInputs, feature: str = "pixel", window: int = 3, chunk: int = 16384) -> float:
    s = inp.require_sources("fmi")
    if feature not in ("pixel", "wavelet"):
        raise ValueError(f"fmi: feature must be 'pixel' or 'wavelet', got {feature!r}")
    if window < 2:
        raise ValueError(f"fmi: window must be >= 2, got {window}")
    f2 = slices_last_axis(inp.fused, inp.spatial_dims).reshape(-1, *inp.fused.shape[:2])
    s2 = slices_last_axis(s, inp.spatial_dims).reshape(s.shape[0], -1, *inp.fused.shape[:2])
    if min(f2.shape[-2:]) < window:
        raise ValueError(f"fmi: image sides {tuple(f2.shape[-2:])} are shorter than the {window}x{window} window")
    if feature == "wavelet":
        f2 = torch.stack([_wavelet_features(x) for x in f2])
        s2 = torch.stack([torch.stack([_wavelet_features(x) for x in si]) for si in s2])
    k = window * window
    wf = _windows(f2, window).reshape(-1, k)
    ws = _windows(s2, window).reshape(s2.shape[0], -1, k)
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, wf.shape[0], chunk):
        sl = slice(start, start + chunk)
        pf = _window_pdfs(wf[sl])
        for i in range(ws.shape[0]):
            value = _fmi_pair(_window_pdfs(ws[i, sl]), pf)
            same = (ws[i, sl] == wf[sl]).all(-1)  # identical feature windows count 1 (as the reference code)
            total += torch.where(same, 1.0, value).sum()
    return float(total / (wf.shape[0] * ws.shape[0]))


def fmi(fused: Any, sources: Sequence[Any], feature: str = "pixel", window: int = 3) -> float:
    """FMI: Haghighat's feature mutual information (fast sliding-window version, Haghighat & Razian 2014).

    In each ``window × window`` window, the (min-max normalised) feature values of a source and of ``F`` are read as
    two pdfs :math:`p_S, p_F` over the window positions. Their joint pdf is built from the correlation :math:`c`
    between them, mixing the Fréchet bound copula with independence (Nelsen), and (following Haghighat's
    ``fmi.m``: identical windows count 1, windows with zero mutual information count 0)

    .. math::

        \\mathrm{FMI} = \\frac{1}{N}\\sum_{i=1}^N \\operatorname{mean}_{\\text{windows}}
            \\frac{2\\, I(S_i; F)}{H(S_i) + H(F)}, \\qquad I = H(S_i) + H(F) - H(S_i, F)

    (bits). Optional and slower than the default metrics; no
    reference values are available for it, so it is checked only on its defining properties.

    Extends to 3D slice-wise: 2D windows on every slice along the last axis, averaged over all windows of all slices.

    Args:
        fused: ``(H, W)`` or ``(H, W, D)`` on 0..255.
        sources: ``N >= 2`` images of the same shape.
        feature: ``"pixel"`` (raw values) or ``"wavelet"`` (one-level ``dmey`` DWT sub-bands, PyWavelets).
        window: window side (3 in the reference definition).
    """
    return _fmi(FusionInputs(fused, sources, "fmi"), feature=feature, window=window)
