"""Modalities as batch items: the fusion heads apply one set of weights to every source by folding M into the batch."""

from __future__ import annotations

import torch

__all__ = ["fold_modalities", "unfold_modalities"]


def fold_modalities(x: torch.Tensor) -> torch.Tensor:
    """``(B, M, ...)`` -> ``(B * M, ...)``: modalities become batch items, so weights are shared across them."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def unfold_modalities(x: torch.Tensor, num_modalities: int) -> torch.Tensor:
    """``(B * M, ...)`` -> ``(B, M, ...)``; the inverse of :func:`fold_modalities`."""
    return x.reshape(x.shape[0] // num_modalities, num_modalities, *x.shape[1:])
