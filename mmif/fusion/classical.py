"""Classical fusion baselines: pixel rules, PCA, Laplacian pyramid and DWT fusion.

All are :class:`~mmif.fusion.base.FusionMethod` s: ``(B, M, H, W[, D])`` luminance in ``[0, 1]`` ->
``(B, 1, H, W[, D])``, for 2D and 3D and any number of sources ``M >= 2``, vectorised over the batch and deterministic.

Defaults follow the classical fusions of the metric reference set (``shared/reference/fused``), which use:

- ``average``: the per-pixel mean;
- ``maxabs``: the max-abs rule applied to the intensities themselves: per pixel the source value with the largest
  magnitude. Intensities are non-negative, so this is the per-pixel maximum ("choose max");
- ``laplacian``: an OpenCV-style Laplacian pyramid (``pyrDown``/``pyrUp``) with 4 detail levels, max-abs on the detail
  bands and the average on the base band;
- ``dwt``: a 3-level ``db2`` wavelet decomposition (``periodization`` mode), max-abs on the detail coefficients and
  the average on the approximation.

With these defaults the 8-bit outputs equal the reference images (see ``tests/fusion``).

References:
    P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact image code", IEEE Trans. Commun. 31(4), 1983.
    H. Li, B. S. Manjunath and S. K. Mitra, "Multisensor image fusion using the wavelet transform", Graph. Models
    Image Process. 57(3), 1995.
    V. P. S. Naidu and J. R. Raol, "Pixel-level image fusion using wavelets and principal component analysis",
    Def. Sci. J. 58(3), 2008.
"""

from __future__ import annotations

import pywt
import torch

from mmif.fusion.base import FusionMethod, register_fusion_method
from mmif.fusion.pyramid import laplacian_pyramid, max_pyramid_levels, reconstruct_laplacian
from mmif.fusion.rules import get_rule, mean_rule, min_rule, select_max_abs
from mmif.fusion.wavelet import fuse_wavelet_coefficients, max_wavelet_levels

__all__ = ["AverageFusion", "MaxAbsFusion", "MinFusion", "PCAFusion", "LaplacianFusion", "DWTFusion"]


def _check_levels(owner: str, levels: int, minimum: int) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < minimum:
        raise ValueError(f"{owner}: levels must be an integer >= {minimum}, got {levels!r}")
    return levels


@register_fusion_method("average")
class AverageFusion(FusionMethod):
    """Per-pixel mean of the sources."""

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        return mean_rule(image)


@register_fusion_method("maxabs")
class MaxAbsFusion(FusionMethod):
    """Max-abs rule on the intensities: per pixel the source value of largest magnitude (ties: the first source).

    For intensities in ``[0, 1]`` this is the per-pixel maximum, the "choose max" rule of the fusion literature
    (and of the reference fused images).
    """

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        return select_max_abs(image)


@register_fusion_method("min")
class MinFusion(FusionMethod):
    """Per-pixel minimum of the sources."""

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        return min_rule(image)


@register_fusion_method("pca")
class PCAFusion(FusionMethod):
    """Weighted average with weights from the principal component of the sources (Naidu & Raol, 2008).

    Per sample, the ``M x M`` covariance of the sources' intensities is computed over all pixels; the weights are the
    magnitudes of its leading eigenvector, normalised to sum to 1. Sources that carry no variance (e.g. all constant)
    fall back to equal weights.
    """

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        b, m = image.shape[:2]
        x = image.reshape(b, m, -1).double()
        x = x - x.mean(dim=2, keepdim=True)
        cov = x @ x.transpose(1, 2) / max(x.shape[2] - 1, 1)  # (B, M, M)
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        weights = eigvecs[..., -1].abs()  # (B, M)
        degenerate = eigvals[..., -1] <= 1e-12
        weights = torch.where(degenerate[:, None], torch.ones_like(weights), weights)
        weights = weights / weights.sum(dim=1, keepdim=True)
        weights = weights.to(image.dtype).reshape(b, m, *[1] * (image.ndim - 2))
        return (image * weights).sum(dim=1, keepdim=True)


@register_fusion_method("laplacian")
class LaplacianFusion(FusionMethod):
    """Laplacian-pyramid fusion (Burt & Adelson): fuse each band with a rule, then collapse the pyramid.

    The pyramid uses OpenCV's 5-tap binomial filters and mirror borders in torch (:mod:`mmif.fusion.pyramid`), along
    all spatial dimensions of the input. Sizes need not be divisible by ``2 ** levels``: each level has
    ``ceil(n / 2)`` samples and upsampling crops back. When an image is too small for ``levels`` reductions (every
    reduced level must keep >= 3 samples per dimension), the deepest possible pyramid is used.

    Args:
        levels: number of detail bands (reductions), >= 0; 0 applies ``base_rule`` to the images themselves.
        detail_rule: rule for the detail (band-pass) levels: ``"maxabs"`` (default), ``"average"``, ``"max"``,
            ``"min"``.
        base_rule: rule for the coarsest (low-pass) level: ``"average"`` (default), ``"maxabs"``, ``"max"``, ``"min"``.
    """

    def __init__(self, levels: int = 4, detail_rule: str = "maxabs", base_rule: str = "average") -> None:
        super().__init__()
        self.levels = _check_levels(type(self).__name__, levels, 0)
        self.detail_rule_name, self.base_rule_name = detail_rule, base_rule
        self.detail_rule = get_rule(detail_rule, type(self).__name__)
        self.base_rule = get_rule(base_rule, type(self).__name__)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, detail_rule={self.detail_rule_name!r}, base_rule={self.base_rule_name!r}"

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        levels = min(self.levels, max_pyramid_levels(image.shape[2:]))
        bands = laplacian_pyramid(image, levels)
        fused = [self.detail_rule(band) for band in bands[:-1]] + [self.base_rule(bands[-1])]
        return reconstruct_laplacian(fused)


@register_fusion_method("dwt")
class DWTFusion(FusionMethod):
    """Discrete-wavelet-transform fusion (Li et al., 1995): fuse the wavelet coefficients, then invert the transform.

    The n-D transform is PyWavelets' ``wavedecn`` along all spatial dimensions, one call per batch (computed on the CPU
    in the input's precision). When an image is too small for ``levels`` (PyWavelets' ``dwtn_max_level``), the deepest
    useful level is used.

    Args:
        wavelet: a PyWavelets discrete wavelet name (``"db2"`` default, ``"haar"``, ``"sym4"``, ...).
        levels: decomposition levels, >= 1 (default 3).
        mode: signal extension mode (default ``"periodization"``: every level has ``ceil(n / 2)`` coefficients).
        detail_rule: rule for the detail coefficients (default ``"maxabs"``); see
            :data:`mmif.fusion.rules.FUSION_RULES`.
        approx_rule: rule for the approximation coefficients (default ``"average"``).
    """

    def __init__(
        self,
        wavelet: str = "db2",
        levels: int = 3,
        mode: str = "periodization",
        detail_rule: str = "maxabs",
        approx_rule: str = "average",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"{name}: unknown discrete wavelet {wavelet!r} (e.g. 'haar', 'db2', 'sym4')")
        if mode not in pywt.Modes.modes:
            raise ValueError(f"{name}: unknown wavelet mode {mode!r}, expected one of {', '.join(pywt.Modes.modes)}")
        self.wavelet, self.mode = wavelet, mode
        self.levels = _check_levels(name, levels, 1)
        self.detail_rule_name, self.approx_rule_name = detail_rule, approx_rule
        self.detail_rule = get_rule(detail_rule, name)
        self.approx_rule = get_rule(approx_rule, name)

    def extra_repr(self) -> str:
        return (
            f"wavelet={self.wavelet!r}, levels={self.levels}, mode={self.mode!r}, "
            f"detail_rule={self.detail_rule_name!r}, approx_rule={self.approx_rule_name!r}"
        )

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        levels = min(self.levels, max_wavelet_levels(tuple(image.shape[2:]), self.wavelet))
        return fuse_wavelet_coefficients(image, self.wavelet, levels, self.mode, self.approx_rule, self.detail_rule)

