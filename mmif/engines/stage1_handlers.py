"""Ignite handlers for Stage I validation: reconstruction quality per timestep and modality, and a picture panel.

Both read an evaluator that uses :class:`mmif.engines.diffusion.DiffusionReconstructionInferer` with
``decollate=False``: ``engine.state.output["pred"]`` holds the clean-image estimates ``(B, T, *spatial)`` and
``engine.state.output["image"]`` the clean images ``(B, 1, *spatial)``, both in the model range ``[-1, 1]``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.metrics import PSNRMetric, SSIMMetric

from mmif.engines.diffusion import DiffusionReconstructionInferer
from mmif.engines.mlflow_tracking import log_artifact_to_run

__all__ = ["ReconstructionQualityHandler", "ReconstructionPanelHandler", "panel_columns"]


def _batch_output(engine: Engine) -> tuple[torch.Tensor, torch.Tensor]:
    out = engine.state.output
    if isinstance(out, (list, tuple)):  # decollated
        return torch.stack([o["pred"] for o in out]), torch.stack([o["image"] for o in out])
    return out["pred"], out["image"]


def _modalities(engine: Engine, key: str, n: int) -> list[str]:
    batch = engine.state.batch
    names = batch.get(key) if isinstance(batch, dict) else None
    if names is None:
        return ["all"] * n
    return [str(v) for v in names]


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


class ReconstructionQualityHandler:
    """PSNR and SSIM of the clean-image estimate at each validation timestep, overall and per modality.

    At the end of each evaluator epoch it writes into ``engine.state.metrics`` (images mapped to ``[0, 1]``, so PSNR
    is on the usual 8-bit scale): ``psnr_t{t}``, ``ssim_t{t}``, ``psnr_t{t}_{modality}``, ``ssim_t{t}_{modality}``
    and the baseline ``psnr_noisy_t{t}_{modality}`` (the noisy input itself against the clean image). Attach it before
    ``StatsHandler``/``MLFlowHandler`` so they log these values.

    Args:
        inferer: the evaluator's inferer (gives the timesteps and the seeded noise).
        modality_key: batch key of the per-sample modality name (from the Stage I datalist).
        spatial_dims: 2 or 3 (for SSIM).
        key_metric: the name of the headline metric (for ``key_metric_name``, e.g. model selection).

    Raises:
        ValueError: ``spatial_dims`` not 2 or 3.
    """

    def __init__(
        self,
        inferer: DiffusionReconstructionInferer,
        modality_key: str = "modality",
        spatial_dims: int = 2,
        key_metric: str = "psnr_t20",
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"{type(self).__name__}: spatial_dims must be 2 or 3, got {spatial_dims}")
        self.inferer = inferer
        self.modality_key = modality_key
        self.key_metric_name = key_metric
        self.psnr = PSNRMetric(max_val=1.0, reduction="none")
        self.ssim = SSIMMetric(spatial_dims=spatial_dims, data_range=1.0, reduction="none", win_size=7)
        self._values: dict[str, list[float]] = defaultdict(list)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.compute)

    def reset(self, engine: Engine | None = None) -> None:
        self._values = defaultdict(list)

    def update(self, engine: Engine) -> None:
        pred, clean = _batch_output(engine)
        b = clean.shape[0]
        names = _modalities(engine, self.modality_key, b)
        noisy, _ = self.inferer.add_noise(clean)
        noisy = noisy.reshape(pred.shape)
        target = _to_unit(clean)
        for k, t in enumerate(self.inferer.timesteps):
            est = _to_unit(pred[:, k : k + 1])
            psnr = self.psnr(est, target).flatten().tolist()
            ssim = self.ssim(est, target).flatten().tolist()
            psnr_noisy = self.psnr(_to_unit(noisy[:, k : k + 1]), target).flatten().tolist()
            for i, name in enumerate(names):
                for tag, values in (("psnr", psnr), ("ssim", ssim), ("psnr_noisy", psnr_noisy)):
                    self._values[f"{tag}_t{t}"].append(values[i])
                    self._values[f"{tag}_t{t}_{name}"].append(values[i])

    def compute(self, engine: Engine) -> None:
        for name, values in sorted(self._values.items()):
            finite = [v for v in values if np.isfinite(v)]
            engine.state.metrics[name] = float(np.mean(finite)) if finite else float("inf")


class ReconstructionPanelHandler:
    """Save a PNG panel of the first validation batch: for each timestep the noisy input and the clean-image
    estimate, then the target (one row per image; 3D images show their middle slice along the last axis).

    The file is ``{output_dir}/{prefix}_epoch{N}.png`` where ``N`` is the trainer epoch when the evaluator runs from a
    ``ValidationHandler`` (MONAI evaluators take the trainer's epoch). When an ``MLFlowHandler`` is attached to the
    evaluator (as with ``--tracking mlflow``), the panel is also logged to its run under ``panels/``.

    Args:
        inferer: the evaluator's inferer.
        output_dir: where to write the panels.
        num_images: rows of the panel.
        prefix: file name prefix.
    """

    def __init__(
        self, inferer: DiffusionReconstructionInferer, output_dir: str | os.PathLike, num_images: int = 4,
        prefix: str = "stage1_panel",
    ) -> None:
        if num_images < 1:
            raise ValueError(f"{type(self).__name__}: num_images must be >= 1, got {num_images}")
        self.inferer = inferer
        self.output_dir = os.fspath(output_dir)
        self.num_images = num_images
        self.prefix = prefix
        self._rows: list[np.ndarray] = []
        self.last_path: str | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def reset(self, engine: Engine | None = None) -> None:
        self._rows = []

    @staticmethod
    def _plane(x: torch.Tensor) -> np.ndarray:
        """``(*spatial)`` in [-1, 1] -> 2D array in [0, 1]."""
        x = _to_unit(x)
        if x.ndim == 3:
            x = x[..., x.shape[-1] // 2]
        return x.detach().cpu().numpy()

    def update(self, engine: Engine) -> None:
        if len(self._rows) >= self.num_images:
            return
        pred, clean = _batch_output(engine)
        n = min(clean.shape[0], self.num_images - len(self._rows))
        noisy, _ = self.inferer.add_noise(clean[:n])
        noisy = noisy.reshape(n, len(self.inferer.timesteps), *clean.shape[2:])
        for i in range(n):
            tiles = []
            for k in range(len(self.inferer.timesteps)):
                tiles += [self._plane(noisy[i, k]), self._plane(pred[i, k])]
            tiles.append(self._plane(clean[i, 0]))
            self._rows.append(np.concatenate(tiles, axis=1))

    def save(self, engine: Engine) -> None:
        if not self._rows:
            return
        from mmif.io import save_image

        width = max(r.shape[1] for r in self._rows)
        panel = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in self._rows], axis=0)
        epoch = engine.state.epoch  # a MONAI evaluator run by ValidationHandler carries the trainer's epoch
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, f"{self.prefix}_epoch{epoch}.png")
        save_image(path, panel[None].astype(np.float32))
        self.last_path = path
        log_artifact_to_run(engine, path, artifact_path="panels")


def panel_columns(timesteps: Sequence[int]) -> list[str]:
    """Column titles of :class:`ReconstructionPanelHandler` panels (for documentation and captions)."""
    return [f"{kind} t={t}" for t in timesteps for kind in ("noisy", "x0")] + ["target"]
