"""Where a learned fusion departs from max-abs: a figure from an ``mmif evaluate`` output folder.

For a few pairs per task it shows the MRI, the other source, the learned result and the learned result in grey with
the pixels where it differs from max-abs's result (by more than one grey level) marked in red, and prints the share
of such pixels per task. Both results are read from ``OUT/fused/{method}/{task}/NAME.png`` as written by ``mmif evaluate``.

    python docs/figures/departures.py runs/eval_dmfnet -o bundles/brain_mmif_2d/docs/images/departures.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _grey(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=np.int16)


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


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
        raise SystemExit(f"{fused_root / args.method}: no task folders (run `mmif evaluate` first)")
    chosen = []
    for task in tasks:
        names = sorted(p.name for p in (fused_root / args.method / task).glob("*.png"))
        shares = []
        for name in names:
            ours, ref = _grey(fused_root / args.method / task / name), _grey(fused_root / args.reference / task / name)
            shares.append(float((np.abs(ours - ref) > 1).sum()) / max(1, int((ref > 0).sum())))
        print(f"{task}: {args.method} differs from {args.reference} at {100 * np.mean(shares):.2f} % of the "
              f"foreground pixels (per image {100 * min(shares):.2f}-{100 * max(shares):.2f} %)")
        order = np.argsort(shares)[::-1]  # the images where it departs most
        chosen += [(task, names[i], shares[i]) for i in order[: args.rows]]

    fig, axes = plt.subplots(len(chosen), 3, figsize=(7.5, 2.6 * len(chosen)), squeeze=False)
    for row, (task, name, share) in zip(axes, chosen):
        ours = _rgb(fused_root / args.method / task / name)
        ref = _rgb(fused_root / args.reference / task / name)
        moved = np.abs(ours.astype(np.int16).mean(-1) - ref.astype(np.int16).mean(-1)) > 1
        marked = np.repeat(ours.mean(-1, keepdims=True), 3, axis=-1).astype(np.uint8)
        marked[moved] = (255, 0, 0)
        for ax, img, title in zip(row, (ref, ours, marked),
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
