"""Validation of fusion samples (datalist entries) while a datalist is built.

One place checks everything a sample can get wrong once its files are read:

- unreadable or corrupt files, an empty DICOM folder, NaN/Inf values (through :func:`mmif.io.load_image`);
- the channel count: MR and CT sources must be greyscale; PET/SPECT may be greyscale or RGB (pseudo-colour) in 2D;
  volumes are single-channel; at most one source of a sample may be colour;
- the dimensionality (a 2D file in a 3D sample or the reverse);
- the geometry between the sources of a sample: size, and for volumes spacing, orientation/direction and origin
  (through :func:`mmif.io.check_same_geometry`).

Each problem is one :class:`mmif.errors.InputError` whose message names the file (``"<path>: <problem>"``). With
``skip_bad=True`` the bad samples are dropped and returned as :class:`Problem` rows instead.

Pairing problems (a NAME in one modality folder but not the other, empty folders) are found while folders are
scanned, in :mod:`mmif.data.datalist`, and reported the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch

from mmif.errors import InputError
from mmif.io import check_same_geometry, load_image

__all__ = [
    "Problem",
    "source_kind",
    "order_modalities",
    "allowed_channels",
    "check_sample",
    "validate_samples",
]


class Problem(NamedTuple):
    """One skipped file or sample: ``(path, problem)``, the two halves of an :class:`InputError` message."""

    path: str
    problem: str

    @classmethod
    def from_error(cls, error: InputError) -> Problem:
        return cls(error.path or "", error.problem)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


def source_kind(modality: str) -> str:
    """How a modality is treated: ``"mr"`` (anatomical, first), ``"functional"`` (PET/SPECT, may be colour) or
    ``"other"`` (CT and unknown names: greyscale, after MR).

    The names are those of :func:`mmif.transforms.intensity.modality_group` (case-insensitive): ``MRI``, ``t1``,
    ``flair``, ... are MR; ``PET``, ``SPECT`` are functional.
    """
    from mmif.transforms.intensity import modality_group  # imported here: mmif.transforms may import mmif.data

    group = modality_group(modality)
    if group == "mr":
        return "mr"
    if group == "pet":
        return "functional"
    return "other"


_KIND_RANK = {"mr": 0, "other": 1, "functional": 2}


def order_modalities(modalities: Iterable[str]) -> list[str]:
    """Order modalities as the datalist wants them: MR first, then CT/other, then functional; stable otherwise."""
    mods = list(modalities)
    return sorted(mods, key=lambda m: _KIND_RANK[source_kind(m)])


def allowed_channels(modality: str, spatial_dims: int) -> tuple[int, ...]:
    """Channel counts a source may have: RGB only for a 2D functional image, greyscale otherwise."""
    if spatial_dims == 2 and source_kind(modality) == "functional":
        return (1, 3)
    return (1,)


def check_sample(entry: dict) -> None:
    """Read every source of one datalist entry and check it (see the module docstring).

    Args:
        entry: a datalist entry with ``image`` (paths), ``modalities`` and ``spatial_dims``.

    Raises:
        InputError: naming the first file at fault.
    """
    paths, modalities = list(entry["image"]), list(entry["modalities"])
    spatial_dims = int(entry.get("spatial_dims", 2))
    if len(paths) != len(modalities):
        raise InputError(paths[0] if paths else None, f"{len(paths)} source files but modalities {modalities}")
    images = []
    colour: str | None = None
    for path, modality in zip(paths, modalities):
        img = load_image(path, allowed_channels=(1, 3) if spatial_dims == 2 else (1,))
        if img.ndim - 1 != spatial_dims:
            raise InputError(path, f"is {img.ndim - 1}D, but this sample is {spatial_dims}D")
        channels = int(img.shape[0])
        if channels == 3 and bool((img[0] == img[1]).all() and (img[0] == img[2]).all()):
            channels = 1  # grey stored as RGB: the loader treats it as grey too
        if channels not in allowed_channels(modality, spatial_dims):
            raise InputError(
                path,
                f"is colour (RGB) but {modality} must be greyscale; "
                "only PET/SPECT may be colour (save it as a single-channel image)",
            )
        if channels == 3:
            if colour is not None:
                raise InputError(
                    path, f"is colour (RGB) like its partner {colour}; at most one source of a sample may be colour"
                )
            colour = os.fspath(path)
        images.append(img)
    check_same_geometry(images)


def validate_samples(
    entries: Sequence[dict], skip_bad: bool = False, progress: bool = False
) -> tuple[list[dict], list[Problem]]:
    """Check every entry with :func:`check_sample`.

    Args:
        entries: datalist entries.
        skip_bad: drop bad entries and report them instead of raising.
        progress: show a tqdm progress bar (on stderr).

    Returns:
        ``(good_entries, problems)``; ``problems`` is empty unless ``skip_bad``.

    Raises:
        InputError: the first bad entry, when not ``skip_bad``.
    """
    good: list[dict] = []
    problems: list[Problem] = []
    iterator: Iterable[dict] = entries
    if progress:
        from tqdm import tqdm

        iterator = tqdm(entries, desc="validating", unit="sample", leave=False, disable=None)  # off when not a tty
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reading small images: extra threads only contend (several times slower on 2 cores)
    try:
        for entry in iterator:
            try:
                check_sample(entry)
            except InputError as e:
                if not skip_bad:
                    raise
                problems.append(Problem.from_error(e))
                continue
            good.append(entry)
    finally:
        torch.set_num_threads(threads)
    return good, problems
