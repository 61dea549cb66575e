"""Guided-filtering fusion (GFF; Li, Kang & Hu, IEEE TIP 22(7), 2013), for 2D and 3D.

Each source is split into a base layer (box mean) and a detail layer. Per pixel, the source of largest saliency
(Gaussian-smoothed magnitude of the discrete Laplacian) gets weight 1 in a binary weight map; the maps are then refined
by guided filtering (He, Sun & Tang, TPAMI 2013) with each source as its own guide: a large, strongly regularised filter
for the base weights and a small, weakly regularised one for the detail weights. The fused image is the weighted sum of
the base and detail layers, weights normalised over the sources.

All filters are separable along every spatial dimension. Box means use the window truncated at the border (mean over
the voxels inside the image), as in He et al.'s reference guided filter; the Laplacian and the Gaussian use replicate
borders.
"""

from __future__ import annotations

import torch
from monai.networks.layers import separable_filtering

from mmif.fusion.base import FusionMethod, register_fusion_method

__all__ = ["box_mean", "guided_filter", "GuidedFilterFusion"]


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2 radius + 1)`` window along every spatial dim, the window truncated at the borders.

    Computed with cumulative sums (He et al.'s O(N) box filter), so the cost does not depend on ``radius`` and the
    window may be larger than the image.

    Args:
        x: ``(B, C, *spatial)``, any number of spatial dims.
        radius: window radius (>= 0).

    Returns:
        ``(B, C, *spatial)``.
    """
    for dim in range(2, x.ndim):
        n = x.shape[dim]
        csum = x.cumsum(dim)
        first = torch.zeros_like(csum.narrow(dim, 0, 1))
        last = csum.narrow(dim, n - 1, 1)
        # ext[j] = (sum of the first clamp(j - radius, 0, n) samples), j = 0 .. n + 2 radius
        ext = torch.cat([first.repeat_interleave(radius + 1, dim), csum, last.repeat_interleave(radius, dim)], dim=dim)
        idx = torch.arange(n, device=x.device)
        count = ((idx + radius + 1).clamp(max=n) - (idx - radius).clamp(min=0)).to(x.dtype)
        x = (ext.narrow(dim, 2 * radius + 1, n) - ext.narrow(dim, 0, n)) / count.reshape(n, *[1] * (x.ndim - dim - 1))
    return x


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of ``src`` guided by ``guide`` (He et al.), channel by channel.

    Args:
        guide: ``(B, C, *spatial)`` guidance images.
        src: ``(B, C, *spatial)`` images to filter.
        radius: box radius.
        eps: regularisation (larger = smoother).

    Returns:
        ``(B, C, *spatial)`` filtered ``src``.
    """
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def _laplacian_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``|sum_d (x[i-1] - 2 x[i] + x[i+1])|`` over the spatial dims d (4-/6-neighbour Laplacian), replicate border."""
    total = torch.zeros_like(x)
    for dim in range(2, x.ndim):
        n = x.shape[dim]
        if n < 2:
            continue
        prev = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim=dim)
        nxt = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)
        total = total + prev + nxt - 2 * x
    return total.abs()


def _gaussian_kernel(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    t = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


@register_fusion_method("gff")
class GuidedFilterFusion(FusionMethod):
    """Guided-filtering fusion (Li, Kang & Hu, 2013); defaults are the paper's, for intensities in ``[0, 1]``.

    Args:
        base_radius: radius of the box mean that makes the base layer (paper: 31 x 31 window, radius 15).
        saliency_size: size of the Gaussian that smooths the Laplacian magnitude (paper: 11).
        saliency_sigma: its standard deviation (paper: 5).
        base_weight_radius: guided-filter radius for the base weights (paper r1 = 45).
        base_weight_eps: its regularisation (paper eps1 = 0.3).
        detail_weight_radius: guided-filter radius for the detail weights (paper r2 = 7).
        detail_weight_eps: its regularisation (paper eps2 = 1e-6).
    """

    def __init__(
        self,
        base_radius: int = 15,
        saliency_size: int = 11,
        saliency_sigma: float = 5.0,
        base_weight_radius: int = 45,
        base_weight_eps: float = 0.3,
        detail_weight_radius: int = 7,
        detail_weight_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (
            ("base_radius", base_radius),
            ("base_weight_radius", base_weight_radius),
            ("detail_weight_radius", detail_weight_radius),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be an integer >= 1, got {value!r}")
        odd = isinstance(saliency_size, int) and not isinstance(saliency_size, bool) and saliency_size % 2 == 1
        if not odd or saliency_size < 1:
            raise ValueError(f"{name}: saliency_size must be an odd integer >= 1, got {saliency_size!r}")
        for arg, value in (
            ("saliency_sigma", saliency_sigma),
            ("base_weight_eps", base_weight_eps),
            ("detail_weight_eps", detail_weight_eps),
        ):
            if not value > 0:
                raise ValueError(f"{name}: {arg} must be > 0, got {value!r}")
        self.base_radius = base_radius
        self.saliency_size, self.saliency_sigma = saliency_size, float(saliency_sigma)
        self.base_weight_radius, self.base_weight_eps = base_weight_radius, float(base_weight_eps)
        self.detail_weight_radius, self.detail_weight_eps = detail_weight_radius, float(detail_weight_eps)

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        # saliency only decides the per-pixel winner: input precision is enough
        kernel = _gaussian_kernel(self.saliency_size, self.saliency_sigma, image)
        saliency = separable_filtering(_laplacian_magnitude(image), kernel, mode="replicate")
        x = image.double()  # the guided filters (eps down to 1e-6) need the precision
        base = box_mean(x, self.base_radius)
        detail = x - base
        winner = saliency.argmax(dim=1, keepdim=True)  # ties: the first source
        p = torch.zeros_like(x).scatter_(1, winner, 1.0)
        w_base = guided_filter(x, p, self.base_weight_radius, self.base_weight_eps)
        w_detail = guided_filter(x, p, self.detail_weight_radius, self.detail_weight_eps)
        fused = _weighted(base, w_base) + _weighted(detail, w_detail)
        return fused.to(image.dtype)


def _weighted(layer: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_m w_m layer_m / sum_m w_m`` (``(B, M, *s) -> (B, 1, *s)``); equal weights where the sum vanishes."""
    total = weights.sum(dim=1, keepdim=True)
    small = total.abs() < 1e-12
    weights = torch.where(small, torch.ones_like(weights), weights)
    total = torch.where(small, torch.full_like(total, weights.shape[1]), total)
    return (weights * layer).sum(dim=1, keepdim=True) / total
