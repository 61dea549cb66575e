"""Zoomed hot regions: where PET/SPECT outshines the MRI, what each fusion shows (a figure from ``mmif evaluate``).

For each colour task, takes the test image whose function-dominant region ``M`` (:mod:`mmif.metrics.anatomy_function`)
is largest, crops a square around that region and draws the MRI, the functional image and each method's fused result
(``OUT/fused/{method}/{task}/NAME.png``) side by side, with the method's anatomy / function scores on the image.

    python docs/figures/hot_regions.py runs/eval --data-dir ../shared/data/harvard \\
        --methods maxabs laplacian dmfnet -o hot_regions.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise SystemExit(f"{path}: missing (was this method part of the `mmif evaluate` run?)")
    return np.asarray(Image.open(path).convert("RGB"))


def _grey(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luminance on 0..255 (float)."""
    return rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _box(mask: np.ndarray, size: int) -> tuple[slice, slice]:
    """A ``size`` square centred on ``mask``'s centroid, inside the image."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    size = min(size, h, w)
    cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (h // 2, w // 2)
    y0 = min(max(cy - size // 2, 0), h - size)
    x0 = min(max(cx - size // 2, 0), w - size)
    return slice(y0, y0 + size), slice(x0, x0 + size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="an `mmif evaluate` output folder with fused/{method}/...")
    parser.add_argument("--data-dir", type=Path, required=True, help="the evaluated folder (TASK/test/MOD/NAME.png)")
    parser.add_argument("--methods", nargs="+", default=["maxabs", "laplacian", "dmfnet"])
    parser.add_argument("--split", default="test")
    parser.add_argument("--zoom", type=int, default=96, help="side of the zoomed square, pixels")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmif.metrics import anatomy, function, function_dominant_mask

    rows = []
    for task, functional in (("MRI_PET", "PET"), ("MRI_SPECT", "SPECT")):
        folder = args.data_dir / task / args.split
        if not (folder / functional).is_dir():
            continue
        best = None
        for path in sorted((folder / functional).glob("*.png")):
            mri, other = _grey(_read(folder / "MRI" / path.name)), _read(path)
            mask = function_dominant_mask(mri, _grey(other)).numpy()
            if best is None or mask.sum() > best[0]:
                best = (int(mask.sum()), path.name, mri, other, mask)
        if best is not None:
            rows.append((task, *best[1:]))
    if not rows:
        raise SystemExit(f"{args.data_dir}: no MRI_PET or MRI_SPECT {args.split} folder")

    columns = 2 + len(args.methods)
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.3 * columns, 2.9 * len(rows)), squeeze=False)
    for row, (task, name, mri, other, mask) in zip(axes, rows):
        crop = _box(mask, args.zoom)
        panels = [(np.repeat(mri[..., None], 3, axis=-1).astype(np.uint8), "MRI"), (other, task.split("_")[1])]
        for method in args.methods:
            fused = _read(args.evaluation / "fused" / method / task / name)
            sources = [mri, _grey(other)]
            score = f"anat {anatomy(_grey(fused), sources):.2f} · func {function(_grey(fused), sources):.2f}"
            panels.append((fused, f"{method}\n{score}"))
        for ax, (img, title) in zip(row, panels):
            ax.imshow(img[crop])
            ax.contour(mask[crop], levels=[0.5], colors="white", linewidths=0.6)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{task}\n{Path(name).stem}", fontsize=8)
    fig.suptitle("where the tracer outshines the MRI (white contour: M), zoomed", fontsize=9)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
