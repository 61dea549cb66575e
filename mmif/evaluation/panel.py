"""Picture panel of an evaluation: a few samples per task, the sources and the fused image of every method.

Rows are samples (grouped by task); columns are the sources, then one column per method. Colour images (PET/SPECT
sources and their fused results) are shown in colour, grey ones in grey with the fixed 0..255 range (no per-image
contrast stretch, so methods compare fairly). 3D volumes are shown by their middle slice along the last axis (rotated
so that the second voxel axis points up: an axial view for RAS/LAS-like volumes).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mmif.io import atomic_write

__all__ = ["PanelRow", "display_array", "render_panel"]


@dataclass
class PanelRow:
    """One row of the panel.

    Attributes:
        task: task name (e.g. ``MRI_PET``).
        name: sample name.
        sources: ``(label, image)`` per source; images as accepted by :func:`display_array`.
        fused: ``(method, image)`` per method.
    """

    task: str
    name: str
    sources: list[tuple[str, np.ndarray]] = field(default_factory=list)
    fused: list[tuple[str, np.ndarray]] = field(default_factory=list)


def display_array(image: np.ndarray) -> np.ndarray:
    """An 8-bit picture to show: ``(H, W)`` grey or ``(H, W, 3)`` RGB.

    Args:
        image: channel-first ``(C, H, W)`` or ``(C, H, W, D)`` with C = 1 or 3, ``uint8`` or float in ``[0, 1]``;
            3D volumes give their middle slice along the last axis, rotated so that the second axis points up.
    """
    arr = np.asarray(image)
    if arr.ndim == 4:  # middle slice, turned so that the second voxel axis points up (an axial view of RAS/LAS data)
        arr = np.rot90(arr[..., arr.shape[-1] // 2], k=1, axes=(1, 2))
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"display_array: expected (1|3, H, W[, D]), got shape {tuple(np.asarray(image).shape)}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)


def render_panel(
    rows: Sequence[PanelRow], path: str | os.PathLike, cell_inches: float = 1.6, dpi: int = 100, title: str | None = None
) -> None:
    """Draw the panel and write it as a PNG (atomically).

    Args:
        rows: panel rows; rows with fewer sources than others leave the extra source cells empty.
        path: the ``.png`` to write.
        cell_inches: size of one image cell.
        dpi: resolution; a cell is ``cell_inches * dpi`` pixels wide.
        title: optional figure title.

    Raises:
        ValueError: when ``rows`` is empty.
    """
    if not rows:
        raise ValueError("render_panel: no rows to draw")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n_src = max(len(r.sources) for r in rows)
    methods = list(dict.fromkeys(m for r in rows for m, _ in r.fused))
    n_cols = n_src + len(methods)
    top = 0.35 if title else 0.0
    fig = Figure(figsize=(cell_inches * n_cols + 0.3, cell_inches * len(rows) + 0.3 + top), dpi=dpi)
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    prev_task = None
    for r_idx, row in enumerate(rows):
        new_group = row.task != prev_task
        prev_task = row.task
        fused = dict(row.fused)
        cells = [(label, img) for label, img in row.sources] + [(None, None)] * (n_src - len(row.sources))
        cells += [(m, fused.get(m)) for m in methods]
        for c_idx, (label, img) in enumerate(cells):
            ax = axes[r_idx][c_idx]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.axis("off")
                continue
            pic = display_array(img)
            ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            if new_group:
                ax.set_title(label, fontsize=8, pad=2)
            if c_idx == 0:
                ax.set_ylabel(f"{row.task}\n{row.name}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.05, right=0.995, bottom=0.005, top=1 - (0.35 + top) / fig.get_figheight(),
                        wspace=0.03, hspace=0.18)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())

    atomic_write(path, _write)
