"""Tiny generated fusion samples for the evaluation tests (2D grey+grey, 2D grey+RGB, 3D grey+grey)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

__all__ = ["blobs", "write_2d_layout", "write_3d_case", "AFFINE_3D"]

#: a non-trivial voxel-to-world matrix (anisotropic spacing, flipped x, shifted origin)
AFFINE_3D = np.array([[-1.5, 0.0, 0.0, 20.0], [0.0, 1.0, 0.0, -11.0], [0.0, 0.0, 2.5, 5.5], [0.0, 0.0, 0.0, 1.0]])


def blobs(shape: tuple[int, ...], seed: int, n: int = 5) -> np.ndarray:
    """A smooth image in ``[0, 1]``: a sum of random Gaussian blobs (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 1, s) for s in shape], indexing="ij")
    out = np.zeros(shape)
    for _ in range(n):
        c, w, a = rng.uniform(0.2, 0.8, len(shape)), rng.uniform(0.05, 0.2), rng.uniform(0.3, 1.0)
        out += a * np.exp(-sum((g - ci) ** 2 for g, ci in zip(grids, c)) / (2 * w**2))
    return out / out.max()


def _png(path: Path, arr: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(arr * 255).astype(np.uint8)).save(path)
    return str(path)


def write_2d_layout(root: Path, n: int = 2, size: int = 32, split: str = "test") -> dict:
    """Write ``root/{MRI_CT,MRI_PET}/<split>/{MRI,CT|PET}/<name>.png`` and return the matching datalist."""
    entries = []
    for t, (task, other) in enumerate((("MRI_CT", "CT"), ("MRI_PET", "PET"))):
        for i in range(n):
            name = f"{7 + t}{i:03d}"
            mri = _png(root / task / split / "MRI" / f"{name}.png", blobs((size, size), 10 * t + i))
            base = blobs((size, size), 100 + 10 * t + i)
            if other == "PET":  # pseudo-colour: a hot-ish colour map of the base image
                rgb = np.stack([np.clip(base * 1.5, 0, 1), base**2, 0.3 * base * (1 - base)], axis=-1)
                src = _png(root / task / split / other / f"{name}.png", rgb)
            else:
                src = _png(root / task / split / other / f"{name}.png", base)
            entries.append({"image": [mri, src], "modalities": ["MRI", other], "task": task, "name": name,
                            "case_id": name[:-3], "spatial_dims": 2})
    return {split: entries}


def write_3d_case(root: Path, shape: tuple[int, int, int] = (16, 14, 12)) -> dict:
    """Write ``root/case1/{t1,pet}.nii.gz`` (shared affine :data:`AFFINE_3D`) and return the matching datalist."""
    case = root / "case1"
    case.mkdir(parents=True, exist_ok=True)
    paths = []
    for mod, seed, scale in (("t1", 1, 800.0), ("pet", 2, 5.0)):
        p = case / f"{mod}.nii.gz"
        nib.save(nib.Nifti1Image((blobs(shape, seed) * scale).astype(np.float32), AFFINE_3D), p)
        paths.append(str(p))
    return {"test": [{"image": paths, "modalities": ["t1", "pet"], "task": "t1_pet", "name": "case1",
                      "case_id": "case1", "spatial_dims": 3}]}
