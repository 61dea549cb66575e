"""The main job: Stage I -> Stage II -> fusion -> evaluation, end to end, tracked in MLflow.

Each stage runs the 2D bundle's own config (``bundles/brain_mmif_2d/configs/train_stage1.json``, ``train_stage2.json``)
through MONAI's bundle workflow with overrides, exactly as ``python -m monai.bundle run`` would; the fused images and
the comparison with the classical baselines come from :mod:`mmif.evaluation`. With no data folder given, the
embedded synthetic phantom (:mod:`mmif.data.phantom`) is written first, so the job needs no download.

MLflow: one parent run (``pipeline``) with a child run per stage (``stage1``, ``stage2``, ``evaluate``) in one
experiment, in the embedded SQLite store ``<output_dir>/mlflow.db`` unless ``tracking_uri`` (or
``$MLFLOW_TRACKING_URI``) names another store or a server.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmif.errors import InputError

__all__ = ["PipelineSettings", "PipelineResult", "run_pipeline", "REPO_ROOT", "BUNDLE_2D"]

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_2D = REPO_ROOT / "bundles" / "brain_mmif_2d"
BASELINES = ("average", "maxabs", "laplacian", "dwt")


@dataclass
class PipelineSettings:
    """What the main job does; the defaults run in minutes on a 2-core CPU on the phantom data.

    Args:
        output_dir: everything goes below it (data, models, checkpoints, fused images, reports, ``mlflow.db``).
        data_dir: a 2D folder in the common layout; ``None`` writes the synthetic phantom to ``<output_dir>/data``.
        phantom_size: side of the phantom slices (pixels).
        phantom_cases: phantom cases per task (the last one is the test case).
        stage1_epochs / stage2_epochs: training epochs of each stage.
        patch_size: Stage I training crop; Stage II crops use ``stage2_roi``.
        tracking_uri: MLflow URI (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<output_dir>/mlflow.db``).
        experiment: MLflow experiment name.
        baselines: classical methods evaluated beside the learned one.
        progress: show progress bars.
        seed: seed for data splits, training and inference.
        stage1_overrides / stage2_overrides: extra bundle overrides (flat ids, e.g. ``{"batch_size": 4}``).
    """

    output_dir: str | os.PathLike = "runs/pipeline"
    data_dir: str | os.PathLike | None = None
    phantom_size: int = 96
    phantom_cases: int = 4
    stage1_epochs: int = 15
    stage2_epochs: int = 8
    patch_size: int = 64
    stage2_roi: int = 64
    tracking_uri: str | None = None
    experiment: str = "mmif-pipeline"
    baselines: Sequence[str] = BASELINES
    progress: bool = True
    seed: int = 0
    stage1_overrides: Mapping[str, Any] = field(default_factory=dict)
    stage2_overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    output_dir: Path
    datalist: Path
    stage1_weights: Path
    stage2_weights: Path
    evaluation_dir: Path
    summary_markdown: str
    tracking_uri: str
    parent_run_id: str
    seconds: dict[str, float]


def _log(msg: str) -> None:
    print(f"[mmif pipeline] {msg}", flush=True)


@contextlib.contextmanager
def _child_run(client, experiment_id: str, parent_id: str, name: str):
    """A RUNNING child run named ``name``: MONAI's ``MLFlowHandler`` (``run_name`` = this name) logs into it."""
    run = client.create_run(experiment_id, run_name=name, tags={"mlflow.parentRunId": parent_id, "stage": name})
    try:
        yield run.info.run_id
    except BaseException:
        client.set_terminated(run.info.run_id, "FAILED")
        raise
    status = client.get_run(run.info.run_id).info.status
    if status == "RUNNING":  # the handler closes its run on completion; close it here otherwise
        client.set_terminated(run.info.run_id, "FINISHED")


def _run_bundle(config: Path, overrides: Mapping[str, Any], tracking: Mapping[str, Any]) -> None:
    """Run one bundle config the way ``python -m monai.bundle run --tracking mlflow`` does."""
    from monai.bundle import ConfigWorkflow
    from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

    settings = json.loads(json.dumps(DEFAULT_MLFLOW_SETTINGS))
    settings["configs"].update(tracking)
    workflow = ConfigWorkflow(
        config_file=str(config),
        meta_file=str(config.parent / "metadata.json") if (config.parent / "metadata.json").is_file() else None,
        logging_file=str(config.parent / "logging.conf") if (config.parent / "logging.conf").is_file() else None,
        workflow_type="train",
        tracking=settings,
        **overrides,
    )
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()


def run_pipeline(settings: PipelineSettings | None = None) -> PipelineResult:
    """Run Stage I, Stage II, fusion and evaluation; see :class:`PipelineSettings`."""
    from mlflow.tracking import MlflowClient

    from mmif.data import build_datalist, write_datalist
    from mmif.data.phantom import write_phantom_dataset
    from mmif.evaluation import FusionEvaluator, resolve_samples
    from mmif.evaluation.tracking import _local_artifact_root, resolve_tracking_uri
    from mmif.fusion.learned import DMFNetFusion

    s = settings or PipelineSettings()
    out = Path(s.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = out / "models"
    seconds: dict[str, float] = {}

    # 1. data
    t0 = time.perf_counter()
    if s.data_dir is None:
        data_dir = out / "data"
        if not (data_dir / "index.csv").is_file():
            _log(f"writing the synthetic phantom to {data_dir}")
            write_phantom_dataset(
                data_dir, n_cases=s.phantom_cases, size=(s.phantom_size, s.phantom_size), spatial_dims=2, seed=s.seed
            )
    else:
        data_dir = Path(s.data_dir).resolve()
        if not data_dir.is_dir():
            raise InputError(data_dir, "data folder not found")
    datalist, _ = build_datalist(data_dir, split_by="upstream", val_fraction=0.2, seed=s.seed, validate=True)
    datalist_path = write_datalist(datalist, out / "datalist.json")
    counts = {k: len(v) for k, v in datalist.items()}
    _log(f"datalist {datalist_path}: {counts}")
    if not datalist["training"] or not datalist["test"]:
        raise InputError(data_dir, f"needs training and test samples, found {counts}")
    seconds["data"] = time.perf_counter() - t0

    # MLflow: parent run + one child per stage. Under `mlflow run` (MLFLOW_RUN_ID set) its run is the parent.
    outer_run = os.environ.get("MLFLOW_RUN_ID")
    if outer_run and not s.tracking_uri:
        import mlflow

        uri = mlflow.get_tracking_uri()
    else:
        uri = resolve_tracking_uri(s.tracking_uri, out)
    client = MlflowClient(tracking_uri=uri)
    if outer_run:
        parent_id = outer_run
        exp_id = client.get_run(parent_id).info.experiment_id
        experiment = client.get_experiment(exp_id).name
    else:
        experiment = s.experiment
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment, _local_artifact_root(uri))
        parent_id = client.create_run(exp_id, run_name="pipeline", tags={"data_dir": str(data_dir)}).info.run_id
    client.log_param(parent_id, "data_dir", str(data_dir))
    client.log_param(parent_id, "stage1_epochs", s.stage1_epochs)
    client.log_param(parent_id, "stage2_epochs", s.stage2_epochs)
    tracking = {"tracking_uri": uri, "experiment_name": experiment}
    common = {
        "bundle_root": str(BUNDLE_2D),
        "ckpt_dir": str(models),
        "dataset_dir": str(data_dir),
        "datalist": f"$mmif.data.load_datalist({str(datalist_path)!r})",
        "progress_bar": s.progress,
    }
    try:
        with contextlib.chdir(REPO_ROOT):  # the configs' shared fragments (%configs/...) resolve from the repo root
            # 2. Stage I
            t0 = time.perf_counter()
            _log(f"Stage I: diffusion UNet, {s.stage1_epochs} epochs")
            with _child_run(client, exp_id, parent_id, "stage1"):
                _run_bundle(
                    BUNDLE_2D / "configs" / "train_stage1.json",
                    {
                        **common,
                        "output_dir": str(out / "stage1"),
                        "epochs": s.stage1_epochs,
                        "val_interval": max(1, s.stage1_epochs),
                        "patch_size": [s.patch_size, s.patch_size],
                        "val_patch_size": [s.phantom_size, s.phantom_size] if s.data_dir is None else [128, 128],
                        **s.stage1_overrides,
                    },
                    {**tracking, "run_name": "stage1"},
                )
            stage1_weights = models / "stage1_unet.pt"
            seconds["stage1"] = time.perf_counter() - t0

            # 3. Stage II
            t0 = time.perf_counter()
            _log(f"Stage II: fusion head on the frozen UNet, {s.stage2_epochs} epochs")
            with _child_run(client, exp_id, parent_id, "stage2"):
                _run_bundle(
                    BUNDLE_2D / "configs" / "train_stage2.json",
                    {
                        **common,
                        "output_dir": str(out / "stage2"),
                        "stage1_ckpt": str(stage1_weights),
                        "epochs": s.stage2_epochs,
                        "roi_size": [s.stage2_roi, s.stage2_roi],
                        "seed": s.seed,
                        **s.stage2_overrides,
                    },
                    {**tracking, "run_name": "stage2"},
                )
            stage2_weights = models / "fusion_head.pt"
            seconds["stage2"] = time.perf_counter() - t0

            # 4. fusion + evaluation against the classical baselines
            t0 = time.perf_counter()
            _log("fusing the test split and scoring it against the classical baselines")
            learned = DMFNetFusion(bundle=BUNDLE_2D, checkpoint=stage2_weights, stage1_ckpt=stage1_weights, seed=s.seed)
            methods = {"dmfnet": learned, **{name: name for name in s.baselines}}
            eval_dir = out / "evaluation"
            evaluator = FusionEvaluator(
                resolve_samples(datalist=str(datalist_path), split="test"),
                methods,
                eval_dir,
                tracking=True,
                tracking_uri=uri,
                experiment=experiment,
                run_name="evaluate",
                tags={"mlflow.parentRunId": parent_id, "stage": "evaluate"},
                progress=s.progress,
            )
            result = evaluator.run()
            seconds["evaluate"] = time.perf_counter() - t0
    except BaseException:
        if not outer_run:
            client.set_terminated(parent_id, "FAILED")
        raise
    for k, v in seconds.items():
        client.log_metric(parent_id, f"seconds_{k}", v)
    for f in ("summary.md", "panel.png"):
        if (eval_dir / f).is_file():
            client.log_artifact(parent_id, str(eval_dir / f))
    if not outer_run:  # `mlflow run` ends its own run
        client.set_terminated(parent_id, "FINISHED")
    return PipelineResult(
        output_dir=out,
        datalist=datalist_path,
        stage1_weights=stage1_weights,
        stage2_weights=stage2_weights,
        evaluation_dir=eval_dir,
        summary_markdown=result.markdown,
        tracking_uri=uri,
        parent_run_id=parent_id,
        seconds=seconds,
    )
