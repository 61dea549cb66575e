"""Shared machinery of the fusion metrics: input checking, a per-call cache, separable 'valid' filtering.

Every metric works on float64 torch tensors on the CPU: the fused image ``F`` with shape ``spatial`` and the sources
stacked as ``S`` with shape ``(N, *spatial)``, where ``spatial`` is ``(H, W)`` or ``(H, W, D)``.

Separable filters are applied one axis at a time, as products with small banded matrices over blocks of the axis (BLAS
calls, much faster than a float64 convolution on the CPU), or as a sum of shifted slices for 2- and 3-tap kernels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "FusionInputs",
    "as_image_tensor",
    "filter_valid",
    "gaussian_taps",
    "local_moments",
    "pool_half",
    "reduce_sources",
    "pearson",
    "sobel_2d",
    "slices_last_axis",
    "REDUCTIONS",
]

REDUCTIONS = ("sum", "mean")

#: values may exceed 0..255 by this much (float round-off of x * 255) before the range check fails.
_RANGE_SLACK = 1e-3


def as_image_tensor(image: Any, what: str) -> torch.Tensor:
    """One image (NumPy array or torch tensor, any real dtype) as a float64 CPU tensor.

    Raises:
        ValueError: not a 2D/3D array, or holds NaN/Inf.
    """
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if hasattr(t, "as_tensor"):  # MetaTensor -> plain tensor
            t = t.as_tensor()
        t = t.to(device="cpu", dtype=torch.float64)
    else:
        arr = np.asarray(image)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    if t.ndim not in (2, 3):
        raise ValueError(f"{what}: expected a 2D (H, W) or 3D (H, W, D) image, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what}: contains NaN or Inf values")
    return t


class FusionInputs:
    """The validated inputs of one metric evaluation, plus a cache for intermediate results shared between metrics.

    Args:
        fused: the fused image ``F``, ``(H, W)`` or ``(H, W, D)``, values on the 0..255 scale.
        sources: ``N >= 2`` source images of the same shape (``None`` for no-reference metrics).
        name: the metric (or caller) named in error messages.
        need_sources: raise when ``sources`` is missing.

    Raises:
        ValueError: wrong dimensionality, unequal shapes, fewer than 2 sources, NaN/Inf, values outside 0..255.
    """

    def __init__(self, fused: Any, sources: Sequence[Any] | None = None, name: str = "metric",
                 need_sources: bool = True) -> None:
        self.name = name
        self.fused = as_image_tensor(fused, f"{name}: fused image")
        self._check_range(self.fused, "fused image")
        self.sources: torch.Tensor | None = None
        if sources is not None:
            if isinstance(sources, (torch.Tensor, np.ndarray)) and sources.ndim == self.fused.ndim:
                raise ValueError(f"{name}: sources must be a sequence of images (or an (N, *spatial) stack), "
                                 f"got one array of shape {tuple(sources.shape)}")
            items = list(sources)
            if len(items) < 2:
                raise ValueError(f"{name}: needs at least 2 source images, got {len(items)}")
            tensors = [as_image_tensor(s, f"{name}: source {i}") for i, s in enumerate(items)]
            for i, s in enumerate(tensors):
                if s.shape != self.fused.shape:
                    raise ValueError(f"{name}: source {i} has shape {tuple(s.shape)}, the fused image "
                                     f"{tuple(self.fused.shape)}")
                self._check_range(s, f"source {i}")
            self.sources = torch.stack(tensors)
        elif need_sources:
            raise ValueError(f"{name}: needs the source images")
        self._cache: dict[Any, Any] = {}

    def _check_range(self, t: torch.Tensor, what: str) -> None:
        lo, hi = float(t.min()), float(t.max())
        if lo < -_RANGE_SLACK or hi > 255.0 + _RANGE_SLACK:
            raise ValueError(f"{self.name}: {what} has values in [{lo:g}, {hi:g}]; metric inputs are on the 0..255 "
                             "scale (8-bit grey levels)")

    @property
    def spatial_dims(self) -> int:
        return self.fused.ndim

    @property
    def num_sources(self) -> int:
        return 0 if self.sources is None else int(self.sources.shape[0])

    def require_sources(self, name: str) -> torch.Tensor:
        if self.sources is None:
            raise ValueError(f"{name}: needs the source images")
        return self.sources

    def cached(self, key: Any, fn: Callable[[], Any]) -> Any:
        """``fn()`` computed once per inputs object (metrics computed together share intermediates)."""
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def rounded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``F`` and ``S`` rounded (half to even) and clipped to integer grey levels 0..255, as int64."""
        def _round():
            f = self.fused.round().clamp(0, 255).to(torch.int64)
            s = None if self.sources is None else self.sources.round().clamp(0, 255).to(torch.int64)
            return f, s
        return self.cached("rounded", _round)


def reduce_sources(values: torch.Tensor | Sequence[float], reduction: str, name: str) -> float:
    """Combine one value per source: ``"sum"`` or ``"mean"``."""
    v = torch.as_tensor(values, dtype=torch.float64)
    if reduction == "sum":
        return float(v.sum())
    if reduction == "mean":
        return float(v.mean())
    raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def pearson(x: torch.Tensor, y: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Pearson correlation over the trailing ``spatial_dims`` axes (leading axes broadcast); NaN for a zero variance."""
    dims = tuple(range(-spatial_dims, 0))
    xc = x - x.mean(dim=dims, keepdim=True)
    yc = y - y.mean(dim=dims, keepdim=True)
    num = (xc * yc).sum(dim=dims)
    den = torch.sqrt((xc * xc).sum(dim=dims) * (yc * yc).sum(dim=dims))
    return num / den  # 0 / 0 -> NaN: the correlation with a constant is undefined


# ------------------------------------------------------------------------------------------- separable filters

@functools.lru_cache(maxsize=256)
def _band_matrix(n: int, taps: tuple[float, ...], step: int, dtype: torch.dtype) -> torch.Tensor:
    """``(n, L)`` matrix ``M`` with ``(x @ M)[j] = sum_i taps[i] x[j*step + i]`` ('valid' correlation, subsampled)."""
    k = len(taps)
    length = n - k + 1
    idx = torch.arange(length)
    m = torch.zeros(n, length, dtype=torch.float64)
    for i, t in enumerate(taps):
        m[idx + i, idx] = t
    return m[:, ::step].to(dtype).contiguous()


#: output samples per banded block product (a multiple of every subsampling step used)
_BLOCK = 32


def _filter_axis(x: torch.Tensor, taps: tuple[float, ...], axis: int, step: int) -> torch.Tensor:
    n, k = x.shape[axis], len(taps)
    length = n - k + 1
    if k <= 3:  # a few shifted passes are cheaper than any product
        out = x.narrow(axis, 0, length) * taps[0]
        for i in range(1, k):
            out.add_(x.narrow(axis, i, length), alpha=taps[i])
        return _subsample(out, axis, step) if step > 1 else out
    # blocks of _BLOCK outputs, each one small BLAS product with a (_BLOCK + k - 1, _BLOCK / step) band matrix,
    # written into one preallocated output (peak memory: the output plus one block)
    xm = x.movedim(axis, -1)
    block = _BLOCK if _BLOCK % step == 0 else _BLOCK * step
    out = xm.new_empty((*xm.shape[:-1], (length + step - 1) // step))
    for start in range(0, length, block):
        b = min(block, length - start)
        out[..., start // step:(start + b + step - 1) // step] = (
            xm[..., start:start + b + k - 1] @ _band_matrix(b + k - 1, taps, step, x.dtype))
    return out.movedim(-1, axis)


def _subsample(x: torch.Tensor, axis: int, step: int) -> torch.Tensor:
    index = [slice(None)] * x.ndim
    index[axis] = slice(None, None, step)
    return x[tuple(index)]


def filter_valid(x: torch.Tensor, taps: Sequence[float], spatial_dims: int, step: int = 1,
                 skip_short_axes: bool = False, name: str = "filter") -> torch.Tensor:
    """Correlate the trailing ``spatial_dims`` axes of ``x`` with the same 1D ``taps`` ('valid', no padding).

    Args:
        x: ``(..., *spatial)`` float64.
        taps: the 1D kernel (a separable N-D kernel is its outer product with itself).
        spatial_dims: 2 or 3.
        step: keep every ``step``-th output sample along each axis (filter-then-subsample in one pass).
        skip_short_axes: leave an axis shorter than the kernel unfiltered (as pytorch_msssim does) instead of failing.
        name: the metric named in the error.

    Returns:
        ``(..., *spatial')`` with ``spatial'[a] = ceil((spatial[a] - len(taps) + 1) / step)``.

    Raises:
        ValueError: an axis is shorter than the kernel (and ``skip_short_axes`` is false).
    """
    taps = tuple(float(t) for t in taps)
    for axis in range(x.ndim - spatial_dims, x.ndim):
        if x.shape[axis] < len(taps):
            if skip_short_axes:
                continue
            raise ValueError(f"{name}: image side {x.shape[axis]} is shorter than the {len(taps)}-sample window")
        x = _filter_axis(x, taps, axis, step)
    return x


def local_moments(x: torch.Tensor, y: torch.Tensor | None, taps: Sequence[float], spatial_dims: int,
                  step: int = 1, skip_short_axes: bool = False, name: str = "filter") -> tuple[torch.Tensor, ...]:
    """Windowed moments of one image (and with a second one) in one filtering pass.

    Args:
        x: ``spatial`` image; y: another ``spatial`` image or ``None``.
        taps, spatial_dims, step, skip_short_axes, name: as in :func:`filter_valid`.

    Returns:
        ``(E[x], E[x^2])``, or with ``y`` given ``(E[y], E[y^2], E[x y])``, each of shape ``spatial'``.
    """
    maps = torch.stack([x, x * x]) if y is None else torch.stack([y, y * y, x * y])
    return tuple(filter_valid(maps, taps, spatial_dims, step=step, skip_short_axes=skip_short_axes, name=name))


@functools.lru_cache(maxsize=64)
def gaussian_taps(size: int, sigma: float) -> tuple[float, ...]:
    """Normalised 1D Gaussian of ``size`` samples centred on the middle one (``fspecial('gaussian')`` factor)."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(r * r) / (2.0 * sigma * sigma))
    return tuple((g / g.sum()).tolist())


@functools.lru_cache(maxsize=64)
def _pool_matrix(n: int, dtype: torch.dtype) -> torch.Tensor:
    pad = n % 2
    out = (n + 2 * pad - 2) // 2 + 1
    m = torch.zeros(n, out, dtype=torch.float64)
    for j in range(out):
        for i in (2 * j - pad, 2 * j + 1 - pad):
            if 0 <= i < n:
                m[i, j] = 0.5
    return m.to(dtype)


def pool_half(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """2× average pooling of the trailing axes as ``avg_pool(kernel=2, padding=side % 2)`` with zero padding counted.

    Returns:
        ``(..., *spatial')`` with ``spatial'[a] = spatial[a] // 2 + spatial[a] % 2``.
    """
    for axis in range(x.ndim - spatial_dims, x.ndim):
        x = (x.movedim(axis, -1) @ _pool_matrix(x.shape[axis], x.dtype)).movedim(-1, axis)
    return x


# ---------------------------------------------------------------------------------------------- 2D gradients

def sobel_2d(x: torch.Tensor, padding: str) -> tuple[torch.Tensor, torch.Tensor]:
    """3×3 Sobel responses of the last two axes (rows = axis -2, columns = axis -1), output the size of the input.

    Args:
        x: ``(..., H, W)``.
        padding: ``"zeros"`` (``convolve2d(mode='same')``) or ``"reflect"`` (mirror without repeating the edge).

    Returns:
        ``(gx, gy)``: correlation with ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (right minus left) and with
        ``[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]`` (bottom minus top). Exact zeros are ``+0.0``.
    """
    if padding == "zeros":
        p = torch.nn.functional.pad(x, (1, 1, 1, 1))
    elif padding == "reflect":
        if x.shape[-1] < 2 or x.shape[-2] < 2:
            raise ValueError(f"sobel: reflect padding needs sides >= 2, got {tuple(x.shape[-2:])}")
        p = torch.cat([x[..., 1:2, :], x, x[..., -2:-1, :]], dim=-2)
        p = torch.cat([p[..., :, 1:2], p, p[..., :, -2:-1]], dim=-1)
    else:
        raise ValueError(f"sobel: padding must be 'zeros' or 'reflect', got {padding!r}")
    rows = p[..., :-2, :] + 2.0 * p[..., 1:-1, :] + p[..., 2:, :]  # smoothed over rows, (H, W+2)
    gx = rows[..., :, 2:] - rows[..., :, :-2]
    cols = p[..., :, :-2] + 2.0 * p[..., :, 1:-1] + p[..., :, 2:]  # smoothed over columns, (H+2, W)
    gy = cols[..., 2:, :] - cols[..., :-2, :]
    return gx, gy


def slices_last_axis(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """``(..., H, W)`` unchanged for 2D; ``(..., H, W, D)`` -> ``(..., D, H, W)`` (2D slices along the last axis)."""
    return x if spatial_dims == 2 else x.movedim(-1, -3)

