"""The reference reading convention: an 8-bit image as grey levels on 0..255."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["to_gray8"]

_R, _G, _B = np.float32(0.299), np.float32(0.587), np.float32(0.114)


def _fma32(a: np.ndarray, b: np.float32, c: np.ndarray) -> np.ndarray:
    """float32 fused multiply-add ``round32(a * b + c)`` (exact in float64 for float32 operands of this size)."""
    return (a.astype(np.float64) * np.float64(b) + c.astype(np.float64)).astype(np.float32)


def to_gray8(image: Any) -> np.ndarray:
    """Convert an 8-bit grey or RGB image to the grey levels the metric reference uses.

    The reference reads every image as 3-channel 8-bit, casts to float32, converts with BT.601 luma in floating point
    (OpenCV ``COLOR_BGR2GRAY`` on float32, Y = 0.299 R + 0.587 G + 0.114 B) and rounds half to even. This reproduces
    that bit for bit, including OpenCV's float32 evaluation order (``G·0.587``, then fused multiply-adds of ``B`` and
    ``R``; checked on all 2^24 colours). Converting uint8 directly with fixed-point arithmetic differs by one level on
    some pixels.

    Args:
        image: NumPy array or torch tensor with integer values 0..255 (any dtype), shaped ``(H, W)`` (grey, passed
            through), ``(H, W, 1)`` or ``(1, H, W)`` (grey), ``(H, W, 3)`` (RGB, channel-last) or ``(3, H, W)`` (RGB,
            channel-first; used only when the last axis is not of size 3: a channel-last reading wins).

    Returns:
        ``(H, W)`` float64 grey levels (integers 0..255).

    Raises:
        ValueError: another shape, or values that are not integers in 0..255.
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] != 3:  # channel-last RGB wins when both readings are possible
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        elif arr.shape[0] == 3:
            arr = np.moveaxis(arr, 0, -1)
        elif arr.shape[0] == 1:
            arr = arr[0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(f"to_gray8: expected (H, W), (H, W, 3) or (3, H, W), got shape {tuple(arr.shape)}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or arr.size and (
                arr.min() < 0 or arr.max() > 255 or not np.array_equal(arr, np.round(arr))):
            raise ValueError("to_gray8: expects 8-bit values (integers 0..255)")
    f = arr.astype(np.float32)
    if f.ndim == 2:
        return f.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = _fma32(r, _R, _fma32(b, _B, (g * _G).astype(np.float32)))
    return np.round(y).astype(np.float64)
