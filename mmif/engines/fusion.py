"""Stage II pieces for MONAI's Ignite engines: batch preparation, loss-term logging, the composite key metric, panels.

Stage II trains the fusion head of :class:`mmif.networks.FusionModel` with MONAI's unchanged
:class:`~monai.engines.SupervisedTrainer` and validates with :class:`~monai.engines.SupervisedEvaluator`:

- :class:`FusionPrepareBatch` gives the engines ``inputs`` = the stacked sources ``batch["image"]`` ``(B, M, *spatial)``
  and ``targets`` = the same sources (the fusion loss and the fusion metrics compare the fused image with every
  source), or a dict of the sources plus extra keys (``chroma``, ``is_color``) for losses that take them;
- :class:`FusionLossTermsHandler` puts the loss's per-term values (e.g. intensity, gradient, SSIM, colour) into
  ``engine.state.metrics`` as running means over the epoch (``loss_<term>``), so the progress bar shows them and the
  epoch logs of ``StatsHandler`` and of MLflow (``--tracking mlflow`` logs ``engine.state.metrics`` every epoch) record
  them;
- :class:`FusionScore` is the documented composite validation metric used for best-model selection (over the
  :class:`mmif.metrics.FusionMetricHandler` values);
- :class:`FusionPanelSaver` writes a picture of sources and fused images after each validation (and logs it to the
  MLflow run of an attached ``MLFlowHandler``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric, MetricsLambda
from monai.engines.utils import IterationEvents, PrepareBatch
from monai.utils import CommonKeys, ensure_tuple

from mmif.engines.mlflow_tracking import log_artifact_to_run

__all__ = [
    "FusionPrepareBatch",
    "FusionLossAdapter",
    "FusionLossTermsHandler",
    "FusionScore",
    "DEFAULT_SCORE_SCALES",
    "FusionPanelSaver",
    "ProgressBarHandler",
    "loss_terms_of",
]



def _to(value: Any, device, non_blocking: bool, **kwargs: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, non_blocking=non_blocking, **kwargs)
    return value


class FusionPrepareBatch(PrepareBatch):
    """Prepare a Stage II batch for MONAI engines: the sources are both the input and the target.

    Use as ``prepare_batch`` of :class:`~monai.engines.SupervisedTrainer` / ``SupervisedEvaluator``. The network gets
    ``batch[image_key]`` ``(B, M, *spatial)``; the loss gets ``(pred, targets)`` and the metrics ``(pred, label)`` with

    - ``targets`` = ``batch[image_key]`` (the sources, ``(B, M, *spatial)``) when ``extra_target_keys`` is empty;
    - otherwise ``{"sources": batch[image_key], key: batch[key], ...}`` for each extra key present in the batch (a
      colour-aware loss reads ``chroma`` ``(B, 2, *spatial)`` and ``is_color`` ``(B,)``).

    When the batch holds ``features_key`` (cached Stage I features, a list of ``(B, M, T, C_l, *spatial_l)``, from
    :class:`mmif.engines.feature_cache.CachedFeatureDataset`), it returns ``(inputs, targets, (), {"features": ...})``:
    MONAI's engines call ``inferer(inputs, network, features=...)``, and :class:`mmif.networks.FusionModel` then skips
    its extractor. Batches without it (validation) give ``(inputs, targets)`` as before.

    Args:
        image_key: the key of the stacked sources.
        extra_target_keys: batch keys added to the targets.
        features_key: the key of cached features passed to the network as ``features=``; ``None``: never.

    Raises:
        ValueError: (when called) the batch is not a dict holding ``image_key``.
    """

    def __init__(
        self,
        image_key: str = CommonKeys.IMAGE,
        extra_target_keys: Sequence[str] | str | None = None,
        features_key: str | None = "features",
    ) -> None:
        self.image_key = image_key
        self.extra_target_keys = tuple(ensure_tuple(extra_target_keys)) if extra_target_keys else ()
        self.features_key = features_key

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple:
        if not isinstance(batchdata, Mapping) or self.image_key not in batchdata:
            keys = ", ".join(map(str, batchdata)) if isinstance(batchdata, Mapping) else type(batchdata).__name__
            raise ValueError(f"{type(self).__name__}: the batch needs the key {self.image_key!r} (got {keys}).")
        image = _to(batchdata[self.image_key], device, non_blocking, **kwargs)
        targets: Any = image
        if self.extra_target_keys:
            targets = {"sources": image}
            for key in self.extra_target_keys:
                if key in batchdata:
                    targets[key] = _to(batchdata[key], device, non_blocking, **kwargs)
        if self.features_key is not None and batchdata.get(self.features_key) is not None:
            features = [_to(f, device, non_blocking, **kwargs) for f in batchdata[self.features_key]]
            return image, targets, (), {"features": features}
        return image, targets


class FusionLossAdapter(torch.nn.Module):
    """Call a fusion loss ``loss(fused, sources, chroma=..., is_color=...)`` with the trainer's ``(pred, targets)``.

    :class:`~monai.engines.SupervisedTrainer` computes ``loss_function(pred, targets)``. With
    :class:`FusionPrepareBatch` ``(extra_target_keys=["chroma", "is_color"])`` the targets are a dict; this adapter
    unpacks it so a colour-aware loss (:class:`mmif.losses.FusionLoss`) gets the chroma by keyword. A plain tensor
    target is passed through as the sources.

    Args:
        loss: the fusion loss.
    """

    def __init__(self, loss: torch.nn.Module) -> None:
        super().__init__()
        self.loss = loss

    @property
    def last_terms(self) -> Mapping[str, Any]:
        """The wrapped loss's per-term values of the last call (``{}`` when it has none)."""
        return getattr(self.loss, "last_terms", None) or {}

    def forward(self, pred: torch.Tensor, targets: Any) -> torch.Tensor:
        """``pred`` ``(B, 1, *spatial)``; ``targets`` the sources ``(B, M, *spatial)`` or ``{"sources", "chroma",
        "is_color"}``. Returns the loss."""
        if isinstance(targets, Mapping):
            extra = {k: targets[k] for k in ("chroma", "is_color") if k in targets}
            return self.loss(pred, targets["sources"], **extra)
        return self.loss(pred, targets)


def loss_terms_of(loss: Any) -> dict[str, float]:
    """The per-term values of the last call of ``loss`` as floats.

    Reads the first of the attributes ``last_terms``, ``terms``, ``last_values`` that is a mapping, or calls a
    ``terms()`` method; values that are tensors are reduced with ``mean()``. A loss without terms gives ``{}``.
    """
    inner = getattr(loss, "loss", None)  # a wrapper around the fusion loss
    for obj in (loss, inner):
        if obj is None:
            continue
        for attr in ("last_terms", "terms", "last_values"):
            value = getattr(obj, attr, None)
            if callable(value) and not isinstance(value, Mapping):
                try:
                    value = value()
                except TypeError:
                    continue
            if isinstance(value, Mapping) and value:
                out = {}
                for k, v in value.items():
                    if isinstance(v, torch.Tensor):
                        v = v.detach().float().mean().item()
                    out[str(k)] = float(v)
                return out
    return {}


class FusionLossTermsHandler:
    """Record the fusion loss's per-term values as running means over the epoch in ``engine.state.metrics``.

    After each loss computation (``IterationEvents.LOSS_COMPLETED``) the terms read by :func:`loss_terms_of` are
    accumulated; ``engine.state.metrics[prefix + term]`` holds the mean so far in the epoch, so

    - an Ignite ``ProgressBar(metric_names="all")`` shows them while training;
    - ``StatsHandler`` prints them at the end of each epoch;
    - an ``MLFlowHandler`` with ``epoch_log=True`` (what ``--tracking mlflow`` adds to ``train#handlers``) logs them
      every epoch.

    The per-iteration values are also copied into the engine output (``output[prefix + term]``, one 0-dim tensor each),
    so ``StatsHandler(output_transform=...)`` can print them per iteration.

    Args:
        loss: the loss function (the trainer's ``loss_function``).
        prefix: prefix of the metric names.
    """

    def __init__(self, loss: Any, prefix: str = "loss_") -> None:
        self.loss = loss
        self.prefix = prefix
        self._sums: dict[str, float] = {}
        self._count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        self._sums, self._count = {}, 0

    def __call__(self, engine: Engine) -> None:
        terms = loss_terms_of(self.loss)
        if not terms:
            return
        self._count += 1
        for name, value in terms.items():
            self._sums[name] = self._sums.get(name, 0.0) + value
            engine.state.metrics[self.prefix + name] = self._sums[name] / self._count
            if isinstance(engine.state.output, dict):
                engine.state.output[self.prefix + name] = torch.tensor(value)


#: default scales of :class:`FusionScore` (metric name -> the value that counts as 1); MI is in nats, as the
#: ``mmif.metrics`` reference convention computes it (8 bits = 8 ln 2 nats).
DEFAULT_SCORE_SCALES: dict[str, float] = {
    "qabf": 1.0,
    "ssim": 2.0,
    "vif": 1.0,
    "mi": 8.0 * math.log(2.0),
    "anatomy": 1.0,
    "function": 1.0,
}


def _match_scale(name: str, scales: Mapping[str, float]) -> float | None:
    """The scale of a metric named e.g. ``val_qabf`` / ``Qabf`` from ``scales`` keyed ``qabf``."""
    key = name.lower()
    if key in scales:
        return scales[key]
    for suffix, scale in scales.items():
        if key.endswith("_" + suffix.lower()) or key.endswith(suffix.lower()):
            return scale
    return None


class FusionScore(MetricsLambda):
    """Composite validation score for best-model selection: the mean of fusion metrics divided by fixed scales.

    .. math::

        S = \\frac{1}{K} \\sum_{k=1}^{K} \\frac{m_k}{s_k}

    With the default scales (:data:`DEFAULT_SCORE_SCALES`) each term is about 1 for an excellent two-source fusion and
    about 0 for a useless one: Q^AB/F in [0, 1] (scale 1), SSIM summed over the sources (scale 2, the number of sources
    in the published tables), VIF summed over the sources (scale 1), MI summed over the sources in nats (scale
    8 ln 2, the largest entropy of an 8-bit image), and the anatomy-under-function scores ``anatomy`` and ``function``
    of :mod:`mmif.metrics.anatomy_function` (each in [0, 1], scale 1; NaN components are left out). Higher is
    better. The components are the
    :class:`mmif.metrics.FusionMetricHandler` values (``"Qabf"``, ``"SSIM"``, ``"VIF"``, ``"MI"``) on the 8-bit scale.
    The score is a :class:`ignite.metrics.MetricsLambda` over the metric objects themselves, so the component metrics are computed once even when they are also attached (e.g. as ``additional_metrics``).

    Args:
        metrics: ``{name: ignite Metric}``, e.g. the evaluator's ``additional_metrics``.
        scales: ``{name: scale}``. Names are matched case-insensitively, also as a suffix (``val_qabf`` matches
            ``qabf``); metrics with no scale are left out of the score. Default: :data:`DEFAULT_SCORE_SCALES`.

    Raises:
        ValueError: no metric has a scale, or a scale is not positive.
    """

    def __init__(self, metrics: Mapping[str, Metric], scales: Mapping[str, float] | None = None) -> None:
        name = type(self).__name__
        scales = dict(DEFAULT_SCORE_SCALES if scales is None else scales)
        if any(not (float(s) > 0) for s in scales.values()):
            raise ValueError(f"{name}: scales must be positive, got {scales}.")
        chosen = [(k, m, _match_scale(k, scales)) for k, m in metrics.items()]
        chosen = [(k, m, s) for k, m, s in chosen if s is not None]
        if not chosen:
            raise ValueError(f"{name}: none of the metrics {list(metrics)} has a scale in {list(scales)}.")
        self.components = {k: s for k, _, s in chosen}
        divisors = [float(s) for _, _, s in chosen]

        def _score(*values: Any) -> float:
            parts = [float(torch.as_tensor(v).float().mean()) / d for v, d in zip(values, divisors)]
            finite = [p for p in parts if math.isfinite(p)]
            return sum(finite) / len(finite) if finite else float("nan")

        super().__init__(_score, *[m for _, m, _ in chosen])


def _display(img: np.ndarray) -> np.ndarray:
    """``(C, *spatial)`` in [0, 1] -> ``(H, W, 3)`` uint8 (the middle slice of a volume)."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 4:  # (C, H, W, D): the middle axial slice
        arr = arr[..., arr.shape[-1] // 2]
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    return np.clip(np.round(np.moveaxis(arr[:3], 0, -1) * 255.0), 0, 255).astype(np.uint8)


class FusionPanelSaver:
    """After each validation, write a panel of the first samples: sources, then the fused image (colour recombined).

    One row per sample, columns = the M sources (greyscale luminance) and the fused result (RGB when the sample is
    colour, see :func:`mmif.fusion.recombine_color`); volumes show their middle slice along the last axis. The panel is
    written to ``output_dir/<prefix>_<epoch>.png`` (a MONAI evaluator run by ``ValidationHandler`` carries the trainer's
    epoch) and, when an
    ``MLFlowHandler`` with an open run is attached to the evaluator (``--tracking mlflow``), logged as an artifact of
    that run under ``panels/``.

    Args:
        output_dir: folder of the panels.
        max_samples: rows per panel.
        prefix: file-name prefix.
        pred_key: the key of the fused image in the engine output.
        image_key: the key of the sources in the batch.

    Raises:
        ValueError: ``max_samples`` < 1.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        max_samples: int = 4,
        prefix: str = "val_panel",
        pred_key: str = CommonKeys.PRED,
        image_key: str = CommonKeys.IMAGE,
    ) -> None:
        if max_samples < 1:
            raise ValueError(f"{type(self).__name__}: max_samples must be >= 1, got {max_samples}.")
        self.output_dir = Path(output_dir)
        self.max_samples = int(max_samples)
        self.prefix = prefix
        self.pred_key = pred_key
        self.image_key = image_key
        self._rows: list[np.ndarray] = []
        self.last_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._rows = []

    def _collect(self, engine: Engine) -> None:
        if len(self._rows) >= self.max_samples:
            return
        from mmif.fusion.apply import recombine_color

        batch, output = engine.state.batch, engine.state.output
        items_b = batch if isinstance(batch, list) else [batch]
        items_o = output if isinstance(output, list) else [output]
        for b, o in zip(items_b, items_o):
            if len(self._rows) >= self.max_samples:
                break
            image = torch.as_tensor(b[self.image_key]).detach().float().cpu()
            fused = torch.as_tensor(o[self.pred_key]).detach().float().cpu()
            if fused.ndim == image.ndim + 1:  # an uncollated output
                fused, image = fused[0], image[0]
            chroma = b.get("chroma")
            is_color = torch.as_tensor(bool(torch.as_tensor(b.get("is_color", False)).any()))
            chroma_t = None if chroma is None else torch.as_tensor(chroma).detach().float().cpu()[None]
            rgb = recombine_color(fused[None].clamp(0, 1), chroma_t, is_color.reshape(1))[0]
            cells = [_display(image[m : m + 1].clamp(0, 1).numpy()) for m in range(image.shape[0])]
            cells.append(_display(rgb.numpy()))
            self._rows.append(np.concatenate(cells, axis=1))

    def _write(self, engine: Engine) -> None:
        if not self._rows:
            return
        from mmif.io import save_image

        width = max(r.shape[1] for r in self._rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in self._rows]
        grid = np.concatenate(rows, axis=0)
        epoch = engine.state.epoch
        path = self.output_dir / f"{self.prefix}_{epoch:04d}.png"
        save_image(path, np.moveaxis(grid, -1, 0))
        self.last_path = path
        log_artifact_to_run(engine, path, artifact_path="panels")


def _loss_of(output: Any) -> dict[str, float]:
    item = output[0] if isinstance(output, list) and output else output
    if isinstance(item, Mapping) and CommonKeys.LOSS in item:
        return {"loss": float(torch.as_tensor(item[CommonKeys.LOSS]).detach().float().mean())}
    return {}


class ProgressBarHandler:
    """An Ignite ``ProgressBar`` for MONAI workflows' handler lists (which call ``handler.attach(engine)``).

    Shows the iteration's loss and the metrics named in ``metric_names`` (``"all"``: everything in
    ``engine.state.metrics``, e.g. the running loss terms of :class:`FusionLossTermsHandler`).

    Args:
        metric_names: ``"all"``, a list of names, or ``None``.
        persist: keep the finished bar of each epoch on screen.
        disable: no bar (e.g. in CI logs).
    """

    def __init__(self, metric_names: str | Sequence[str] | None = "all", persist: bool = False, disable: bool = False):
        self.metric_names = metric_names
        self.persist = persist
        self.disable = disable

    def attach(self, engine: Engine) -> None:
        if self.disable:
            return
        from ignite.handlers import ProgressBar

        ProgressBar(persist=self.persist).attach(engine, metric_names=self.metric_names, output_transform=_loss_of)
