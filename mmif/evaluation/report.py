"""Per-image score tables and their per-task summaries (CSV, JSON, markdown).

The per-image table has one row per (task, name, method) with one column per metric. The summary groups it by task and
method and gives, for every metric, the mean and the sample standard deviation (``ddof=1``; 0 for a single image) over
the images where the metric is defined (NaN values, e.g. SCD when the fused image equals a source or ``anatomy`` /
``function`` when nothing outshines the MRI, are left out and counted in ``n_nan``). The standing line of the markdown
counts only the published tables' metrics (:data:`~mmif.metrics.PAPER_METRICS`); the other columns are shown only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mmif.io import atomic_write
from mmif.metrics.compute import PAPER_METRICS

__all__ = [
    "MetricSummary",
    "summarize",
    "write_metrics_csv",
    "read_metrics_csv",
    "write_summary_csv",
    "write_summary_json",
    "near_best_counts",
    "summary_markdown",
    "write_text",
    "ROW_KEYS",
]

#: identifying columns of the per-image table, before the metric columns
ROW_KEYS = ("task", "name", "method")
#: the per-metric columns of the summary CSV (``<metric>_<field>``)
_SUMMARY_FIELDS = ("mean", "std", "n")


@dataclass(frozen=True)
class MetricSummary:
    """Mean and spread of one metric for one (task, method) over its images.

    Attributes:
        mean: mean over the images where the metric is finite (NaN when there is none).
        std: sample standard deviation (``ddof=1``) over the same images; 0 for one image, NaN for none.
        n: images where the metric is finite.
        n_nan: images where it is NaN/undefined.
    """

    mean: float
    std: float
    n: int
    n_nan: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"mean": _json_float(self.mean), "std": _json_float(self.std), "n": self.n, "n_nan": self.n_nan}


def _json_float(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def summarize(
    rows: Sequence[Mapping[str, object]], metric_names: Sequence[str]
) -> dict[str, dict[str, dict[str, MetricSummary]]]:
    """Group per-image rows by task and method.

    Args:
        rows: dicts with ``task``, ``method`` and one float per name in ``metric_names``.
        metric_names: the metric columns to summarise, in order.

    Returns:
        ``{task: {method: {metric: MetricSummary}}}``; tasks and methods in order of first appearance.
    """
    groups: dict[str, dict[str, list[Mapping[str, object]]]] = {}
    for row in rows:
        groups.setdefault(str(row["task"]), {}).setdefault(str(row["method"]), []).append(row)
    out: dict[str, dict[str, dict[str, MetricSummary]]] = {}
    for task, by_method in groups.items():
        out[task] = {}
        for method, group in by_method.items():
            out[task][method] = {}
            for m in metric_names:
                vals = np.asarray([float(r[m]) for r in group], dtype=np.float64)  # type: ignore[arg-type]
                ok = vals[np.isfinite(vals)]
                n = int(ok.size)
                mean = float(ok.mean()) if n else float("nan")
                std = float(ok.std(ddof=1)) if n > 1 else (0.0 if n == 1 else float("nan"))
                out[task][method][m] = MetricSummary(mean, std, n, int(vals.size - n))
    return out


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    atomic_write(path, _write)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _fmt_csv(x: object) -> object:
    # repr of a float round-trips exactly, so scores read back from the CSV equal the computed ones
    return repr(float(x)) if isinstance(x, (float, np.floating)) else x


def write_metrics_csv(
    path: str | os.PathLike, rows: Sequence[Mapping[str, object]], metric_names: Sequence[str]
) -> None:
    """Write the per-image table: columns ``task, name, method`` and one per metric (full float precision)."""
    header = [*ROW_KEYS, *metric_names]
    write_text(path, _csv_text(header, [[_fmt_csv(r[k]) for k in header] for r in rows]))


def read_metrics_csv(path: str | os.PathLike) -> tuple[list[dict[str, object]], list[str]]:
    """Read a table written by :func:`write_metrics_csv`.

    Returns:
        the rows (metric values as floats, ``nan`` kept) and the metric names in column order.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        names = [c for c in (reader.fieldnames or []) if c not in ROW_KEYS]
        rows = [{**{k: r[k] for k in ROW_KEYS}, **{m: float(r[m]) for m in names}} for r in reader]
    return rows, names


def write_summary_csv(
    path: str | os.PathLike, summary: Mapping[str, Mapping[str, Mapping[str, MetricSummary]]], metric_names: Sequence[str]
) -> None:
    """Write the summary as CSV: ``task, method, n_images`` then ``<metric>_mean``, ``<metric>_std`` and
    ``<metric>_n`` (the images where it is defined, e.g. fewer for ``anatomy`` where nothing outshines the MRI)."""
    header = ["task", "method", "n_images"] + [f"{m}_{s}" for m in metric_names for s in _SUMMARY_FIELDS]
    rows = []
    for task, by_method in summary.items():
        for method, stats in by_method.items():
            n_images = max((s.n + s.n_nan for s in stats.values()), default=0)
            rows.append(
                [task, method, n_images]
                + [_fmt_csv(getattr(stats[m], s)) for m in metric_names for s in _SUMMARY_FIELDS]
            )
    write_text(path, _csv_text(header, rows))


def write_summary_json(
    path: str | os.PathLike,
    summary: Mapping[str, Mapping[str, Mapping[str, MetricSummary]]],
    extra: Mapping[str, object] | None = None,
) -> None:
    """Write ``{"summary": {task: {method: {metric: {mean, std, n, n_nan}}}}, **extra}`` (NaN as ``null``)."""
    payload = {
        **(dict(extra) if extra else {}),
        "summary": {
            t: {meth: {m: s.as_dict() for m, s in stats.items()} for meth, stats in by_method.items()}
            for t, by_method in summary.items()
        },
    }
    write_text(path, json.dumps(payload, indent=2) + "\n")


def _best(values: Sequence[float], higher_is_better: bool | None) -> set[int]:
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if higher_is_better is None or len(finite) < 2:
        return set()
    target = (max if higher_is_better else min)(v for _, v in finite)
    return {i for i, v in finite if v == target}


def near_best_counts(
    by_method: Mapping[str, Mapping[str, MetricSummary]],
    metric_names: Sequence[str],
    higher_is_better: Mapping[str, bool],
    tolerance: float = 0.01,
) -> dict[str, int]:
    """Per method, on how many of ``metric_names`` its mean is the best or within ``tolerance`` (relative) of the best
    of the methods given (one task of :func:`summarize`).

    Metrics without a direction in ``higher_is_better``, missing for some method or with a non-finite best are not
    counted for anyone. "Within 1 %" of a best ``b`` means ``>= b - 0.01 |b|`` (higher is better) or
    ``<= b + 0.01 |b|`` (lower is better).
    """
    methods = list(by_method)
    counts = dict.fromkeys(methods, 0)
    for m in metric_names:
        hib = higher_is_better.get(m)
        if hib is None or any(m not in by_method[meth] for meth in methods):
            continue
        means = {meth: by_method[meth][m].mean for meth in methods}
        finite = [v for v in means.values() if math.isfinite(v)]
        if not finite:
            continue
        best = max(finite) if hib else min(finite)
        margin = tolerance * abs(best)
        for meth, v in means.items():
            if math.isfinite(v) and (v >= best - margin if hib else v <= best + margin):
                counts[meth] += 1
    return counts


def _fmt_value(x: float, digits: int) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"


def summary_markdown(
    summary: Mapping[str, Mapping[str, Mapping[str, MetricSummary]]],
    metric_names: Sequence[str],
    higher_is_better: Mapping[str, bool] | None = None,
    digits: int = 4,
    heading_level: int = 3,
    standing_metrics: Sequence[str] = PAPER_METRICS,
) -> str:
    """Markdown tables, one per task: methods × metrics as ``mean ± std``.

    The best mean of each column is bold (the largest for metrics marked higher-is-better, the smallest otherwise;
    no bold for metrics missing from ``higher_is_better`` or with fewer than two methods). Headers carry ↑ / ↓.
    With two or more methods, a line under each table gives every method's standing: on how many of
    ``standing_metrics`` (those the run computed; default the published tables' eight) it is the best or within 1 % of
    the best (:func:`near_best_counts`).

    Args:
        summary: from :func:`summarize`.
        metric_names: the columns, in order.
        higher_is_better: metric name -> True (↑) or False (↓).
        digits: decimals shown.
        heading_level: markdown heading level of the per-task titles.
        standing_metrics: the metrics of the standing line (empty: no line).

    Returns:
        the markdown text.
    """
    hib = dict(higher_is_better or {})
    arrow = {True: " ↑", False: " ↓"}
    parts = []
    for task, by_method in summary.items():
        methods = list(by_method)
        n_images = max((s.n + s.n_nan for st in by_method.values() for s in st.values()), default=0)
        parts.append(f"{'#' * heading_level} {task} ({n_images} images)\n")
        header = ["method"] + [f"{m}{arrow.get(hib.get(m), '')}" for m in metric_names]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(metric_names)) + "|"]
        cells = {meth: [] for meth in methods}
        for m in metric_names:
            means = [by_method[meth][m].mean for meth in methods]
            best = _best(means, hib.get(m))
            for i, meth in enumerate(methods):
                s = by_method[meth][m]
                text = f"{_fmt_value(s.mean, digits)} ± {_fmt_value(s.std, digits)}"
                if s.n_nan:
                    text += f" ({s.n_nan} nan)"
                cells[meth].append(f"**{text}**" if i in best else text)
        lines += ["| " + " | ".join([meth, *cells[meth]]) + " |" for meth in methods]
        counted = [m for m in standing_metrics if m in metric_names and m in hib]
        if len(methods) > 1 and counted:
            counts = near_best_counts(by_method, counted, hib)
            standing = ", ".join(f"{meth} {counts[meth]}/{len(counted)}" for meth in methods)
            lines += ["", f"Best or within 1 % of the best on {', '.join(counted)}: {standing}."]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
