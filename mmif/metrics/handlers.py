"""Ignite handlers for the fusion metrics, for MONAI evaluators and bundle configs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.handlers import IgniteMetricHandler
from monai.utils import MetricReduction

from mmif.metrics.compute import DEFAULT_METRICS
from mmif.metrics.cumulative import FusionMetric

__all__ = ["FusionMetricHandler", "fusion_metric_handlers"]


class FusionMetricHandler(IgniteMetricHandler):
    """Computes one fusion metric of the fused image against the channel-stacked sources over an evaluation run.

    The engine output must give ``(y_pred, y)`` = (fused ``(B, 1, *spatial)``, sources ``(B, M, *spatial)``), e.g.
    in a bundle config::

        "key_val_metric": {"val_ssim": {
            "_target_": "mmif.metrics.FusionMetricHandler", "metric": "SSIM",
            "output_transform": "$monai.handlers.from_engine(['pred', 'image'])"}}

    Args:
        metric: a name of :data:`mmif.metrics.METRICS`.
        input_scale, quantize, options: see :class:`FusionMetric`.
        reduction: MONAI reduction of the per-sample values (NaN-skipping mean by default; NaN when no sample has a
            value, e.g. ``"anatomy"`` over images where nothing outshines the MRI).
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``.
        save_details: keep the per-sample values in ``engine.state.metric_details[name]``.

    See also:
        :py:class:`mmif.metrics.FusionMetric`
    """

    def __init__(
        self,
        metric: str = "SSIM",
        input_scale: float = 255.0,
        quantize: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
        **options: Any,
    ) -> None:
        metric_fn = FusionMetric(metric, input_scale=input_scale, quantize=quantize, reduction=reduction, **options)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


def fusion_metric_handlers(
    names: Sequence[str] = DEFAULT_METRICS, prefix: str = "", **kwargs: Any
) -> dict[str, FusionMetricHandler]:
    """``{prefix + name: FusionMetricHandler(name, **kwargs)}`` for an evaluator's ``additional_metrics``.

    See also:
        :py:class:`FusionMetricHandler`
    """
    return {f"{prefix}{name}": FusionMetricHandler(name, **kwargs) for name in names}
