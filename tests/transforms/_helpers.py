"""Shared helpers for the transform tests: input types, generated images written to temporary folders."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from PIL import Image

__all__ = ["TEST_NDARRAYS", "to_numpy", "write_png", "write_nifti", "smooth_rgb", "luma_np", "chroma_np"]

#: the input types every array transform must accept (and give back)
TEST_NDARRAYS = (np.asarray, torch.as_tensor, lambda x: MetaTensor(torch.as_tensor(x)))


def to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def write_png(path: Path, arr: np.ndarray) -> str:
    """Write ``(H, W)`` grey or ``(H, W, C)`` uint8 as PNG (C = 2 gives mode LA, 4 gives RGBA)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return str(path)


def write_nifti(path: Path, arr: np.ndarray, spacing=(2.0, 2.0, 2.0), origin=(-90.0, -126.0, -72.0)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    nib.save(nib.Nifti1Image(arr.astype(np.float32), affine), str(path))
    return str(path)


def smooth_rgb(rng: np.random.Generator, shape=(32, 40)) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` image with real colour (not all channels equal)."""
    return rng.integers(0, 256, (*shape, 3)).astype(np.uint8)


def luma_np(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of ``(..., 3)`` RGB, computed independently in NumPy (float64)."""
    rgb = rgb.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def chroma_np(rgb: np.ndarray, offset: float) -> np.ndarray:
    """``(2, ...)`` Cb, Cr of ``(..., 3)`` RGB (BT.601 full range) with the given chroma offset."""
    rgb = rgb.astype(np.float64)
    y = luma_np(rgb)
    return np.stack([(rgb[..., 2] - y) / 1.772 + offset, (rgb[..., 0] - y) / 1.402 + offset])
