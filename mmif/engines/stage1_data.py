"""Stage I data helpers: one training sample per source image, and the checkpoint to resume from."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping

__all__ = ["split_sources", "latest_checkpoint"]


def split_sources(entries: Iterable[Mapping], dedupe: bool = True, max_samples: int | None = None) -> list[dict]:
    """Turn fusion datalist entries into single-source entries for Stage I (each source image is its own sample).

    Every entry ``{"image": [p1, p2, ...], "modalities": [m1, m2, ...], ...}`` (see ``docs/conventions.md``) gives
    one entry per source: ``{"image": [p_i], "modalities": [m_i], "modality": m_i, ...}`` with the other keys kept,
    so ``mmif.transforms.LoadFusionSourcesd`` loads it as ``image (1, *spatial)`` and the string ``modality`` collates
    into a list of names per batch.

    Args:
        entries: datalist entries (e.g. ``datalist["training"]``).
        dedupe: keep each source file once (some MRI slices appear in several tasks).
        max_samples: keep at most this many, evenly spaced over the list (so every task/modality stays represented),
            e.g. for a light validation set. ``None``: all.

    Returns:
        the single-source entries, in input order.
    """
    out: list[dict] = []
    seen: set[str] = set()
    for entry in entries:
        images = entry["image"]
        images = [images] if isinstance(images, (str, os.PathLike)) else list(images)
        modalities = list(entry.get("modalities") or [os.path.basename(os.path.dirname(os.fspath(p))) for p in images])
        if len(modalities) != len(images):
            raise ValueError(f"split_sources: {len(images)} images but {len(modalities)} modalities in {entry}")
        for path, modality in zip(images, modalities):
            key = os.fspath(path)
            if dedupe and key in seen:
                continue
            seen.add(key)
            single = {k: v for k, v in entry.items() if k not in ("image", "modalities")}
            single.update(image=[key], modalities=[modality], modality=str(modality))
            out.append(single)
    if max_samples is not None and len(out) > max_samples:
        if max_samples < 1:
            raise ValueError(f"split_sources: max_samples must be >= 1, got {max_samples}")
        step = len(out) / max_samples
        out = [out[int(i * step)] for i in range(max_samples)]
    return out


def latest_checkpoint(ckpt_dir: str | os.PathLike, pattern: str = "*.pt") -> str | None:
    """The most recently written checkpoint in ``ckpt_dir`` matching ``pattern``, or ``None`` (nothing to resume).

    The Stage I bundles keep their resume checkpoints (interval + final, written by ``CheckpointSaver``) in a folder
    of their own, ``checkpoint_dir``, so every ``*.pt`` there is a candidate.
    """
    files = glob.glob(os.path.join(os.fspath(ckpt_dir), pattern))
    return max(files, key=os.path.getmtime) if files else None
