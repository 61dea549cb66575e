"""Loading the sources of one fusion sample into the in-memory sample of ``docs/conventions.md``.

A datalist entry ``{"image": [path, ...], "modalities": [...], "task", "name", "case_id"}`` becomes

- ``image``: ``(M, *spatial)`` float32 :class:`~monai.data.MetaTensor`, the luminance of each source in ``[0, 1]``
  (colour sources give their BT.601 Y), channel order = ``modalities``, meta and affine of the first source;
- ``chroma``: ``(2, *spatial)`` float32 MetaTensor, Cb and Cr of the colour source in ``[0, 1]`` (0.5 when no source is
  colour), the image's meta (so that samples collate) with ``filename_or_obj`` naming the colour source;
- ``is_color``: ``bool``;
- the other fields of the entry unchanged.

The steps are the array transforms of this package: :func:`mmif.io.load_image`, :func:`mmif.io.check_same_geometry`,
:class:`~mmif.transforms.ModalityScaleIntensity` (per source, on all its channels) and
:class:`~mmif.transforms.SplitLuminance`.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import convert_to_tensor, ensure_tuple

from mmif.errors import InputError
from mmif.io import check_same_geometry, image_suffix, is_raster, load_image
from mmif.transforms.color import SplitLuminance, is_color_image
from mmif.transforms.intensity import ModalityScaleIntensity

__all__ = ["LoadFusionSourcesd", "LoadFusionSourcesD", "LoadFusionSourcesDict", "modality_from_path"]


def modality_from_path(path: str | Path) -> str:
    """Guess a modality name from a file path: the folder name for 2D rasters (``.../MRI/2004.png`` -> ``MRI``), the
    file stem for volumes (``case/t1.nii.gz`` -> ``t1``) and the folder name of a DICOM series."""
    p = Path(path)
    if is_raster(p):
        return p.parent.name
    if p.is_dir():
        return p.name
    suffix = image_suffix(p)
    return p.name[: len(p.name) - len(suffix)] if suffix else p.name


class LoadFusionSourcesd(MapTransform):
    """Load, check, scale and stack the sources of a fusion sample (see :mod:`mmif.transforms.loading`).

    Works in a MONAI ``Dataset``/``CacheDataset`` (the transform is deterministic, so its output can be cached) and
    collates with the default ``list_data_collate``: ``image`` ``(B, M, *spatial)``, ``chroma`` ``(B, 2, *spatial)``,
    ``is_color`` a bool tensor ``(B,)``, strings as lists (``modalities`` transposed by PyTorch's collation into one
    tuple per source).

    Args:
        keys: the key(s) holding the list of source paths (replaced by the stacked luminance).
        modalities_key: the key of the modality names, one per source. When absent from a sample, the names are
            guessed from the paths (:func:`modality_from_path`) and stored there.
        chroma_key: where to store the chroma.
        is_color_key: where to store the colour flag.
        color_atol: an RGB source whose channels differ by at most this (0..255 scale for 8-bit files) is grey.
        ct_window: see :class:`~mmif.transforms.ModalityScaleIntensity`.
        pet_percentile: see :class:`~mmif.transforms.ModalityScaleIntensity`.
        mr_percentiles: see :class:`~mmif.transforms.ModalityScaleIntensity`.
        extra_groups: see :class:`~mmif.transforms.ModalityScaleIntensity`.
        allow_missing_keys: don't raise if a key is missing.

    Raises:
        InputError: (when called) naming the file: missing or unreadable, a channel count other than 1 or 3, NaN/Inf,
            size/spacing/affine different from the first source, more than one colour source, a colour volume outside
            0..255, a dimensionality that differs from the entry's ``spatial_dims``, or as many modality names as
            sources not given.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        modalities_key: str = "modalities",
        chroma_key: str = "chroma",
        is_color_key: str = "is_color",
        color_atol: float = 0.0,
        ct_window: Sequence[float] = (-1000.0, 2000.0),
        pet_percentile: float = 99.9,
        mr_percentiles: Sequence[float] = (0.5, 99.5),
        extra_groups: Mapping[str, str] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if color_atol < 0:
            raise ValueError(f"{type(self).__name__}: color_atol must be >= 0, got {color_atol}")
        self.modalities_key = modalities_key
        self.chroma_key = chroma_key
        self.is_color_key = is_color_key
        self.color_atol = color_atol
        self.scaler = ModalityScaleIntensity(
            ct_window=ct_window, pet_percentile=pet_percentile, mr_percentiles=mr_percentiles, extra_groups=extra_groups
        )
        self.splitter = SplitLuminance(value_range=1.0)

    def _paths(self, value: Any, key: Hashable) -> list[str]:
        if isinstance(value, (str, Path)):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, (str, Path)) for v in value):
            raise InputError(None, f"datalist entry {key!r} must be a non-empty list of file paths, got {value!r}")
        return [str(v) for v in value]

    def load(
        self, paths: Sequence[str], modalities: Sequence[str], spatial_dims: int | None = None
    ) -> tuple[MetaTensor, MetaTensor, bool]:
        """Load one sample's sources.

        Args:
            paths: the source files, in channel order.
            modalities: one modality name per path.
            spatial_dims: the expected number of spatial dimensions (2 or 3), or ``None`` not to check.

        Returns:
            ``(image, chroma, is_color)``: ``(M, *spatial)`` and ``(2, *spatial)`` float32 MetaTensors and a bool.
        """
        if len(modalities) != len(paths):
            raise InputError(
                paths[0],
                f"the datalist entry has {len(paths)} source files but {len(modalities)} modality names "
                f"{list(modalities)}",
            )
        images = [load_image(p) for p in paths]
        for img, path in zip(images, paths):
            if img.ndim - 1 not in (2, 3):
                raise InputError(path, f"has {img.ndim - 1} spatial dimensions, expected 2 or 3")
            if spatial_dims is not None and img.ndim - 1 != int(spatial_dims):
                raise InputError(
                    path, f"has {img.ndim - 1} spatial dimensions but the datalist says {int(spatial_dims)}"
                )
        check_same_geometry(images)
        color = [is_color_image(img, atol=self.color_atol) for img in images]
        if sum(color) > 1:
            names = [p for p, c in zip(paths, color) if c]
            raise InputError(names[1], f"more than one colour source ({', '.join(names)}); at most one may be RGB")
        lumas, chroma, chroma_file = [], None, None
        for img, path, modality, is_col in zip(images, paths, modalities, color):
            if img.shape[0] == 3 and not is_raster(path) and float(img.max()) > 255.0:
                raise InputError(path, "colour volume with values above 255 (expected 8-bit RGB)")
            # an RGB source is 8-bit: scaled like a raster, so that its three channels keep their balance
            scaled = self.scaler(img, modality=modality, raster=is_raster(path) or img.shape[0] == 3)
            y, c = self.splitter(scaled)
            lumas.append(convert_to_tensor(y, track_meta=False))
            if is_col:
                chroma, chroma_file = convert_to_tensor(c, track_meta=False), path
        meta = dict(images[0].meta)
        image = MetaTensor(torch.cat(lumas, dim=0).float(), meta=meta)
        if chroma is None:
            chroma = torch.full((2, *image.shape[1:]), 0.5, dtype=torch.float32)
        # same meta as the image (so that samples collate), naming the file the chroma came from
        chroma_meta = copy.deepcopy(meta)
        chroma_meta["filename_or_obj"] = chroma_file or meta.get("filename_or_obj")
        chroma = MetaTensor(chroma.float(), meta=chroma_meta)
        return image, chroma, bool(any(color))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            paths = self._paths(d[key], key)
            if self.modalities_key in d:
                modalities = [str(m) for m in ensure_tuple(d[self.modalities_key])]
            else:
                modalities = [modality_from_path(p) for p in paths]
                d[self.modalities_key] = modalities
            d[key], d[self.chroma_key], d[self.is_color_key] = self.load(paths, modalities, d.get("spatial_dims"))
        return d


LoadFusionSourcesD = LoadFusionSourcesDict = LoadFusionSourcesd
