"""Where a learned fusion departs from max-abs: a figure from an ``mmif evaluate`` output folder.

Prints, per task, the share of foreground pixels where the method's fused image differs from the reference method's
(by more than one grey level, on the BT.601 grey of colour results), and draws, for the images where it departs most,
the reference result, the method's result and the method's result in grey with those pixels in red. Both results are
read from ``OUT/fused/{method}/{task}/NAME.png`` as written by ``mmif evaluate``.

    python docs/figures/departures.py runs/eval_dmfnet -o departures.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _read(path: Path):
    """-> (RGB uint8 image, grey int16 image) of one fused PNG."""
    from PIL import Image

    if not path.is_file():
        raise SystemExit(f"{path}: missing (was this method part of the `mmif evaluate` run?)")
    image = Image.open(path)
    return np.asarray(image.convert("RGB")), np.asarray(image.convert("L"), dtype=np.int16)


def _departures(ours: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey images -> (mask of pixels that differ by more than one level, its share of the reference's foreground)."""
    moved = np.abs(ours - ref) > 1
    return moved, float(moved.sum()) / max(1, int((ref > 0).sum()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="an `mmif evaluate` output folder with fused/{method}/...")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--method", default="dmfnet")
    parser.add_argument("--reference", default="maxabs")
    parser.add_argument("--rows", type=int, default=1, help="pairs per task in the figure")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fused_root = args.evaluation / "fused"
    method_dir = fused_root / args.method
    tasks = sorted(p.name for p in method_dir.iterdir() if p.is_dir()) if method_dir.is_dir() else []
    if not tasks:
        raise SystemExit(f"{method_dir}: no task folders (run `mmif evaluate` first)")
    chosen = []
    for task in tasks:
        names = sorted(p.name for p in (method_dir / task).glob("*.png"))
        rows = []
        for name in names:
            ours_rgb, ours = _read(method_dir / task / name)
            ref_rgb, ref = _read(fused_root / args.reference / task / name)
            moved, share = _departures(ours, ref)
            rows.append((share, name, ours_rgb, ref_rgb, ours, moved))
        shares = [r[0] for r in rows]
        print(f"{task}: {args.method} differs from {args.reference} at {100 * np.mean(shares):.2f} % of the "
              f"foreground pixels (per image {100 * min(shares):.2f}-{100 * max(shares):.2f} %)")
        chosen += [(task, *r) for r in sorted(rows, key=lambda r: -r[0])[: args.rows]]  # where it departs most

    fig, axes = plt.subplots(len(chosen), 3, figsize=(7.5, 2.6 * len(chosen)), squeeze=False)
    for row, (task, share, name, ours_rgb, ref_rgb, grey, moved) in zip(axes, chosen):
        marked = np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)
        marked[moved] = (255, 0, 0)
        for ax, img, title in zip(row, (ref_rgb, ours_rgb, marked),
                                  (args.reference, args.method, f"differs: {100 * share:.1f} % (red)")):
            ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{task}\n{Path(name).stem}", fontsize=8)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
