"""``mmif pipeline``: the main job, Stage I -> Stage II -> fusion -> evaluation, on the phantom data by default."""

from __future__ import annotations

import argparse

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    from mmif.pipeline import PipelineSettings

    d = PipelineSettings()
    parser.add_argument("--output-dir", "-o", default=str(d.output_dir), help="where everything goes (default: %(default)s)")
    parser.add_argument(
        "--data-dir", default=None,
        help="a 2D folder in the common layout (ROOT/{task}/{train,test}/{MRI,CT|PET|SPECT}/NAME.png); "
        "default: the synthetic phantom, written to OUTPUT_DIR/data",
    )
    parser.add_argument("--stage1-epochs", type=int, default=d.stage1_epochs, help="default: %(default)s")
    parser.add_argument("--stage2-epochs", type=int, default=d.stage2_epochs, help="default: %(default)s")
    parser.add_argument("--phantom-size", type=int, default=d.phantom_size, help="phantom slice size (default: %(default)s)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///OUTPUT_DIR/mlflow.db)")
    parser.add_argument("--experiment", default=d.experiment, help="MLflow experiment (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import torch

    from mmif.pipeline import PipelineSettings, run_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_pipeline(
        PipelineSettings(
            output_dir=args.output_dir,
            data_dir=args.data_dir,
            phantom_size=args.phantom_size,
            stage1_epochs=args.stage1_epochs,
            stage2_epochs=args.stage2_epochs,
            tracking_uri=args.tracking_uri,
            experiment=args.experiment,
            seed=args.seed,
            progress=not args.no_progress,
        )
    )
    print(result.summary_markdown)
    times = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    print(f"\nDone in {sum(result.seconds.values()):.0f} s ({times}).")
    print(f"Weights: {result.stage1_weights}, {result.stage2_weights}")
    print(f"Evaluation: {result.evaluation_dir} (summary.md, metrics.csv, panel.png, fused/)")
    print(f"MLflow: {result.tracking_uri} (parent run {result.parent_run_id}); "
          f"view with `mlflow ui --backend-store-uri {result.tracking_uri}`")
    return 0
