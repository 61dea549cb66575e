"""The fusion metrics as a MONAI cumulative metric over batches of the pipeline's ``[0, 1]`` tensors."""

from __future__ import annotations

from typing import Any

import torch
from monai.metrics.regression import RegressionMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction, look_up_option

from mmif.metrics.compute import METRICS, get_metric, metric_names

__all__ = ["FusionMetric"]


class FusionMetric(RegressionMetric):
    """One fusion metric (by table name) per sample, accumulated over iterations.

    ``y_pred`` is the fused batch ``(B, 1, *spatial)`` and ``y`` the channel-stacked sources ``(B, M, *spatial)``
    (channel order = the datalist's ``modalities``; ``M >= 2``), ``spatial`` = ``(H, W)`` or ``(H, W, D)``, both in the
    pipeline range ``[0, 1]`` by default. Each sample is mapped to the metric scale (``x * input_scale``), optionally
    rounded to 8-bit levels as the reference reads PNG files, and scored with the plain function of
    :mod:`mmif.metrics`, e.g. for SSIM

    .. math::

        \\mathrm{SSIM}_b = \\sum_{m=1}^{M} \\mathrm{SSIM}\\big(q(255\\, \\hat y_{b,0}),\\, q(255\\, y_{b,m})\\big),
        \\qquad q(x) = \\mathrm{round}(\\mathrm{clip}(x, 0, 255))

    Example of the typical execution steps follows :py:class:`monai.metrics.metric.Cumulative`::

        metric = FusionMetric("SSIM")
        for fused, sources in batches:
            metric(fused, sources)          # (B, 1) values of this batch, also buffered
        mean_ssim = metric.aggregate()      # NaN-skipping mean (``reduction``)
        metric.reset()

    Args:
        metric: a name of :data:`mmif.metrics.METRICS` (``"EN"``, ``"SSIM"``, ``"Qabf"``, ...).
        input_scale: multiplies the inputs to reach 0..255 (255 for ``[0, 1]`` data, 1 for data already on 0..255).
        quantize: round (half to even) and clip to integer grey levels 0..255 after scaling, as reading 8-bit PNGs
            does (the reference convention). Without it, values outside 0..255 raise ``ValueError``.
        reduction: MONAI reduction for :meth:`aggregate` (``"mean"``, ``"none"``, ``"mean_batch"``, ...); NaN values
            (e.g. SCD with ``F`` equal to a source, ``anatomy``/``function`` with an empty mask) are skipped, and the
            result is NaN where no sample has a value (MONAI alone would give 0).
        get_not_nans: make :meth:`aggregate` also return the count of non-NaN values.
        options: keyword options of the metric (e.g. ``data_range=255`` for ``"SSIM"``).

    Raises:
        ValueError: unknown metric name or a non-positive ``input_scale``.
    """

    def __init__(
        self,
        metric: str = "SSIM",
        input_scale: float = 255.0,
        quantize: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        if metric not in METRICS:
            raise ValueError(f"FusionMetric: unknown metric {metric!r}; known: {', '.join(metric_names())}")
        if not input_scale > 0:
            raise ValueError(f"FusionMetric: input_scale must be > 0, got {input_scale}")
        self.metric = metric
        self.input_scale = float(input_scale)
        self.quantize = bool(quantize)
        self.options = dict(options)
        self._fn = get_metric(metric)

    def _check_shape(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        if y_pred.ndim not in (4, 5):
            raise ValueError(f"FusionMetric: y_pred must be (B, 1, H, W[, D]), got shape {tuple(y_pred.shape)}")
        if y_pred.shape[1] != 1:
            raise ValueError(f"FusionMetric: y_pred must have 1 channel (the fused image), got {y_pred.shape[1]}")
        if y.ndim != y_pred.ndim or y.shape[0] != y_pred.shape[0] or y.shape[2:] != y_pred.shape[2:]:
            raise ValueError(f"FusionMetric: y must be the sources (B, M, *spatial) matching y_pred "
                             f"{tuple(y_pred.shape)}, got {tuple(y.shape)}")
        if METRICS[self.metric].needs_sources and y.shape[1] < 2:
            raise ValueError(f"FusionMetric: y must stack M >= 2 sources on the channel axis, got {y.shape[1]}")

    def _to_scale(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float64) * self.input_scale
        return x.clamp(0.0, 255.0).round() if self.quantize else x

    def aggregate(
        self, reduction: MetricReduction | str | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The NaN-skipping reduction of the buffered values (see ``reduction``); NaN where none is defined."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be PyTorch Tensor.")
        reduction = look_up_option(reduction or self.reduction, MetricReduction)
        f, not_nans = do_metric_reduction(data, reduction)
        if reduction != MetricReduction.NONE:  # MONAI gives 0 for a mean over no value
            f = torch.where(not_nans > 0, f, f.new_full((), float("nan")))
        return (f, not_nans) if self.get_not_nans else f

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Returns ``(B, 1)``: the metric of every sample."""
        fused, sources = self._to_scale(y_pred), self._to_scale(y)
        values = [self._fn(fused[b, 0], list(sources[b]), **self.options) for b in range(fused.shape[0])]
        return torch.tensor(values, dtype=torch.float64, device=y_pred.device).unsqueeze(1)
