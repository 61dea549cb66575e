"""The evaluation runner: fuse every sample with every method, write the results, score them, report and track.

Outputs under ``output_dir``:

- ``fused/<method>/<task>/<name>.png`` (8-bit; RGB for colour samples, grey otherwise) or ``.nii.gz`` (3D, float32 in
  ``[0, 1]``, with the source affine);
- ``metrics.csv``: one row per (task, name, method), one column per metric (default :data:`EVALUATION_METRICS`);
- ``summary.md``, ``summary.csv``, ``summary.json``: per task, methods × metrics, mean ± std over the images where the
  metric is defined (with the counts);
- ``panel.png``: a few samples per task, the sources and each method's result;
- ``mlflow.db`` and ``mlartifacts/`` for the embedded MLflow store (unless another tracking URI is used or tracking
  is off).

See :mod:`mmif.evaluation.scoring` for exactly what is scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmif.errors import InputError
from mmif.evaluation.inputs import normalize_entry
from mmif.evaluation.panel import PanelRow, render_panel
from mmif.evaluation.report import (
    MetricSummary,
    summarize,
    summary_markdown,
    write_metrics_csv,
    write_summary_csv,
    write_summary_json,
    write_text,
)
from mmif.evaluation.scoring import (
    fused_output_array,
    fused_path,
    fused_scoring_array,
    source_scoring_arrays,
    write_fused,
)
from mmif.evaluation.tracking import DEFAULT_EXPERIMENT, MLflowTracker, resolve_tracking_uri
from mmif.metrics.compute import ANATOMY_METRICS, DEFAULT_METRICS

__all__ = ["FusionEvaluator", "EvaluationResult", "evaluate", "method_name", "resolve_methods", "EVALUATION_METRICS"]

#: what is scored by default: :data:`mmif.metrics.DEFAULT_METRICS` then ``anatomy`` and ``function``
#: (:data:`mmif.metrics.ANATOMY_METRICS`; NaN where the functional source outshines the MRI nowhere).
EVALUATION_METRICS: tuple[str, ...] = DEFAULT_METRICS + ANATOMY_METRICS


MethodSpec = str | nn.Module


def method_name(method: MethodSpec) -> str:
    """A method's report name: the string itself, a module's ``name`` attribute, or its class name."""
    if isinstance(method, str):
        return method.strip().lower()
    return str(getattr(method, "name", None) or type(method).__name__)


def resolve_methods(methods: MethodSpec | Sequence[MethodSpec] | Mapping[str, MethodSpec]) -> dict[str, nn.Module]:
    """Turn names, modules or a ``{name: method}`` mapping into ``{name: module}`` (modules set to eval mode).

    Raises:
        ValueError: no method, an unknown name (lists the known ones), or two methods with the same name.
    """
    from mmif.fusion import get_fusion_method

    if isinstance(methods, (str, nn.Module)):
        methods = [methods]
    pairs = list(methods.items()) if isinstance(methods, Mapping) else [(method_name(m), m) for m in methods]
    if not pairs:
        raise ValueError("FusionEvaluator: no fusion method given")
    out: dict[str, nn.Module] = {}
    for name, m in pairs:
        if name in out:
            raise ValueError(f"FusionEvaluator: two methods are named {name!r}; pass a {{name: method}} mapping")
        out[name] = (get_fusion_method(m) if isinstance(m, str) else m).eval()
    return out


@dataclass
class EvaluationResult:
    """What :meth:`FusionEvaluator.run` produced.

    Attributes:
        rows: per-image rows ``{"task", "name", "method", <metric>: float}``.
        summary: ``{task: {method: {metric: MetricSummary}}}``.
        metric_names: the metric columns.
        files: output name -> path (``metrics_csv``, ``summary_md``, ``summary_csv``, ``summary_json``, ``panel``).
        markdown: the summary tables.
        run_id: the MLflow run id (``None`` without tracking).
        tracking_uri: the MLflow tracking URI used (``None`` without tracking).
    """

    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, dict[str, MetricSummary]]]
    metric_names: list[str]
    files: dict[str, Path] = field(default_factory=dict)
    markdown: str = ""
    run_id: str | None = None
    tracking_uri: str | None = None


def _first(batch: list) -> Any:
    return batch[0]


def _input_error_in(exc: BaseException) -> InputError | None:
    """The :class:`InputError` behind MONAI's ``RuntimeError("applying transform ...")`` wrapping, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class FusionEvaluator:
    """Fuse samples with one or more methods, write the fused images, score them and report (see the module doc).

    Usable from Python, the CLI (``mmif evaluate``) and MONAI bundle configs (``"evaluator"`` then ``"$@evaluator.run()"``).

    Args:
        data: datalist entries (a list of dicts, loaded with :class:`~mmif.transforms.LoadFusionSourcesd`) or a MONAI
            ``Dataset`` whose items are already loaded samples and whose ``data`` attribute holds the entries.
        methods: fusion method names, ``torch.nn.Module`` s, or a ``{name: module}`` mapping.
        output_dir: where everything is written (created if needed).
        metrics: metric names (default :data:`EVALUATION_METRICS`).
        batch_size: samples fused together when task, shape and colour agree.
        num_workers: loader workers (0 = load in the main process).
        panel_rows: samples per task shown in the panel (0: no panel).
        device: where the methods run (``"cpu"`` by default).
        tracking: log to MLflow.
        tracking_uri: MLflow tracking URI (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<output_dir>/mlflow.db``).
        experiment: MLflow experiment name.
        run_name: MLflow run name.
        params: extra parameters to log (e.g. the datalist path and split).
        progress: show a tqdm progress bar.
        tags: MLflow run tags (``{"mlflow.parentRunId": ...}`` nests the run under a parent run).

    Raises:
        ValueError: bad arguments (no data, no method, batch_size < 1, ...).
        InputError: two samples with the same task and name (their outputs would collide).
    """

    def __init__(
        self,
        data: Sequence[Mapping[str, Any]] | torch.utils.data.Dataset,
        methods: MethodSpec | Sequence[MethodSpec] | Mapping[str, MethodSpec],
        output_dir: str | os.PathLike,
        metrics: Sequence[str] | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        panel_rows: int = 3,
        device: str | torch.device = "cpu",
        tracking: bool = True,
        tracking_uri: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        progress: bool = True,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        name = type(self).__name__
        if batch_size < 1:
            raise ValueError(f"{name}: batch_size must be >= 1, got {batch_size}")
        if panel_rows < 0:
            raise ValueError(f"{name}: panel_rows must be >= 0, got {panel_rows}")
        if num_workers < 0:
            raise ValueError(f"{name}: num_workers must be >= 0, got {num_workers}")
        self.dataset = self._as_dataset(data)
        entries = getattr(self.dataset, "data", None)
        if entries is None or len(entries) == 0:
            raise ValueError(f"{name}: no samples to evaluate (the dataset needs a non-empty 'data' list)")
        self.entries = [normalize_entry(e) for e in entries]
        seen: set[tuple[str, str]] = set()
        for e in self.entries:
            key = (e["task"], e["name"])
            if key in seen:
                raise InputError(e["image"][0], f"two samples share task {key[0]!r} and name {key[1]!r} "
                                 "(their outputs would collide)")
            seen.add(key)
        self.methods = resolve_methods(methods)
        self.output_dir = Path(output_dir)
        self.metric_names = list(metrics) if metrics else list(EVALUATION_METRICS)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.panel_rows = panel_rows
        self.device = torch.device(device)
        self.tracking = tracking
        self.tracking_uri = resolve_tracking_uri(tracking_uri, self.output_dir) if tracking else None
        self.experiment = experiment
        self.run_name = run_name
        self.params = dict(params or {})
        self.progress = progress
        self.tags = dict(tags or {})

    @staticmethod
    def _as_dataset(data: Any) -> torch.utils.data.Dataset:
        from monai.data import Dataset

        if isinstance(data, torch.utils.data.Dataset):
            return data
        if isinstance(data, (str, os.PathLike)) or not isinstance(data, Iterable):
            raise ValueError(f"FusionEvaluator: data must be a list of datalist entries or a Dataset, got {data!r:.80}")
        from mmif.transforms import LoadFusionSourcesd

        return Dataset(data=[normalize_entry(e) for e in data], transform=LoadFusionSourcesd(keys="image"))

    # ---------------------------------------------------------------- loading and batching

    def _samples(self) -> Iterator[dict[str, Any]]:
        from monai.data import DataLoader

        loader = DataLoader(self.dataset, batch_size=1, collate_fn=_first, num_workers=self.num_workers, shuffle=False)
        it = iter(loader)
        while True:
            try:
                sample = next(it)
            except StopIteration:
                return
            except Exception as e:  # MONAI wraps transform errors in RuntimeError; surface the user's problem
                err = _input_error_in(e)
                if err is not None:
                    raise err from None
                raise
            yield sample

    def _batches(self, samples: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """Consecutive samples grouped while task, source count, spatial shape and colour agree."""
        pending: list[dict[str, Any]] = []
        key = None
        for s in samples:
            k = (s["task"], tuple(s["image"].shape), bool(s["is_color"]))
            if pending and (k != key or len(pending) == self.batch_size):
                yield pending
                pending = []
            key = k
            pending.append(s)
        if pending:
            yield pending

    def _panel_picks(self) -> set[tuple[str, str]]:
        """``panel_rows`` samples per task, evenly spread over the task's samples (first and last included)."""
        by_task: dict[str, list[str]] = {}
        for e in self.entries:
            by_task.setdefault(e["task"], []).append(e["name"])
        picks = set()
        for task, names in by_task.items():
            n = min(self.panel_rows, len(names))
            if n:
                picks.update((task, names[int(round(x))]) for x in np.linspace(0, len(names) - 1, n))
        return picks

    # ---------------------------------------------------------------- the run

    def _fuse_and_score(
        self, batch_samples: list[dict[str, Any]], inputs: set[Path], picks: set[tuple[str, str]],
        rows: list[dict[str, Any]], panel: dict[tuple[str, str], PanelRow],
    ) -> None:
        from mmif.fusion import fuse_batch
        from mmif.metrics import compute_metrics

        batch = {
            "image": torch.stack([s["image"].as_tensor() if hasattr(s["image"], "as_tensor") else s["image"]
                                  for s in batch_samples]).to(self.device),
            "chroma": torch.stack([torch.as_tensor(s["chroma"]) for s in batch_samples]).to(self.device),
            "is_color": torch.tensor([bool(s["is_color"]) for s in batch_samples]),
        }
        spatial_dims = batch["image"].ndim - 2
        sources = [source_scoring_arrays(s["image_paths"], s["image"], spatial_dims) for s in batch_samples]
        for i, s in enumerate(batch_samples):
            if (s["task"], s["name"]) in picks:
                panel[(s["task"], s["name"])] = PanelRow(s["task"], s["name"], sources=s["display_sources"])
        for mname, method in self.methods.items():
            with torch.no_grad():
                out = fuse_batch(method, batch)
            fused, fused_rgb = out["fused"].cpu(), out.get("fused_rgb")
            for i, s in enumerate(batch_samples):
                rgb = fused_rgb[i].cpu() if (fused_rgb is not None and s["is_color"]) else None
                written = fused_output_array(fused[i], rgb, spatial_dims)
                path = fused_path(self.output_dir, mname, s["task"], s["name"], spatial_dims)
                write_fused(path, written, getattr(s["image"], "affine", None), inputs)
                scores = compute_metrics(fused_scoring_array(written, spatial_dims), sources[i], names=self.metric_names)
                rows.append({"task": s["task"], "name": s["name"], "method": mname,
                             **{m: float(scores[m]) for m in self.metric_names}})
                if (s["task"], s["name"]) in panel:
                    panel[(s["task"], s["name"])].fused.append((mname, written))

    def run(self) -> EvaluationResult:
        """Evaluate every sample with every method; write and (optionally) track the results.

        Returns:
            the :class:`EvaluationResult`.

        Raises:
            InputError: a problem with an input file (missing, unreadable, mismatched partner, ...), naming it.
        """
        if self.tracking:
            with MLflowTracker(self.tracking_uri, self.experiment, run_name=self.run_name, tags=self.tags) as tracker:
                tracker.log_params(self._params())
                result = self._run()
                self._track(tracker, result)
                result.run_id, result.tracking_uri = tracker.run_id, self.tracking_uri
            return result
        return self._run()

    def _params(self) -> dict[str, Any]:
        tasks = sorted({e["task"] for e in self.entries})
        return {
            **self.params,
            "methods": ",".join(self.methods),
            "metrics": ",".join(self.metric_names),
            "n_samples": len(self.entries),
            "tasks": ",".join(tasks),
            **{f"n_samples/{t}": sum(e["task"] == t for e in self.entries) for t in tasks},
            "spatial_dims": ",".join(sorted({str(e["spatial_dims"]) for e in self.entries})),
            "output_dir": str(self.output_dir.resolve()),
        }

    def _track(self, tracker: MLflowTracker, result: EvaluationResult) -> None:
        values = {}
        for task, by_method in result.summary.items():
            for mname, stats in by_method.items():
                for m, s in stats.items():
                    if np.isfinite(s.mean):
                        values[f"{task}/{mname}/{m}"] = s.mean
        tracker.log_metrics(values)
        tracker.log_artifacts([p for p in result.files.values() if p.is_file()])

    def _run(self) -> EvaluationResult:
        from tqdm.auto import tqdm

        self.output_dir.mkdir(parents=True, exist_ok=True)
        inputs = {Path(p).resolve() for e in self.entries for p in e["image"]}
        picks = self._panel_picks() if self.panel_rows else set()
        rows: list[dict[str, Any]] = []
        panel: dict[tuple[str, str], PanelRow] = {}
        bar = tqdm(total=len(self.entries), desc="evaluate", unit="img", disable=not self.progress, leave=False)

        def loaded() -> Iterator[dict[str, Any]]:
            for i, sample in enumerate(self._samples()):
                entry = self.entries[i]
                sample = {**sample, "task": entry["task"], "name": entry["name"], "image_paths": entry["image"]}
                if (entry["task"], entry["name"]) in picks:
                    sample["display_sources"] = self._display_sources(entry, sample)
                yield sample

        try:
            for chunk in self._batches(loaded()):
                self._fuse_and_score(chunk, inputs, picks, rows, panel)
                bar.update(len(chunk))
        finally:
            bar.close()
        return self._report(rows, [panel[k] for k in sorted(panel, key=self._entry_order())])

    def _entry_order(self):
        order = {(e["task"], e["name"]): i for i, e in enumerate(self.entries)}
        return lambda k: order[k]

    @staticmethod
    def _display_sources(entry: Mapping[str, Any], sample: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
        from mmif.evaluation.scoring import _as_8bit, quantize8

        out = []
        lum = sample["image"]
        for i, (p, mod) in enumerate(zip(entry["image"], entry["modalities"])):
            u8 = _as_8bit(p) if entry["spatial_dims"] == 2 else None
            out.append((mod, u8 if u8 is not None else quantize8(lum[i : i + 1])))
        return out

    def _report(self, rows: list[dict[str, Any]], panel_rows: list[PanelRow]) -> EvaluationResult:
        from mmif.metrics import HIGHER_IS_BETTER

        out = self.output_dir
        summary = summarize(rows, self.metric_names)
        md = summary_markdown(summary, self.metric_names, HIGHER_IS_BETTER)
        files = {
            "metrics_csv": out / "metrics.csv",
            "summary_md": out / "summary.md",
            "summary_csv": out / "summary.csv",
            "summary_json": out / "summary.json",
        }
        write_metrics_csv(files["metrics_csv"], rows, self.metric_names)
        note = (
            f"Methods: {', '.join(self.methods)}. Mean ± sample std over the images of each task where the metric is "
            "defined (\"(k nan)\": k images left out); best mean in bold (↑ higher is better, ↓ lower is better). 2D "
            "scores are computed on the written 8-bit outputs read as grey (the metric reference's convention); 3D "
            "scores on [0, 1] volumes × 255.\n\n"
        )
        if any(m in self.metric_names for m in ANATOMY_METRICS):
            note += (
                "anatomy: the MRI's edges kept (Q^AF) where a blurred functional source B outshines the blurred MRI A; "
                "function: 1 - mean |G*F - G*B| / mean |G*A - G*B| there (1: follows the tracer, 0: the MRI). NaN "
                "where nothing outshines the MRI; not counted in the standing line.\n\n"
            )
        write_text(files["summary_md"], "# Fusion evaluation\n\n" + note + md)
        write_summary_csv(files["summary_csv"], summary, self.metric_names)
        write_summary_json(
            files["summary_json"], summary,
            extra={"methods": list(self.methods), "metrics": self.metric_names, "n_samples": len(self.entries)},
        )
        if panel_rows:
            files["panel"] = out / "panel.png"
            render_panel(panel_rows, files["panel"])
        return EvaluationResult(rows=rows, summary=summary, metric_names=self.metric_names, files=files, markdown=md)


def evaluate(
    methods: MethodSpec | Sequence[MethodSpec] | Mapping[str, MethodSpec],
    output_dir: str | os.PathLike,
    datalist: str | os.PathLike | Mapping[str, Any] | None = None,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    **kwargs: Any,
) -> EvaluationResult:
    """Evaluate the ``split`` of a datalist, or a folder in the common layout, with one or more fusion methods.

    Args:
        methods: fusion method names, modules, or a ``{name: module}`` mapping.
        output_dir: where the fused images, tables, panel and (default) MLflow store go.
        datalist: a datalist JSON file or dict (exclusive with ``data_dir``).
        split: the datalist section to evaluate.
        data_dir: a data folder (exclusive with ``datalist``), see :func:`~mmif.evaluation.inputs.resolve_samples`.
        limit: at most this many samples per task.
        kwargs: :class:`FusionEvaluator` arguments (``metrics``, ``batch_size``, ``panel_rows``, ``tracking``,
            ``tracking_uri``, ``experiment``, ``run_name``, ``progress``, ...).

    Returns:
        the :class:`EvaluationResult`.

    Raises:
        InputError: a problem with the inputs (see :func:`~mmif.evaluation.inputs.resolve_samples` and
            :meth:`FusionEvaluator.run`).
    """
    from mmif.evaluation.inputs import resolve_samples

    samples = resolve_samples(datalist=datalist, split=split, data_dir=data_dir, limit=limit)
    source = {"data_dir": os.fspath(data_dir)} if data_dir is not None else {
        "datalist": os.fspath(datalist) if isinstance(datalist, (str, os.PathLike)) else "<dict>"}
    params = {**source, "split": split, "limit": limit if limit is not None else "none", **kwargs.pop("params", {})}
    return FusionEvaluator(samples, methods, output_dir, params=params, **kwargs).run()
