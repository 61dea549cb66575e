"""``mmif evaluate``: fuse a datalist or folder with one or more methods, write and score the results.

- :func:`evaluate` / :class:`FusionEvaluator` (:mod:`mmif.evaluation.runner`): the run;
- :func:`resolve_samples` (:mod:`mmif.evaluation.inputs`): which samples;
- :mod:`mmif.evaluation.scoring`: what exactly is written and scored;
- :mod:`mmif.evaluation.report`: per-image CSV, per-task summaries (CSV, JSON, markdown);
- :mod:`mmif.evaluation.panel`: the picture panel;
- :mod:`mmif.evaluation.tracking`: MLflow (embedded SQLite store by default).
"""

from __future__ import annotations

from mmif.evaluation.inputs import normalize_entry, resolve_samples
from mmif.evaluation.panel import PanelRow, render_panel
from mmif.evaluation.report import MetricSummary, read_metrics_csv, summarize, summary_markdown
from mmif.evaluation.runner import (
    EVALUATION_METRICS,
    EvaluationResult,
    FusionEvaluator,
    evaluate,
    method_name,
    resolve_methods,
)
from mmif.evaluation.tracking import DEFAULT_EXPERIMENT, MLflowTracker, default_tracking_uri, resolve_tracking_uri

__all__ = [
    "evaluate",
    "FusionEvaluator",
    "EvaluationResult",
    "EVALUATION_METRICS",
    "resolve_samples",
    "normalize_entry",
    "method_name",
    "resolve_methods",
    "MetricSummary",
    "summarize",
    "summary_markdown",
    "read_metrics_csv",
    "PanelRow",
    "render_panel",
    "MLflowTracker",
    "DEFAULT_EXPERIMENT",
    "default_tracking_uri",
    "resolve_tracking_uri",
]
