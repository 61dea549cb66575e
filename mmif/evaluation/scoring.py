"""Fused outputs on disk and the exact arrays that are scored.

Scoring conventions:

- **2D** (the metric reference's, so numbers compare with published tables): the fused image is scored as written,
  i.e. its 8-bit PNG (RGB for a colour sample, grey otherwise) converted to grey with :func:`mmif.metrics.to_gray8`.
  The sources are read from their files as 8-bit and converted the same way; a source that is not 8-bit (16-bit PNG,
  float TIFF) is scored on its ``[0, 1]`` luminance from the loader, rounded to 8 bits.
- **3D**: the fused volume (``[0, 1]``, written as float32 NIfTI) and the sources' ``[0, 1]`` luminance from the
  loader, both multiplied by 255 and not rounded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from mmif.errors import InputError
from mmif.io import load_image, save_image, to_uint8

__all__ = ["quantize8", "fused_path", "fused_output_array", "write_fused", "source_scoring_arrays", "fused_scoring_array",
           "safe_component"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_component(text: str) -> str:
    """``text`` usable as one path component (runs of other characters become ``_``; never ``.``/``..``/empty)."""
    out = _UNSAFE.sub("_", str(text)).strip()
    return out if out not in ("", ".", "..") else "_"


def quantize8(image: np.ndarray | torch.Tensor, decimals: int = 4) -> np.ndarray:
    """``[0, 1]`` -> ``uint8``, exactly as every mmif writer does (:func:`mmif.io.to_uint8`)."""
    return to_uint8(image, decimals)


def fused_path(output_dir: str | os.PathLike, method: str, task: str, name: str, spatial_dims: int) -> Path:
    """``<output_dir>/fused/<method>/<task>/<name>.png`` (2D) or ``.nii.gz`` (3D)."""
    suffix = ".png" if spatial_dims == 2 else ".nii.gz"
    return Path(output_dir) / "fused" / safe_component(method) / safe_component(task) / (safe_component(name) + suffix)


def fused_output_array(fused: torch.Tensor, fused_rgb: torch.Tensor | None, spatial_dims: int) -> np.ndarray:
    """What is written for one sample.

    Args:
        fused: ``(1, *spatial)`` fused luminance in ``[0, 1]``.
        fused_rgb: ``(3, *spatial)`` colour result in ``[0, 1]`` for a colour sample, else ``None``.
        spatial_dims: 2 (8-bit PNG: ``uint8`` ``(1|3, H, W)``, see :func:`quantize8`) or 3 (``float32``
            ``(1, H, W, D)`` in ``[0, 1]``).
    """
    if spatial_dims == 2:
        return quantize8(fused_rgb if fused_rgb is not None else fused)
    return fused.detach().cpu().numpy().astype(np.float32)


def write_fused(path: Path, array: np.ndarray, affine: np.ndarray | torch.Tensor | None, inputs: set[Path]) -> Path:
    """Write one fused output atomically, refusing to replace any input file.

    Args:
        path: the target (from :func:`fused_path`).
        array: from :func:`fused_output_array`.
        affine: the source affine for NIfTI outputs (ignored for PNG).
        inputs: resolved paths of every input file of the evaluation.

    Raises:
        InputError: ``path`` is one of the inputs.
    """
    if path.resolve() in inputs:
        raise InputError(path, "output would overwrite an input file; choose another output folder")
    return save_image(path, array, affine=None if path.suffix == ".png" else affine)


def _gray8(u8: np.ndarray) -> np.ndarray:
    """Channel-first ``uint8`` ``(1|3, H, W)`` -> the reference grey image on 0..255 (float)."""
    from mmif.metrics import to_gray8

    return np.asarray(to_gray8(u8[0] if u8.shape[0] == 1 else np.moveaxis(u8, 0, -1)), dtype=np.float64)


def fused_scoring_array(written: np.ndarray, spatial_dims: int) -> np.ndarray:
    """The fused image as scored: ``(H, W)`` grey of the written 8-bit image, or ``(H, W, D)`` = volume × 255."""
    if spatial_dims == 2:
        return _gray8(written)
    return written[0].astype(np.float64) * 255.0


def _as_8bit(path: str) -> np.ndarray | None:
    img = load_image(path).numpy()
    if img.min() >= 0 and img.max() <= 255 and np.array_equal(img, np.round(img)):
        return img.astype(np.uint8)
    return None


def source_scoring_arrays(paths: list[str], luminance: torch.Tensor, spatial_dims: int) -> list[np.ndarray]:
    """The sources as scored (see the module docstring).

    Args:
        paths: the source files, in channel order.
        luminance: ``(M, *spatial)`` loader luminance in ``[0, 1]``.
        spatial_dims: 2 or 3.

    Returns:
        one ``(H, W)`` or ``(H, W, D)`` float array on 0..255 per source.
    """
    lum = luminance.detach().cpu().numpy() if isinstance(luminance, torch.Tensor) else np.asarray(luminance)
    if spatial_dims != 2:
        return [lum[i].astype(np.float64) * 255.0 for i in range(lum.shape[0])]
    out = []
    for i, p in enumerate(paths):
        u8 = _as_8bit(p)
        out.append(_gray8(u8) if u8 is not None else quantize8(lum[i]).astype(np.float64))
    return out
