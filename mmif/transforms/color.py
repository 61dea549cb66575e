"""Colour handling for functional images: BT.601 full-range RGB <-> YCbCr.

PET and SPECT images come as pseudo-colour RGB. mmif fuses their luminance (Y) and carries their chroma (Cb, Cr) over
to the fused image. The conversion is ITU-R BT.601 "full range" (JPEG/JFIF, OpenCV ``COLOR_RGB2YCrCb``): for values in
``[0, 1]``

.. math::

    Y = 0.299 R + 0.587 G + 0.114 B, \\quad
    C_b = 0.5 + 0.564 (B - Y), \\quad C_r = 0.5 + 0.713 (R - Y)

(offsets 128 and scale 255 for 8-bit values, ``value_range=255``).
"""

from __future__ import annotations

import numpy as np
import torch

from monai.config import NdarrayOrTensor
from monai.utils import convert_to_dst_type, convert_to_tensor

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "LUMA_WEIGHTS"]

#: BT.601 luma weights for R, G, B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_CB_SCALE = 0.5 / (1.0 - LUMA_WEIGHTS[2])  # 0.564334...
_CR_SCALE = 0.5 / (1.0 - LUMA_WEIGHTS[0])  # 0.713267...


def _split(img: torch.Tensor, channel_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if img.shape[channel_dim] != 3:
        raise ValueError(f"colour conversion needs 3 channels on dim {channel_dim}, got shape {tuple(img.shape)}")
    a, b, c = torch.unbind(img, dim=channel_dim)
    return a, b, c


def rgb_to_ycbcr(img: NdarrayOrTensor, channel_dim: int = 0, value_range: float = 1.0) -> NdarrayOrTensor:
    """Convert RGB to Y, Cb, Cr (BT.601 full range), along ``channel_dim``.

    Args:
        img: ``(..., 3, ...)`` RGB values in ``[0, value_range]``; NumPy or torch, any spatial dims.
        channel_dim: the dimension holding R, G, B (0 for a channel-first image, 1 for a batch).
        value_range: 1.0 for ``[0, 1]`` data, 255 for 8-bit values (chroma offset = value_range / 2).

    Returns:
        Y, Cb, Cr stacked on ``channel_dim``, same type as ``img`` (float).
    """
    t = convert_to_tensor(img, track_meta=False)
    t = t.float() if not t.is_floating_point() else t
    r, g, b = _split(t, channel_dim)
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    half = value_range / 2.0
    cb = (b - y) * _CB_SCALE + half
    cr = (r - y) * _CR_SCALE + half
    out = torch.stack([y, cb, cr], dim=channel_dim)
    return convert_to_dst_type(out, dst=img, dtype=out.dtype)[0]


def ycbcr_to_rgb(img: NdarrayOrTensor, channel_dim: int = 0, value_range: float = 1.0, clip: bool = True) -> NdarrayOrTensor:
    """Convert Y, Cb, Cr (BT.601 full range) back to RGB; the exact inverse of :func:`rgb_to_ycbcr`.

    Args:
        img: ``(..., 3, ...)`` Y, Cb, Cr along ``channel_dim``.
        channel_dim: the dimension holding Y, Cb, Cr.
        value_range: as in :func:`rgb_to_ycbcr`.
        clip: clip the result to ``[0, value_range]`` (a fused Y with foreign chroma can leave the RGB gamut).

    Returns:
        R, G, B stacked on ``channel_dim``, same type as ``img``.
    """
    t = convert_to_tensor(img, track_meta=False)
    t = t.float() if not t.is_floating_point() else t
    y, cb, cr = _split(t, channel_dim)
    half = value_range / 2.0
    r = y + (cr - half) / _CR_SCALE
    b = y + (cb - half) / _CB_SCALE
    g = (y - LUMA_WEIGHTS[0] * r - LUMA_WEIGHTS[2] * b) / LUMA_WEIGHTS[1]
    out = torch.stack([r, g, b], dim=channel_dim)
    if clip:
        out = out.clamp(0.0, value_range)
    return convert_to_dst_type(out, dst=img, dtype=out.dtype)[0]
