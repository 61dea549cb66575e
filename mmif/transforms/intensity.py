"""Modality-aware intensity scaling of source images to ``[0, 1]``.

Each source is scaled by a rule chosen from its modality name (case-insensitive) and from where it came from:

=====================  ===============================================================================================
source                 rule
=====================  ===============================================================================================
8-bit raster (PNG...)  ``x / 255`` whatever the modality (``x / 65535`` when a raster holds values above 255: 16-bit)
CT                     the window ``ct_window`` (default ``[-1000, 2000]`` HU) mapped to ``[0, 1]``. A CT with no
                       negative value (no air at -1000 HU, so not in HU) whose values lie in ``[0, 1]`` is taken as
                       already scaled and only clipped; any other non-negative CT is scaled by its min and max.
PET, SPECT             ``[0, percentile(pet_percentile)]`` (default 99.9) mapped to ``[0, 1]``
MR (t1, t2, flair...)  ``[percentile(mr_percentiles[0]), percentile(mr_percentiles[1])]`` (default 0.5, 99.5)
anything else          min-max (``[percentile 0, percentile 100]``)
=====================  ===============================================================================================

Results are clipped to ``[0, 1]``. When a range is empty (a constant image, or a PET whose upper percentile is 0),
the image maximum is used as upper bound, and an image that is constant gives zeros.
Percentiles are computed over all channels of the image together (an RGB source keeps its colour balance).
The mapping itself is MONAI's :class:`~monai.transforms.ScaleIntensityRange`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, ScaleIntensityRange, Transform
from monai.transforms.utils_pytorch_numpy_unification import percentile
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple

from mmif.errors import InputError
from mmif.io import is_raster

__all__ = [
    "MODALITY_GROUPS",
    "modality_group",
    "intensity_range",
    "ModalityScaleIntensity",
    "ModalityScaleIntensityd",
    "ModalityScaleIntensityD",
    "ModalityScaleIntensityDict",
]

#: Lower-case modality name -> scaling group (``"ct"``, ``"pet"`` or ``"mr"``).
#: Names that are not listed but start with ``t1``/``t2`` are MR too.
MODALITY_GROUPS: dict[str, str] = {
    **{m: "ct" for m in ("ct", "cta", "cect", "ncct")},
    **{m: "pet" for m in ("pet", "pt", "spect", "nm", "fdg")},
    **{
        m: "mr"
        for m in ("mri", "mr", "t1", "t2", "pd", "flair", "t1c", "t1ce", "t1gd", "t1w", "t2w", "pdw", "epi", "dwi",
                  "adc", "swi", "mra", "dti", "bold", "gre")
    },
}

_GROUPS = ("ct", "pet", "mr")


def modality_group(modality: str | None, extra: Mapping[str, str] | None = None) -> str | None:
    """The scaling group of a modality name (``"ct"``, ``"pet"``, ``"mr"``), or ``None`` when it is unknown.

    Args:
        modality: e.g. ``"CT"``, ``"SPECT"``, ``"t1c"``, ``"FLAIR"`` (case-insensitive).
        extra: more names, lower-case, that take precedence over :data:`MODALITY_GROUPS`.
    """
    if modality is None:
        return None
    name = str(modality).strip().lower()
    if extra and name in extra:
        return extra[name]
    if name in MODALITY_GROUPS:
        return MODALITY_GROUPS[name]
    if name.startswith(("t1", "t2")):
        return "mr"
    return None


def intensity_range(
    img: NdarrayOrTensor,
    modality: str | None,
    raster: bool = False,
    ct_window: Sequence[float] = (-1000.0, 2000.0),
    pet_percentile: float = 99.9,
    mr_percentiles: Sequence[float] = (0.5, 99.5),
    extra_groups: Mapping[str, str] | None = None,
) -> tuple[float, float]:
    """The input range ``(a_min, a_max)`` that :class:`ModalityScaleIntensity` maps to ``[0, 1]`` (rules in the module
    docstring). ``a_max <= a_min`` only for a constant image."""
    t = convert_to_tensor(img, track_meta=False, dtype=torch.float32)
    vmin, vmax = float(t.min()), float(t.max())
    group = modality_group(modality, extra_groups)
    if raster:
        lo, hi = 0.0, (255.0 if vmax <= 255.0 else 65535.0)
    elif group == "ct":
        if vmin < 0.0:
            lo, hi = float(ct_window[0]), float(ct_window[1])
        elif vmax <= 1.0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = vmin, vmax
    elif group == "pet":
        lo, hi = 0.0, float(percentile(t, pet_percentile))
    elif group == "mr":
        lo, hi = float(percentile(t, mr_percentiles[0])), float(percentile(t, mr_percentiles[1]))
    else:
        lo, hi = vmin, vmax
    if hi <= lo:  # e.g. a mostly empty PET: fall back to the maximum
        hi = vmax
    return lo, hi


class ModalityScaleIntensity(Transform):
    """Scale a source image to ``[0, 1]`` by a rule chosen from its modality (see :mod:`mmif.transforms.intensity`).

    Args:
        modality: the modality name (``"CT"``, ``"PET"``, ``"SPECT"``, ``"MRI"``, ``"t1"``, ``"flair"``...); may also
            be given per call.
        raster: whether the image came from an 8-bit/16-bit raster file (PNG, JPEG, TIFF). ``None``: decided from the
            file name in a :class:`~monai.data.MetaTensor`'s ``filename_or_obj`` (``False`` when there is none).
        ct_window: ``(a_min, a_max)`` in HU mapped to ``[0, 1]`` for CT.
        pet_percentile: the percentile mapped to 1 for PET/SPECT (0 maps to 0).
        mr_percentiles: ``(lower, upper)`` percentiles mapped to 0 and 1 for MR.
        extra_groups: extra modality names (lower-case) mapped to ``"ct"``, ``"pet"`` or ``"mr"``.
        dtype: output data type.

    Raises:
        ValueError: a window or percentile pair that is not increasing, a percentile outside ``[0, 100]``, or an
            unknown group in ``extra_groups``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        modality: str | None = None,
        raster: bool | None = None,
        ct_window: Sequence[float] = (-1000.0, 2000.0),
        pet_percentile: float = 99.9,
        mr_percentiles: Sequence[float] = (0.5, 99.5),
        extra_groups: Mapping[str, str] | None = None,
        dtype: DtypeLike = np.float32,
    ) -> None:
        name = type(self).__name__
        ct_window, mr_percentiles = tuple(map(float, ct_window)), tuple(map(float, mr_percentiles))
        if len(ct_window) != 2 or ct_window[1] <= ct_window[0]:
            raise ValueError(f"{name}: ct_window must be (low, high) with low < high, got {ct_window}")
        if len(mr_percentiles) != 2 or not 0.0 <= mr_percentiles[0] < mr_percentiles[1] <= 100.0:
            raise ValueError(
                f"{name}: mr_percentiles must be (low, high) with 0 <= low < high <= 100, got {mr_percentiles}"
            )
        if not 0.0 < pet_percentile <= 100.0:
            raise ValueError(f"{name}: pet_percentile must be in (0, 100], got {pet_percentile}")
        extra = {str(k).lower(): str(v).lower() for k, v in (extra_groups or {}).items()}
        bad = sorted(set(extra.values()) - set(_GROUPS))
        if bad:
            raise ValueError(f"{name}: extra_groups values must be one of {_GROUPS}, got {bad}")
        self.modality = modality
        self.raster = raster
        self.ct_window = ct_window
        self.pet_percentile = float(pet_percentile)
        self.mr_percentiles = mr_percentiles
        self.extra_groups = extra
        self.dtype = dtype

    def __call__(
        self, img: NdarrayOrTensor, modality: str | None = None, raster: bool | None = None
    ) -> NdarrayOrTensor:
        """
        Args:
            img: ``(C, H, W[, D])`` source intensities (C = 1, or 3 for colour).
            modality: overrides the constructor's ``modality``.
            raster: overrides the constructor's ``raster``.

        Returns:
            ``img`` scaled to ``[0, 1]``, same type (float32 by default).
        """
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        modality = self.modality if modality is None else modality
        raster = self.raster if raster is None else raster
        if raster is None:
            fname = img_t.meta.get("filename_or_obj") if isinstance(img_t, MetaTensor) else None
            raster = bool(fname) and is_raster(str(fname))
        lo, hi = intensity_range(
            img_t, modality, raster, self.ct_window, self.pet_percentile, self.mr_percentiles, self.extra_groups
        )
        if hi <= lo:  # constant image
            ret = torch.zeros_like(convert_to_tensor(img_t, track_meta=False), dtype=torch.float32)
        else:
            scaled = ScaleIntensityRange(lo, hi, 0.0, 1.0, clip=True, dtype=None)(
                convert_to_tensor(img_t, track_meta=False, dtype=torch.float32)
            )
            ret = convert_to_tensor(scaled, track_meta=False)
        return convert_to_dst_type(ret, dst=img, dtype=self.dtype or ret.dtype)[0]


class ModalityScaleIntensityd(MapTransform):
    """Dictionary-based wrapper of :py:class:`mmif.transforms.ModalityScaleIntensity`.

    Each channel of a stacked image ``(M, *spatial)`` is scaled by its own modality, read from the sample
    (``d[modalities_key]``, one name per channel) unless ``modalities`` is given.

    Args:
        keys: keys of the stacked images.
        modalities_key: the sample key holding the modality names.
        modalities: fixed modality names (one per channel), overriding ``modalities_key``.
        raster: see :class:`ModalityScaleIntensity`; one value for all channels.
        ct_window: see :class:`ModalityScaleIntensity`.
        pet_percentile: see :class:`ModalityScaleIntensity`.
        mr_percentiles: see :class:`ModalityScaleIntensity`.
        extra_groups: see :class:`ModalityScaleIntensity`.
        dtype: see :class:`ModalityScaleIntensity`.
        allow_missing_keys: don't raise if a key is missing.

    Raises:
        InputError: (when called) the number of modality names differs from the number of channels; the message names
            the image file.
    """

    backend = ModalityScaleIntensity.backend

    def __init__(
        self,
        keys: KeysCollection,
        modalities_key: str = "modalities",
        modalities: Sequence[str] | None = None,
        raster: bool | None = None,
        ct_window: Sequence[float] = (-1000.0, 2000.0),
        pet_percentile: float = 99.9,
        mr_percentiles: Sequence[float] = (0.5, 99.5),
        extra_groups: Mapping[str, str] | None = None,
        dtype: DtypeLike = np.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.modalities_key = modalities_key
        self.modalities = None if modalities is None else tuple(ensure_tuple(modalities))
        self.scaler = ModalityScaleIntensity(
            raster=raster,
            ct_window=ct_window,
            pet_percentile=pet_percentile,
            mr_percentiles=mr_percentiles,
            extra_groups=extra_groups,
            dtype=dtype,
        )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        modalities = self.modalities if self.modalities is not None else tuple(ensure_tuple(d[self.modalities_key]))
        for key in self.key_iterator(d):
            img = convert_to_tensor(d[key], track_meta=get_track_meta())
            if len(modalities) != img.shape[0]:
                fname = img.meta.get("filename_or_obj") if isinstance(img, MetaTensor) else None
                raise InputError(
                    fname or key, f"{len(modalities)} modality names {list(modalities)} for {img.shape[0]} channels"
                )
            channels = [self.scaler(img[i : i + 1], modality=m) for i, m in enumerate(modalities)]
            out = torch.cat([convert_to_tensor(c, track_meta=False) for c in channels], dim=0)
            d[key] = convert_to_dst_type(out, dst=d[key], dtype=out.dtype)[0]
        return d


ModalityScaleIntensityD = ModalityScaleIntensityDict = ModalityScaleIntensityd
