"""The anatomy trade-off: what showing the MRI under PET/SPECT costs in MI, Qabf and SSIM, one point per method.

Reads the ``summary.json`` of one or more ``mmif evaluate`` output folders and plots, per task, each method's anatomy
score (x) against its MI, Qabf and SSIM as a fraction of a reference method's (max-abs by default). A method name that
appears in several folders is labelled ``name (folder)``.

    python docs/figures/tradeoff.py runs/eval_val runs/eval_val_heads -o tradeoff.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = ("MI", "Qabf", "SSIM")


def load_points(folders: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """``{task: {label: {metric: mean}}}`` from the folders' ``summary.json``."""
    points: dict[str, dict[str, dict[str, float]]] = {}
    for folder in folders:
        path = folder / "summary.json"
        if not path.is_file():
            raise SystemExit(f"{path}: missing (run `mmif evaluate -o {folder}` first)")
        for task, methods in json.loads(path.read_text())["summary"].items():
            for method, stats in methods.items():
                label = method if method not in points.get(task, {}) else f"{method} ({folder.name})"
                points.setdefault(task, {})[label] = {m: (s or {}).get("mean") for m, s in stats.items()}
    return points


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluations", type=Path, nargs="+", help="`mmif evaluate` output folders")
    parser.add_argument("--reference", default="maxabs", help="the method the metrics are divided by")
    parser.add_argument("--tasks", nargs="+", default=["MRI_PET", "MRI_SPECT"])
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = load_points(args.evaluations)
    tasks = [t for t in args.tasks if t in points]
    if not tasks:
        raise SystemExit(f"none of the tasks {args.tasks} in {[str(f) for f in args.evaluations]}")
    fig, axes = plt.subplots(len(tasks), len(METRICS), figsize=(4.0 * len(METRICS), 3.4 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        by_label = points[task]
        if args.reference not in by_label:
            raise SystemExit(f"{task}: the reference method {args.reference!r} is not in the evaluations")
        ref = by_label[args.reference]
        for ax, metric in zip(row, METRICS):
            for label, stats in sorted(by_label.items()):
                x, y = stats.get("anatomy"), stats.get(metric)
                if x is None or y is None or not ref.get(metric):
                    continue
                ax.scatter(x, y / ref[metric], s=22)
                ax.annotate(label, (x, y / ref[metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.axhline(1.0, color="grey", linewidth=0.5)
            ax.set_xlabel("anatomy (MRI edges kept under the tracer)", fontsize=8)
            ax.set_ylabel(f"{metric} / {metric} of {args.reference}", fontsize=8)
            ax.set_title(f"{task}: {metric}", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
