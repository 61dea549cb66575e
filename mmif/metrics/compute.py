"""All metrics by name: the registry, the default sets, and :func:`compute_metrics` (shared work between metrics)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmif.metrics._utils import FusionInputs
from mmif.metrics import anatomy_function, correlation, edges, fidelity, information, statistics, structural

__all__ = [
    "MetricSpec",
    "METRICS",
    "DEFAULT_METRICS",
    "PAPER_METRICS",
    "ANATOMY_METRICS",
    "HIGHER_IS_BETTER",
    "compute_metrics",
    "get_metric",
    "metric_names",
]


@dataclass(frozen=True)
class MetricSpec:
    """One named metric.

    Attributes:
        name: the table name (``"EN"``, ``"SSIM"``, ...; the keys of the reference ``metrics.json``).
        function: the public function (``entropy(fused)`` or ``ssim(fused, sources, ...)``), documenting the metric.
        impl: ``impl(inputs: FusionInputs, **options) -> float``, the same computation on shared inputs.
        needs_sources: ``False`` for the no-reference metrics (EN, SD, SF, AG).
        higher_is_better: the direction of "better".
        options: fixed keyword options that define this name (e.g. ``SSIM_dr255`` = SSIM with ``data_range=255``).
    """

    name: str
    function: Callable[..., float]
    impl: Callable[..., float]
    needs_sources: bool = True
    higher_is_better: bool = True
    options: dict[str, Any] = field(default_factory=dict)


def _specs() -> dict[str, MetricSpec]:
    st, co, inf, stru, ed = statistics, correlation, information, structural, edges
    specs = [
        MetricSpec("EN", st.entropy, st._entropy, needs_sources=False),
        MetricSpec("SD", st.standard_deviation, st._standard_deviation, needs_sources=False),
        MetricSpec("SF", st.spatial_frequency, st._spatial_frequency, needs_sources=False),
        MetricSpec("AG", st.average_gradient, st._average_gradient, needs_sources=False),
        MetricSpec("MI", inf.mutual_information, inf._mutual_information),
        MetricSpec("SCD", co.scd, co._scd),
        MetricSpec("VIF", fidelity.vif, fidelity._vif),
        MetricSpec("Qabf", ed.qabf, ed._qabf),
        MetricSpec("Nabf", ed.nabf, ed._nabf, higher_is_better=False),
        MetricSpec("SSIM", stru.ssim, stru._ssim),
        MetricSpec("MS_SSIM", stru.ms_ssim, stru._ms_ssim),
        MetricSpec("PSNR", co.psnr, co._psnr),
        MetricSpec("CC", co.cc, co._cc),
        MetricSpec("MSE", co.mse, co._mse, higher_is_better=False),
        MetricSpec("SSIM_dr255", stru.ssim, stru._ssim, options={"data_range": 255.0}),
        MetricSpec("FMI", inf.fmi, inf._fmi, options={"feature": "pixel"}),
        MetricSpec("FMI_w", inf.fmi, inf._fmi, options={"feature": "wavelet"}),
        MetricSpec("anatomy", anatomy_function.anatomy, anatomy_function._anatomy),
        MetricSpec("function", anatomy_function.function, anatomy_function._function),
    ]
    return {s.name: s for s in specs}


#: every metric mmif knows, by table name.
METRICS: dict[str, MetricSpec] = _specs()
#: the 13 metrics :func:`compute_metrics` computes by default (the reference's columns, without MSE/SSIM_dr255).
DEFAULT_METRICS: tuple[str, ...] = (
    "EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "Nabf", "SSIM", "MS_SSIM", "PSNR", "CC",
)
#: anatomy under function (:mod:`mmif.metrics.anatomy_function`): what a reader of a PET/SPECT fusion looks for.
ANATOMY_METRICS: tuple[str, ...] = ("anatomy", "function")
#: the metrics DM-FNet's tables report.
PAPER_METRICS: tuple[str, ...] = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")
#: metric name -> whether a larger value is better (Nabf and MSE: lower is better).
HIGHER_IS_BETTER: dict[str, bool] = {name: spec.higher_is_better for name, spec in METRICS.items()}


def metric_names() -> tuple[str, ...]:
    """Every known metric name (the defaults first)."""
    return DEFAULT_METRICS + tuple(n for n in METRICS if n not in DEFAULT_METRICS)


def _spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ValueError(f"unknown fusion metric {name!r}; known: {', '.join(metric_names())}")
    return METRICS[name]


def _call(spec: MetricSpec, inputs: FusionInputs, options: dict[str, Any]) -> float:
    return spec.impl(inputs, **{**spec.options, **options})


def get_metric(name: str) -> Callable[..., float]:
    """The metric ``name`` as ``fn(fused, sources=None, **options) -> float``.

    No-reference metrics (EN, SD, SF, AG) accept and ignore ``sources``. ``options`` override the name's defaults
    (e.g. ``get_metric("SSIM")(f, [a, b], reduction="mean")``).

    Raises:
        ValueError: unknown name.
    """
    spec = _spec(name)

    @functools.wraps(spec.function)
    def fn(fused: Any, sources: Sequence[Any] | None = None, **options: Any) -> float:
        inputs = FusionInputs(fused, sources if spec.needs_sources else None, name, need_sources=spec.needs_sources)
        return _call(spec, inputs, options)

    fn.__name__ = name
    return fn


def compute_metrics(fused: Any, sources: Sequence[Any] | None, names: Sequence[str] | None = None) -> dict[str, float]:
    """Compute several fusion metrics of one fused image at once, sharing intermediate results.

    Args:
        fused: ``F``, ``(H, W)`` or ``(H, W, D)``, NumPy or torch, on the 0..255 scale.
        sources: ``N >= 2`` source images of the same shape (may be ``None`` when only EN/SD/SF/AG are asked).
        names: metric names (see :data:`METRICS`); default :data:`DEFAULT_METRICS`.

    Returns:
        ``{name: value}`` in the order of ``names`` (NaN where a metric is undefined, e.g. SCD with ``F`` equal to a
        source).

    Raises:
        ValueError: unknown names, bad shapes or values (see :class:`FusionInputs`).
    """
    names = list(DEFAULT_METRICS if names is None else names)
    specs = [_spec(n) for n in names]
    need = any(s.needs_sources for s in specs)
    inputs = FusionInputs(fused, sources if need else None, "compute_metrics", need_sources=need)
    return {spec.name: _call(spec, inputs, {}) for spec in specs}
