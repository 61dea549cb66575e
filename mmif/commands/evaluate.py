"""``mmif evaluate``: fuse a datalist split or a data folder with fusion methods, write and score the results.

Example::

    mmif evaluate --data-dir ../shared/data/harvard --methods average maxabs laplacian dwt -o runs/baselines

Writes ``fused/<method>/<task>/<name>.png|.nii.gz``, ``metrics.csv``, ``summary.md|csv|json`` and ``panel.png`` under
the output folder, logs to MLflow (``sqlite:///<output>/mlflow.db`` unless ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` says otherwise; ``--no-mlflow`` turns it off) and prints the summary tables.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "main"]

DEFAULT_METHODS = ("average", "maxabs", "laplacian", "dwt")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--datalist", metavar="FILE", help="MONAI datalist JSON (see `mmif prepare`)")
    src.add_argument(
        "--data-dir", metavar="DIR",
        help="folder in the common layout ROOT/{task}/[{split}/]{MRI,CT|PET|SPECT}/NAME.png, or of 3D cases "
        "ROOT/<case>/<modality>.nii.gz",
    )
    parser.add_argument("--split", default="test", help="datalist section / split folder to evaluate (default: test)")
    parser.add_argument(
        "--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="NAME",
        help=f"fusion methods (default: {' '.join(DEFAULT_METHODS)})",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--metrics", nargs="+", metavar="NAME",
                        help="metric names (default: mmif.metrics.DEFAULT_METRICS, then anatomy and function)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db)")
    parser.add_argument("--experiment", default=None, help="MLflow experiment name (default: mmif-evaluate)")
    parser.add_argument("--run-name", default=None, help="MLflow run name")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    parser.add_argument("--panel-rows", type=int, default=3, metavar="N", help="samples per task in the panel (0: none)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate at most N samples per task")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="samples fused together (default 8)")
    parser.add_argument("--device", default="cpu", help="torch device for the methods (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    learned = parser.add_argument_group("dmfnet (the learned method): which trained weights")
    learned.add_argument("--bundle", metavar="DIR", help="the bundle folder (default bundles/brain_mmif_2d)")
    learned.add_argument("--checkpoint", metavar="PATH", help="the Stage II (fusion head) checkpoint")
    learned.add_argument("--stage1-ckpt", metavar="PATH", help="the Stage I (diffusion UNet) checkpoint")


def _check_methods(names: list[str]) -> None:
    from mmif.errors import InputError
    from mmif.fusion import available_fusion_methods

    known = available_fusion_methods()
    unknown = [n for n in names if n.strip().lower() not in known]
    if unknown:
        raise InputError(None, f"unknown fusion method(s) {', '.join(unknown)}; available: {', '.join(known)}")


def _check_metrics(names: list[str] | None) -> None:
    from mmif.errors import InputError
    from mmif.metrics import metric_names

    if names:
        unknown = [n for n in names if n not in metric_names()]
        if unknown:
            raise InputError(None, f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(metric_names())}")


def _resolve_methods(args: argparse.Namespace) -> list:
    """Method names, with ``dmfnet`` built from ``--bundle/--checkpoint/--stage1-ckpt`` when any is given."""
    from mmif.errors import InputError

    weights = {"bundle": args.bundle, "checkpoint": args.checkpoint, "stage1_ckpt": args.stage1_ckpt}
    given = {k: v for k, v in weights.items() if v is not None}
    names = [n.strip().lower() for n in args.methods]
    if not given:
        return list(args.methods)
    if "dmfnet" not in names:
        raise InputError(
            None, "--bundle/--checkpoint/--stage1-ckpt choose dmfnet weights, but dmfnet is not in --methods"
        )
    from mmif.fusion import get_fusion_method

    return [get_fusion_method("dmfnet", device=args.device, **given) if n == "dmfnet" else n for n in names]


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and print the summary; returns 0 (input problems raise :class:`~mmif.errors.InputError`)."""
    from mmif.errors import InputError
    from mmif.evaluation import DEFAULT_EXPERIMENT, evaluate

    for opt, value, minimum in (("--panel-rows", args.panel_rows, 0), ("--limit", args.limit, 1),
                                ("--batch-size", args.batch_size, 1)):
        if value is not None and value < minimum:
            raise InputError(None, f"{opt} must be >= {minimum}, got {value}")
    _check_methods(args.methods)
    _check_metrics(args.metrics)
    result = evaluate(
        methods=_resolve_methods(args),
        output_dir=args.output,
        datalist=args.datalist,
        split=args.split,
        data_dir=args.data_dir,
        limit=args.limit,
        metrics=args.metrics,
        batch_size=args.batch_size,
        panel_rows=args.panel_rows,
        device=args.device,
        tracking=not args.no_mlflow,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment or DEFAULT_EXPERIMENT,
        run_name=args.run_name,
        progress=not args.no_progress,
    )
    print(result.markdown)
    for key, path in result.files.items():
        print(f"{key}: {path}")
    if result.run_id:
        print(f"mlflow: run {result.run_id} in {result.tracking_uri}")
    sys.stdout.flush()
    return 0
