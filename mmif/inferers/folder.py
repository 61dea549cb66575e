"""Fusing a folder: finding the samples of ``DIR/{MRI, CT|PET|SPECT}/NAME.ext`` and writing ``OUT/NAME.png|.nii.gz``.

Shared by ``mmif fuse --input-dir`` and the bundles' ``inference.json``:

- :func:`find_fusion_samples` pairs the files of the modality folders of ``DIR`` by ``NAME`` (2D rasters or volumes,
  e.g. ``DIR/MRI/case1.nii.gz`` + ``DIR/PET/case1.nii.gz``), anatomical (MR) source first;
- :class:`SaveFusedd` writes one fused sample: a PNG for 2D (RGB with the colour source's chroma for PET/SPECT,
  greyscale otherwise; 8-bit) and a float32 NIfTI with the first source's affine for volumes. It never overwrites an
  input file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from mmif.errors import InputError
from mmif.io import RASTER_SUFFIXES, VOLUME_SUFFIXES, image_suffix, is_raster, save_image

__all__ = ["find_fusion_samples", "fused_output_path", "SaveFusedd", "SaveFusedD", "SaveFusedDict"]

_SUFFIXES = RASTER_SUFFIXES + VOLUME_SUFFIXES


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text))


def _stem(path: Path) -> str:
    return path.name[: -len(image_suffix(path))]


def find_fusion_samples(input_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The fusion samples of ``input_dir`` = ``DIR/{MRI, CT|PET|SPECT}/NAME.ext``, one per ``NAME``.

    Every sub-folder holding images is a modality (2 or more; ``MRI``/``PET``/``SPECT``/``CT`` or any name). Files are
    paired by name without suffix; every name must be present in every modality folder.

    Args:
        input_dir: the folder.

    Returns:
        datalist entries ``{"image": [paths, MR first], "modalities", "task": DIR's name, "name", "spatial_dims"}``
        in natural name order.

    Raises:
        InputError: ``input_dir`` missing, fewer than 2 modality folders, a file without partner (naming it and the
            folder that lacks it), or a name that is 2D in one folder and a volume in another.
    """
    from mmif.data.validation import order_modalities

    root = Path(input_dir)
    if not root.is_dir():
        raise InputError(root, "input folder not found")
    folders: dict[str, dict[str, Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = {
            _stem(p): p
            for p in sorted(sub.iterdir())
            if not p.name.startswith(".") and p.is_file() and image_suffix(p) in _SUFFIXES
        }
        if files:
            folders[sub.name] = files
    if len(folders) < 2:
        found = ", ".join(folders) or "none"
        raise InputError(root, f"needs at least two modality folders with images (e.g. MRI and CT), found: {found}")
    modalities = order_modalities(folders)
    names = sorted(set().union(*(set(f) for f in folders.values())), key=_natural)
    samples = []
    for name in names:
        missing = [m for m in modalities if name not in folders[m]]
        if missing:
            present = next(folders[m][name] for m in modalities if name in folders[m])
            raise InputError(present, f"has no partner {name}.* in {', '.join(str(root / m) for m in missing)}")
        paths = [folders[m][name] for m in modalities]
        dims = {2 if is_raster(p) else 3 for p in paths}
        if len(dims) > 1:
            raise InputError(paths[0], f"mixes 2D images and volumes: {', '.join(map(str, paths))}")
        samples.append(
            {
                "image": [str(p) for p in paths],
                "modalities": list(modalities),
                "task": root.name,
                "name": name,
                "spatial_dims": dims.pop(),
            }
        )
    return samples


def fused_output_path(output_dir: str | os.PathLike, name: str, spatial_dims: int) -> Path:
    """``OUT/NAME.png`` for 2D, ``OUT/NAME.nii.gz`` for 3D."""
    return Path(output_dir) / (str(name) + (".png" if int(spatial_dims) == 2 else ".nii.gz"))


def _protected_paths(protected: Iterable[Any] | None) -> set[Path]:
    out: set[Path] = set()
    for item in protected or ():
        if isinstance(item, Mapping):
            out.update(Path(p).resolve() for p in item.get("image", ()))
        else:
            out.add(Path(item).resolve())
    return out


class SaveFusedd(MapTransform):
    """Write a fused sample to ``output_dir/NAME.png`` (2D) or ``output_dir/NAME.nii.gz`` (3D), atomically.

    The item holds the fused luminance ``key`` ``(1, *spatial)`` in [0, 1] and, from the loading transforms,
    ``chroma`` ``(2, *spatial)``, ``is_color`` and ``name``. 2D colour samples are written as RGB (fused Y + the colour
    source's Cb/Cr, :func:`mmif.fusion.recombine_color`), grey samples as 8-bit greyscale; volumes as float32 NIfTI
    with the affine of the fused tensor (a :class:`~monai.data.MetaTensor` carrying the first source's geometry) or of
    ``image_key``. The written path is stored in ``item["fused_path"]``.

    Args:
        keys: the key of the fused luminance (``"pred"`` in MONAI engines).
        output_dir: the output folder.
        protected: input files never to overwrite (paths, or datalist entries whose ``image`` lists are taken).
        name_key: the key of the sample's name.
        image_key: the key of the sources (their geometry is used when the fused tensor has none).
        chroma_key: the key of the chroma.
        is_color_key: the key of the colour flag.
        allow_missing_keys: don't raise if a key is missing.

    Raises:
        InputError: (when called) the target is one of the ``protected`` files or the item's source files.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        output_dir: str | os.PathLike = ".",
        protected: Iterable[Any] | None = None,
        name_key: str = "name",
        image_key: str = "image",
        chroma_key: str = "chroma",
        is_color_key: str = "is_color",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.protected = _protected_paths(protected)
        self.name_key = name_key
        self.image_key = image_key
        self.chroma_key = chroma_key
        self.is_color_key = is_color_key

    def _sources(self, d: Mapping[Hashable, Any]) -> set[Path]:
        out = set()
        for key in (self.image_key, self.chroma_key):
            meta = getattr(d.get(key), "meta", None) or {}
            if meta.get("filename_or_obj"):
                out.add(Path(str(meta["filename_or_obj"])).resolve())
        return out

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from mmif.fusion.apply import recombine_color

        d = dict(data)
        for key in self.key_iterator(d):
            fused = d[key]
            spatial_dims = fused.ndim - 1
            name = d.get(self.name_key)
            if name is None:
                src = getattr(d.get(self.image_key), "meta", {}).get("filename_or_obj") or "fused"
                name = _stem(Path(str(src))) if image_suffix(str(src)) else Path(str(src)).name
            path = fused_output_path(self.output_dir, str(name), spatial_dims)
            if path.resolve() in self.protected | self._sources(d):
                raise InputError(path, "output would overwrite an input file; choose another output folder")
            y = torch.as_tensor(fused).detach().float().cpu().clamp(0.0, 1.0)
            if spatial_dims == 2:
                flag = d.get(self.is_color_key, False)
                is_color = bool(torch.as_tensor(flag).any()) if flag is not None else False
                chroma = d.get(self.chroma_key)
                if is_color and chroma is not None:
                    c = torch.as_tensor(chroma).detach().float().cpu()[None]
                    out = recombine_color(y[None], c, torch.tensor([True]))[0]
                else:
                    out = y
                save_image(path, out.numpy())
            else:
                affine = getattr(fused, "affine", None)
                if affine is None or getattr(fused, "meta", {}).get("filename_or_obj") is None:
                    affine = getattr(d.get(self.image_key), "affine", affine)
                save_image(path, y.numpy(), affine=affine)
            d["fused_path"] = str(path)
        return d


SaveFusedD = SaveFusedDict = SaveFusedd
