"""Image-fusion metrics: plain functions, a MONAI cumulative metric and Ignite handlers.

Plain functions take the fused image ``F`` and a sequence of ``N >= 2`` source images as NumPy arrays or torch tensors
on the **0..255 scale**, 2D ``(H, W)`` or 3D ``(H, W, D)``, and return a Python float. Their defaults reproduce the
metric reference (``shared/reference/README.md``): sums over the sources for MI/SSIM/VIF/SCD, MI in nats, SSIM with
``data_range=2``, PSNR with ``max(F)``, ...; other conventions are keyword options. Each docstring gives the formula
and says how the metric extends to 3D.

- no reference: :func:`entropy` (EN), :func:`standard_deviation` (SD), :func:`spatial_frequency` (SF),
  :func:`average_gradient` (AG);
- against the sources: :func:`mutual_information` (MI), :func:`scd`, :func:`vif`, :func:`qabf`, :func:`nabf`,
  :func:`ssim`, :func:`ms_ssim`, :func:`psnr`, :func:`mse`, :func:`cc`, :func:`fmi` (optional, slower);
- anatomy under function (:data:`ANATOMY_METRICS`): :func:`anatomy` (the MRI's edges kept where PET/SPECT outshines
  it) and :func:`function` (the fused brightness follows the tracer there);
- :func:`compute_metrics` computes several at once by table name (:data:`DEFAULT_METRICS`), sharing work;
- :func:`to_gray8`: 8-bit grey/RGB -> the reference's grey levels;
- :class:`FusionMetric` (MONAI ``CumulativeIterationMetric``) and :class:`FusionMetricHandler` (Ignite).
"""

from __future__ import annotations

from mmif.metrics._utils import FusionInputs
from mmif.metrics.anatomy_function import anatomy, function, function_dominant_mask
from mmif.metrics.compute import (
    ANATOMY_METRICS,
    DEFAULT_METRICS,
    HIGHER_IS_BETTER,
    METRICS,
    PAPER_METRICS,
    MetricSpec,
    compute_metrics,
    get_metric,
    metric_names,
)
from mmif.metrics.correlation import cc, mse, psnr, scd
from mmif.metrics.edges import nabf, qabf
from mmif.metrics.fidelity import vif
from mmif.metrics.gray import to_gray8
from mmif.metrics.information import fmi, mutual_information
from mmif.metrics.statistics import average_gradient, entropy, spatial_frequency, standard_deviation
from mmif.metrics.structural import MS_SSIM_WEIGHTS, ms_ssim, ssim

__all__ = [
    "entropy",
    "standard_deviation",
    "spatial_frequency",
    "average_gradient",
    "mutual_information",
    "scd",
    "vif",
    "qabf",
    "nabf",
    "ssim",
    "ms_ssim",
    "psnr",
    "mse",
    "cc",
    "fmi",
    "anatomy",
    "function",
    "function_dominant_mask",
    "ANATOMY_METRICS",
    "to_gray8",
    "compute_metrics",
    "get_metric",
    "metric_names",
    "MetricSpec",
    "METRICS",
    "DEFAULT_METRICS",
    "PAPER_METRICS",
    "HIGHER_IS_BETTER",
    "MS_SSIM_WEIGHTS",
    "FusionInputs",
    "FusionMetric",
    "FusionMetricHandler",
    "fusion_metric_handlers",
]

#: MONAI/Ignite wrappers, imported on first use (the plain functions need only torch)
_LAZY = {
    "FusionMetric": "mmif.metrics.cumulative",
    "FusionMetricHandler": "mmif.metrics.handlers",
    "fusion_metric_handlers": "mmif.metrics.handlers",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
