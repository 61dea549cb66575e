"""What an evaluation runs on: the samples of one datalist split, or of a folder in the common layout.

A sample is one datalist entry (see ``docs/conventions.md``):
``{"image": [paths...], "modalities": [...], "task": ..., "name": ..., "spatial_dims": 2|3}``.
Missing ``task``/``name``/``modalities``/``spatial_dims`` are filled in here so that every later step can rely on them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmif.errors import InputError
from mmif.io import image_suffix, is_raster

__all__ = ["resolve_samples", "normalize_entry", "DEFAULT_TASK"]

#: task name for entries that do not give one
DEFAULT_TASK = "default"


def normalize_entry(entry: Mapping[str, Any], where: str = "datalist") -> dict[str, Any]:
    """Check one datalist entry and fill in ``task``, ``name``, ``modalities`` and ``spatial_dims``.

    Args:
        entry: a datalist entry with at least ``image`` (a list of >= 2 source paths).
        where: the datalist's name, used in error messages.

    Returns:
        a new dict with every key of ``entry`` plus the filled-in ones.

    Raises:
        InputError: ``image`` is missing or holds fewer than 2 paths, or ``modalities`` has a different length.
    """
    if not isinstance(entry, Mapping) or "image" not in entry:
        raise InputError(where, f"entry {entry!r:.120} has no 'image' list of source files")
    images = entry["image"]
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence) or len(images) < 2:
        raise InputError(where, f"entry 'image' must list at least 2 source files, got {images!r:.160}")
    out = dict(entry)
    out["image"] = [os.fspath(p) for p in images]
    mods = entry.get("modalities") or [f"source{i}" for i in range(len(images))]
    if len(mods) != len(images):
        raise InputError(where, f"entry {out['image'][0]}: {len(mods)} modalities for {len(images)} images")
    out["modalities"] = [str(m) for m in mods]
    out["task"] = str(entry.get("task") or DEFAULT_TASK)
    first = Path(out["image"][0])
    stem = first.name[: -len(image_suffix(first))] if image_suffix(first) else first.name
    out["name"] = str(entry.get("name") or stem)
    out["spatial_dims"] = int(entry.get("spatial_dims") or (2 if is_raster(first) else 3))
    return out


def _samples_of_folder(data_dir: Path, split: str) -> list[dict[str, Any]]:
    """The entries of a data folder: those of the ``split`` folders when the folder has split folders, else all."""
    from mmif.data.datalist import detect_layout, find_cases_3d, find_pairs_2d

    found, _ = (find_pairs_2d if detect_layout(data_dir) == "2d" else find_cases_3d)(data_dir)
    if any(s.split is not None for s in found):
        chosen = [s.entry for s in found if s.split == split]
        if not chosen:
            have = sorted({s.split for s in found if s.split})
            raise InputError(data_dir, f"no {split!r} split folder with samples (splits found: {', '.join(have)})")
        return chosen
    return [s.entry for s in found]


def resolve_samples(
    datalist: str | os.PathLike | Mapping[str, Any] | None = None,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The normalised samples to evaluate.

    Exactly one of ``datalist`` and ``data_dir`` is given.

    Args:
        datalist: a MONAI datalist JSON file, or the already loaded dict.
        split: which section of the datalist to evaluate (``"test"``, ``"validation"``, ``"training"``; the folder
            names ``train``/``val`` are accepted too).
        data_dir: a folder in the common 2D layout ``ROOT/{task}/[{split}/]{MRI, CT|PET|SPECT}/NAME.png`` or of 3D
            cases ``ROOT/<case>/<modality>.nii[.gz]``; its samples are found with :mod:`mmif.data.datalist`.
            With split folders (``train``/``test``/...) those of ``split`` are evaluated, otherwise all samples.
        limit: keep at most this many samples per task (the first ones, in datalist order).

    Returns:
        normalised entries (see :func:`normalize_entry`), in datalist order.

    Raises:
        InputError: no input or both, an unreadable datalist, a missing split, no samples.
        ValueError: ``limit`` < 1.
    """
    if (datalist is None) == (data_dir is None):
        raise InputError(None, "give exactly one of a datalist (--datalist) or a data folder (--data-dir)")
    from mmif.data.datalist import SPLIT_FOLDERS

    split = SPLIT_FOLDERS.get(split.lower(), split)
    if limit is not None and limit < 1:
        raise ValueError(f"resolve_samples: limit must be >= 1, got {limit}")
    if data_dir is not None:
        path = Path(data_dir)
        if not path.is_dir():
            raise InputError(path, "data folder not found")
        where = os.fspath(path)
        entries = _samples_of_folder(path, split)
    else:
        if isinstance(datalist, Mapping):
            loaded, where = datalist, "datalist"
        else:
            from mmif.data.datalist import load_datalist

            where = os.fspath(datalist)
            if not Path(where).is_file():
                raise InputError(where, "datalist file not found")
            loaded = load_datalist(where)
        if split not in loaded:
            have = ", ".join(k for k, v in loaded.items() if isinstance(v, list)) or "none"
            raise InputError(where, f"no {split!r} section in the datalist (sections: {have})")
        entries = loaded[split]
    if not isinstance(entries, list) or not entries:
        raise InputError(where, f"the {split!r} split holds no samples")
    samples = [normalize_entry(e, where) for e in entries]
    if limit is not None:
        counts: dict[str, int] = {}
        kept = []
        for s in samples:
            counts[s["task"]] = counts.get(s["task"], 0) + 1
            if counts[s["task"]] <= limit:
                kept.append(s)
        samples = kept
    return samples
