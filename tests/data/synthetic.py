"""Small synthetic files for the data tests (written into temporary folders)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

__all__ = ["write_png", "write_nifti", "write_pair_folder", "LAS_AFFINE"]

LAS_AFFINE = np.array([[-1.5, 0, 0, 30.0], [0, 1.5, 0, -20.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])


def write_png(path: Path, size=(16, 16), rgb: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(*size, 3) if rgb else size, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_nifti(path: Path, shape=(8, 9, 7), affine=LAS_AFFINE, seed: int = 0, data=None) -> Path:
    arr = np.random.default_rng(seed).random(shape).astype(np.float32) if data is None else data
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64))
    img.set_qform(np.asarray(affine, dtype=np.float64), code=1)
    img.set_sform(np.asarray(affine, dtype=np.float64), code=1)
    nib.save(img, str(path))
    return path


def write_pair_folder(
    root: Path, task: str = "MRI_CT", names=("1001", "1002", "2001", "2002"), split: str | None = None,
    colour: tuple[str, ...] = ("PET", "SPECT"),
) -> Path:
    """``root/task/[split/]{mod}/NAME.png`` for each modality of the task name; PET/SPECT in colour."""
    base = root / task / split if split else root / task
    for m in task.split("_"):
        for i, name in enumerate(names):
            write_png(base / m / f"{name}.png", rgb=m in colour, seed=hash((m, i)) % 1000)
    return root
