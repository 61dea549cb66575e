"""Per-pixel rules that combine ``M`` sources (or their pyramid/wavelet coefficients) into one.

Each rule maps ``(B, M, *spatial)`` to ``(B, 1, *spatial)`` and works on torch tensors and NumPy arrays (wavelet
coefficients come from PyWavelets as arrays).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["select_max_abs", "mean_rule", "max_rule", "min_rule", "FUSION_RULES", "get_rule"]

Array = torch.Tensor | np.ndarray


def select_max_abs(x: Array) -> Array:
    """Per element, the source value with the largest magnitude ``|x|`` (ties: the first source, i.e. MRI).

    Args:
        x: ``(B, M, *spatial)``.

    Returns:
        ``(B, 1, *spatial)``, each element copied from one source (signs kept).
    """
    if isinstance(x, np.ndarray):
        idx = np.abs(x).argmax(axis=1)[:, None]
        return np.take_along_axis(x, idx, axis=1)
    idx = x.abs().argmax(dim=1, keepdim=True)  # torch returns the first maximal index on ties
    return x.gather(1, idx)


def mean_rule(x: Array) -> Array:
    """Per element mean over the sources: ``(B, M, *spatial) -> (B, 1, *spatial)``."""
    return x.mean(axis=1, keepdims=True) if isinstance(x, np.ndarray) else x.mean(dim=1, keepdim=True)


def max_rule(x: Array) -> Array:
    """Per element maximum over the sources: ``(B, M, *spatial) -> (B, 1, *spatial)``."""
    return x.max(axis=1, keepdims=True) if isinstance(x, np.ndarray) else x.amax(dim=1, keepdim=True)


def min_rule(x: Array) -> Array:
    """Per element minimum over the sources: ``(B, M, *spatial) -> (B, 1, *spatial)``."""
    return x.min(axis=1, keepdims=True) if isinstance(x, np.ndarray) else x.amin(dim=1, keepdim=True)


#: rule names accepted by the multi-scale methods' ``detail_rule`` / ``base_rule`` arguments.
FUSION_RULES: dict[str, Callable[[Array], Array]] = {
    "maxabs": select_max_abs,
    "average": mean_rule,
    "max": max_rule,
    "min": min_rule,
}


def get_rule(name: str, owner: str) -> Callable[[Array], Array]:
    """Look up a rule by name; ``owner`` (the class asking) names the error.

    Raises:
        ValueError: unknown rule name.
    """
    if name not in FUSION_RULES:
        raise ValueError(f"{owner}: unknown fusion rule {name!r}, expected one of {', '.join(FUSION_RULES)}")
    return FUSION_RULES[name]
