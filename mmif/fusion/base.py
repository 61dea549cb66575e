"""The fusion-method interface and the registry that finds methods by name.

Every fusion method, classical or learned, is a :class:`torch.nn.Module` called as ``fused = method(image)``:

- ``image``: ``(B, M, H, W)`` or ``(B, M, H, W, D)`` luminance of ``M >= 2`` co-registered sources in ``[0, 1]``,
  channel order as the datalist's ``modalities`` (MRI first);
- ``fused``: ``(B, 1, H, W[, D])`` in ``[0, 1]``.

``spatial_dims`` (2 or 3) is read from the input. Colour is handled outside the method (see :mod:`mmif.fusion.apply`).

Subclass :class:`FusionMethod` and implement :meth:`FusionMethod.fuse`; the base class validates the input and clips the
output. Register a method under a name with :func:`register_fusion_method` so that :func:`get_fusion_method` (and the
CLI ``--method`` options built on it) can find it. A model whose module is heavy to import can be registered lazily by a
``"module:attribute"`` string.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = [
    "FusionMethod",
    "register_fusion_method",
    "get_fusion_method",
    "available_fusion_methods",
    "check_fusion_input",
]

#: tolerance on the ``[0, 1]`` input range (float round-off from resampling and colour conversion).
_RANGE_TOL = 1e-3

_REGISTRY: dict[str, Callable[..., nn.Module] | str] = {}


def check_fusion_input(image: Any, name: str = "fusion method") -> torch.Tensor:
    """Validate a fusion input and return it as a floating-point tensor.

    Args:
        image: ``(B, M, H, W)`` or ``(B, M, H, W, D)`` tensor, ``M >= 2`` sources with values in ``[0, 1]``.
        name: who is checking (used in the messages).

    Returns:
        ``image`` as a float tensor (float32 unless it already was floating point); a MetaTensor loses its metadata.

    Raises:
        ValueError: not a tensor, wrong number of dimensions, fewer than 2 sources, an empty spatial size, NaN/Inf,
            or values outside ``[0, 1]`` (e.g. 8-bit values on 0..255).
    """
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (B, M, H, W[, D]), got {type(image).__name__}")
    if image.ndim not in (4, 5):
        raise ValueError(
            f"{name}: expected (B, M, H, W) for 2D or (B, M, H, W, D) for 3D, "
            f"got {image.ndim} dims {tuple(image.shape)}"
        )
    if image.shape[1] < 2:
        raise ValueError(f"{name}: needs at least 2 sources on dim 1 (M >= 2), got shape {tuple(image.shape)}")
    if image.numel() == 0:
        raise ValueError(f"{name}: empty input of shape {tuple(image.shape)}")
    if hasattr(image, "as_tensor"):  # MetaTensor -> plain tensor
        image = image.as_tensor()
    if not image.is_floating_point():
        image = image.float()
    if not torch.isfinite(image).all():
        raise ValueError(f"{name}: input contains NaN or Inf values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        raise ValueError(
            f"{name}: input values must lie in [0, 1] (luminance scaled to [0, 1]), got range [{lo:.4g}, {hi:.4g}]"
            + (" - 8-bit images need dividing by 255" if hi > 1.5 else "")
        )
    return image


class FusionMethod(nn.Module):
    """Base class of fusion methods: ``(B, M, *spatial)`` sources in ``[0, 1]`` -> ``(B, 1, *spatial)`` fused.

    Subclasses implement :meth:`fuse`; :meth:`forward` validates the input (see :func:`check_fusion_input`), calls
    :meth:`fuse` and clips the result to ``[0, 1]``. Methods are generic in ``spatial_dims`` (2 or 3, read from the
    input) and in the number of sources ``M``.
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Fuse the sources.

        Args:
            image: ``(B, M, H, W[, D])`` luminance of ``M >= 2`` sources in ``[0, 1]``.

        Returns:
            ``(B, 1, H, W[, D])`` fused luminance in ``[0, 1]``, same dtype and device as the (float) input.

        Raises:
            ValueError: for a badly shaped or out-of-range input (the message names the method).
        """
        image = check_fusion_input(image, type(self).__name__)
        fused = self.fuse(image)
        expected = (image.shape[0], 1, *image.shape[2:])
        if tuple(fused.shape) != expected:  # a bug in the method, not a user error
            raise RuntimeError(f"{type(self).__name__}.fuse returned shape {tuple(fused.shape)}, expected {expected}")
        return fused.clamp(0.0, 1.0)

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        """Fuse a validated input ``(B, M, H, W[, D])`` into ``(B, 1, H, W[, D])`` (clipped by :meth:`forward`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement fuse(image)")

    @staticmethod
    def spatial_dims(image: torch.Tensor) -> int:
        """The number of spatial dimensions of a ``(B, M, *spatial)`` input (2 or 3)."""
        return image.ndim - 2


def _key(name: str) -> str:
    return name.strip().lower()


def register_fusion_method(name: str, target: Callable[..., nn.Module] | str | None = None):
    """Register a fusion method under ``name`` (case-insensitive).

    Used as a class decorator (``@register_fusion_method("laplacian")``), or called directly with ``target``: a class or
    factory returning an :class:`torch.nn.Module`, or a lazy ``"package.module:attribute"`` string imported on first use
    (for models whose module is heavy to import).

    Args:
        name: the method's name, as users type it (``--method NAME``).
        target: what to register; ``None`` returns a decorator.

    Returns:
        the decorator, or ``target`` itself when given.

    Raises:
        ValueError: the name is empty or already taken by a different target.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"register_fusion_method: name must be a non-empty string, got {name!r}")
    key = _key(name)

    def _register(obj):
        if isinstance(obj, str) and ":" not in obj:
            raise ValueError(f"register_fusion_method: lazy target must be 'module:attribute', got {obj!r}")
        old = _REGISTRY.get(key)
        if old is not None and not _same_target(old, obj):
            raise ValueError(f"register_fusion_method: the name {name!r} is already registered to {_describe(old)}")
        _REGISTRY[key] = obj
        return obj

    return _register if target is None else _register(target)


def _describe(obj) -> str:
    return obj.replace(":", ".") if isinstance(obj, str) else f"{obj.__module__}.{obj.__qualname__}"


def _same_target(a, b) -> bool:
    # re-registration of the same object (e.g. a module imported twice, or a lazy entry that resolved to itself)
    return a is b or _describe(a) == _describe(b)


def available_fusion_methods() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)


def _resolve(key: str) -> Callable[..., nn.Module]:
    target = _REGISTRY[key]
    if isinstance(target, str):
        module_name, attr = target.split(":", 1)
        target = getattr(importlib.import_module(module_name), attr)
        _REGISTRY[key] = target
    return target


def get_fusion_method(name: str, **kwargs: Any) -> nn.Module:
    """Build the fusion method registered under ``name``.

    Args:
        name: a registered name (see :func:`available_fusion_methods`), case-insensitive.
        kwargs: the method's constructor arguments (e.g. ``levels=4`` for ``"laplacian"``).

    Returns:
        a new instance (an :class:`FusionMethod` for the built-in methods).

    Raises:
        ValueError: unknown name (the message lists the known ones), or an argument the method does not take.
    """
    key = _key(name) if isinstance(name, str) else None
    if key not in _REGISTRY:
        known = available_fusion_methods()
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown fusion method {name!r}{hint}; available: {', '.join(known)}")
    factory = _resolve(key)
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        accepted = [p for p, v in sig.parameters.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(
                f"fusion method {name!r} does not take {', '.join(map(repr, unknown))}; "
                f"its arguments are: {', '.join(accepted) or '(none)'}"
            )
    return factory(**kwargs)
