"""Paired augmentation: the same random crop, flips and rotation for every modality and the chroma.

MONAI's dictionary spatial transforms draw their random parameters once per call and apply them to all their keys, so
putting ``["image", "chroma"]`` in one transform keeps every source channel and the chroma aligned. The list is built in
Python by :func:`paired_augmentation`, or in a bundle config as one transform::

    {"_target_": "mmif.transforms.PairedAugmentationd", "spatial_dims": 2, "roi_size": [128, 128], "rotate": 0.26}

or as the list, with ``"imports": ["$from mmif.transforms import paired_augmentation"]`` and
``"$paired_augmentation(2, [128, 128], rotate=0.26)"`` (to splice into a list: ``"$[...] + paired_augmentation(...)"``).

Padding (to reach ``roi_size``, and at the corners of a rotation) repeats the border values, so the chroma stays
plausible (zero padding would turn neutral chroma 0.5 into a strong colour).
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    MapTransform,
    RandFlipd,
    RandRotate90d,
    RandRotated,
    RandSpatialCropd,
    RandSpatialCropSamplesd,
    SpatialPadd,
)
from monai.utils import ensure_tuple, ensure_tuple_rep

__all__ = ["paired_augmentation", "PairedAugmentationd", "PairedAugmentationD", "PairedAugmentationDict"]


def paired_augmentation(
    spatial_dims: int,
    roi_size: Sequence[int] | int | None,
    keys: KeysCollection = ("image", "chroma"),
    prob: float = 0.5,
    flip: bool = True,
    flip_axes: Sequence[int] | None = None,
    rotate: Sequence[float] | float = 0.0,
    rotate90: bool = False,
    padding_mode: str = "border",
    allow_missing_keys: bool = False,
    num_samples: int = 1,
) -> list[MapTransform]:
    """MONAI dictionary transforms that apply one random draw to all ``keys``: pad + random crop, flips, rotation.

    Args:
        spatial_dims: 2 or 3.
        roi_size: the crop size (an int for all axes); inputs smaller than it are padded first. ``None``: no crop.
        keys: the keys transformed together, by default the stacked sources and their chroma.
        prob: the probability of each flip, of the 90-degree rotation and of the rotation.
        flip: add one :class:`~monai.transforms.RandFlipd` per axis in ``flip_axes``.
        flip_axes: spatial axes that may flip (default: all).
        rotate: the largest rotation angle in radians, one for all axes or one per axis (1 in 2D, 3 in 3D); 0 for none.
        rotate90: add a :class:`~monai.transforms.RandRotate90d` in the first two spatial axes.
        padding_mode: the padding of the rotation (``"border"``, ``"zeros"``, ``"reflection"``); the crop pad is
            ``"edge"`` for ``"border"``, ``"constant"`` for ``"zeros"``, ``"reflect"`` for ``"reflection"``.
        allow_missing_keys: don't raise if a key (e.g. ``"chroma"``) is missing.
        num_samples: crops drawn from each input (:class:`~monai.transforms.RandSpatialCropSamplesd`); above 1 the
            transforms return a list of that many samples, which MONAI's ``Compose`` and ``DataLoader`` flatten into
            the batch (a batch of ``batch_size * num_samples`` crops). Worth it for volumes, whose loading and
            caching cost far more than a crop.

    Returns:
        the list of transforms, in the order pad, crop, flips, rotate90, rotate.

    Raises:
        ValueError: ``spatial_dims`` not 2 or 3, ``prob`` outside [0, 1], wrong lengths, or an unknown padding mode.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"paired_augmentation: spatial_dims must be 2 or 3, got {spatial_dims}")
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"paired_augmentation: prob must be in [0, 1], got {prob}")
    if int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"paired_augmentation: num_samples must be a positive int, got {num_samples}")
    if num_samples > 1 and roi_size is None:
        raise ValueError("paired_augmentation: num_samples > 1 needs a roi_size to crop")
    pad_modes = {"border": "edge", "zeros": "constant", "reflection": "reflect"}
    if padding_mode not in pad_modes:
        raise ValueError(f"paired_augmentation: padding_mode must be one of {sorted(pad_modes)}, got {padding_mode!r}")
    n_angles = 1 if spatial_dims == 2 else 3
    angles = tuple(float(a) for a in ensure_tuple(rotate))
    if len(angles) == 1:
        angles = angles * n_angles
    if len(angles) != n_angles or any(a < 0 for a in angles):
        raise ValueError(f"paired_augmentation: rotate must be one or {n_angles} non-negative angles, got {rotate}")
    axes = tuple(range(spatial_dims)) if flip_axes is None else tuple(int(a) for a in ensure_tuple(flip_axes))
    if any(not 0 <= a < spatial_dims for a in axes):
        raise ValueError(f"paired_augmentation: flip_axes must be in [0, {spatial_dims}), got {flip_axes}")
    common = {"keys": keys, "allow_missing_keys": allow_missing_keys}
    transforms: list[MapTransform] = []
    if roi_size is not None:
        size = ensure_tuple_rep(roi_size, spatial_dims)
        transforms.append(SpatialPadd(spatial_size=size, mode=pad_modes[padding_mode], **common))
        if num_samples > 1:
            transforms.append(RandSpatialCropSamplesd(roi_size=size, num_samples=int(num_samples), **common))
        else:
            transforms.append(RandSpatialCropd(roi_size=size, random_center=True, random_size=False, **common))
    if flip:
        transforms.extend(RandFlipd(prob=prob, spatial_axis=a, **common) for a in axes)
    if rotate90:
        transforms.append(RandRotate90d(prob=prob, max_k=3, spatial_axes=(0, 1), **common))
    if any(a > 0 for a in angles):
        ranges = dict(zip(("range_x", "range_y", "range_z"), angles))
        transforms.append(
            RandRotated(prob=prob, keep_size=True, mode="bilinear", padding_mode=padding_mode, **ranges, **common)
        )
    return transforms


class PairedAugmentationd(Compose):
    """The transforms of :func:`paired_augmentation` as one composable (and config-buildable) transform.

    Seeding it (``set_random_state``), directly or through an enclosing ``Compose``/``Dataset``, seeds every
    random transform in it.

    Args:
        spatial_dims: see :func:`paired_augmentation`.
        roi_size: see :func:`paired_augmentation`.
        keys: see :func:`paired_augmentation`.
        prob: see :func:`paired_augmentation`.
        flip: see :func:`paired_augmentation`.
        flip_axes: see :func:`paired_augmentation`.
        rotate: see :func:`paired_augmentation`.
        rotate90: see :func:`paired_augmentation`.
        padding_mode: see :func:`paired_augmentation`.
        allow_missing_keys: see :func:`paired_augmentation`.
        num_samples: see :func:`paired_augmentation`.

    Raises:
        ValueError: as :func:`paired_augmentation`, naming this class.
    """

    def __init__(
        self,
        spatial_dims: int,
        roi_size: Sequence[int] | int | None,
        keys: KeysCollection = ("image", "chroma"),
        prob: float = 0.5,
        flip: bool = True,
        flip_axes: Sequence[int] | None = None,
        rotate: Sequence[float] | float = 0.0,
        rotate90: bool = False,
        padding_mode: str = "border",
        allow_missing_keys: bool = False,
        num_samples: int = 1,
    ) -> None:
        try:
            transforms = paired_augmentation(
                spatial_dims, roi_size, keys, prob, flip, flip_axes, rotate, rotate90, padding_mode,
                allow_missing_keys, num_samples,
            )
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {e}") from e
        super().__init__(transforms)


PairedAugmentationD = PairedAugmentationDict = PairedAugmentationd
