"""Stage I: training a diffusion UNet to reconstruct every modality, the MONAI way.

Training uses MONAI's ``SupervisedTrainer`` + ``DiffusionInferer`` unchanged; only the batch preparation is ours
(:class:`DiffusionReconstructionPrepareBatch`, the pattern of MONAI's ``VPredictionPrepareBatch``): the loss target
follows the scheduler's ``prediction_type`` (``"epsilon"``: the noise; ``"sample"``: the clean image, as DM-FNet;
``"v_prediction"``: the velocity).

Validation uses :class:`DiffusionReconstructionInferer`: every clean image is noised at fixed timesteps with seeded
noise and the network's output is turned into its estimate of the clean image (``x0``), so reconstruction quality can
be measured per timestep (see :mod:`mmif.engines.stage1_handlers`).

All tensors here are in the model's value range, ``[-1, 1]`` (the configs map the ``[0, 1]`` samples explicitly).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data import MetaTensor
from monai.engines.utils import DiffusionPrepareBatch
from monai.inferers import Inferer
from monai.networks.schedulers import Scheduler
from torch import nn

__all__ = [
    "PREDICTION_TYPES",
    "DiffusionReconstructionPrepareBatch",
    "DiffusionReconstructionInferer",
    "predict_x0",
    "diffusion_target",
]

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def _alpha_bar(scheduler: Scheduler, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``alphas_cumprod[t]`` broadcastable against ``like`` ``(N, C, *spatial)``."""
    a = scheduler.alphas_cumprod.to(device=like.device, dtype=like.dtype)[timesteps.to(like.device).long()]
    return a.reshape(-1, *([1] * (like.ndim - 1)))


def diffusion_target(
    prediction_type: str, images: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, scheduler: Scheduler
) -> torch.Tensor:
    """The training target for ``prediction_type`` (``"epsilon"``, ``"sample"`` or ``"v_prediction"``).

    Args:
        prediction_type: what the network predicts.
        images: clean images ``(N, C, *spatial)``.
        noise: the Gaussian noise added, same shape.
        timesteps: ``(N,)``.
        scheduler: the noise scheduler (for ``"v_prediction"``).

    Raises:
        ValueError: unknown ``prediction_type``.
    """
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return images
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(images, noise, timesteps)
    raise ValueError(f"diffusion_target: prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def predict_x0(
    model_output: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor, scheduler: Scheduler,
    prediction_type: str | None = None,
) -> torch.Tensor:
    """The clean-image estimate ``x0`` implied by the network output at ``timesteps``.

    With ``a = alphas_cumprod[t]`` and ``x_t = sqrt(a) x0 + sqrt(1 - a) eps``: ``"sample"`` returns the output,
    ``"epsilon"`` returns ``(x_t - sqrt(1 - a) eps) / sqrt(a)``, ``"v_prediction"`` returns
    ``sqrt(a) x_t - sqrt(1 - a) v``.

    Args:
        model_output: ``(N, C, *spatial)``.
        noisy: the network input ``x_t``, same shape.
        timesteps: ``(N,)``.
        scheduler: the noise scheduler.
        prediction_type: default: ``scheduler.prediction_type``.
    """
    prediction_type = prediction_type or scheduler.prediction_type
    if prediction_type == "sample":
        return model_output
    a = _alpha_bar(scheduler, timesteps, noisy)
    if prediction_type == "epsilon":
        return (noisy - (1 - a).sqrt() * model_output) / a.sqrt()
    if prediction_type == "v_prediction":
        return a.sqrt() * noisy - (1 - a).sqrt() * model_output
    raise ValueError(f"predict_x0: prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


class DiffusionReconstructionPrepareBatch(DiffusionPrepareBatch):
    """``prepare_batch`` for Stage I training with MONAI's ``SupervisedTrainer`` and ``DiffusionInferer``.

    Draws the noise and uniform random timesteps as :class:`monai.engines.utils.DiffusionPrepareBatch` does (from
    the global torch RNG, so ``set_determinism`` seeds it) and returns ``(images, target, (), {"noise", "timesteps"})``
    where the target follows the prediction type (see :func:`diffusion_target`).

    Args:
        scheduler: the training noise scheduler; gives ``num_train_timesteps`` and, by default, the prediction type.
        prediction_type: ``"epsilon"``, ``"sample"`` (x0, as DM-FNet) or ``"v_prediction"``; default
            ``scheduler.prediction_type``, which keeps training and sampling consistent.
        condition_name: passed to :class:`~monai.engines.utils.DiffusionPrepareBatch`.

    Raises:
        ValueError: unknown ``prediction_type``.
    """

    def __init__(self, scheduler: Scheduler, prediction_type: str | None = None, condition_name: str | None = None):
        super().__init__(num_train_timesteps=int(scheduler.num_train_timesteps), condition_name=condition_name)
        prediction_type = prediction_type or scheduler.prediction_type
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"{type(self).__name__}: prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}"
            )
        self.scheduler = scheduler
        self.prediction_type = prediction_type

    def get_target(self, images: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The clean images, the noise or the velocity, per ``prediction_type``."""
        return diffusion_target(self.prediction_type, images, noise, timesteps, self.scheduler)

    def __call__(self, batchdata, device=None, non_blocking: bool = False, **kwargs):
        """As :class:`~monai.engines.utils.DiffusionPrepareBatch`, with plain tensors (a ``MetaTensor`` batch would
        carry its metadata through every network operation, which is slow)."""
        images, target, args, infer_kwargs = super().__call__(batchdata, device, non_blocking, **kwargs)
        plain = {k: v.as_tensor() if isinstance(v, MetaTensor) else v for k, v in infer_kwargs.items()}
        as_plain = lambda x: x.as_tensor() if isinstance(x, MetaTensor) else x  # noqa: E731
        return as_plain(images), as_plain(target), args, plain


class DiffusionReconstructionInferer(Inferer):
    """Noise clean images at fixed timesteps and return the network's clean-image estimates (Stage I validation).

    The noise comes from a generator re-seeded with ``seed`` at every call, so validation is repeatable: the i-th
    image of a batch always gets the same noise.

    Args:
        scheduler: the noise scheduler used in training.
        timesteps: the timesteps to evaluate, e.g. ``(5, 10, 20, 100, 500)``.
        prediction_type: default ``scheduler.prediction_type``.
        seed: noise seed.
        clip: clamp the estimates to ``[-1, 1]``.

    Raises:
        ValueError: empty timesteps or timesteps outside ``[0, num_train_timesteps)``.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        timesteps: Sequence[int] = (5, 10, 20, 100, 500),
        prediction_type: str | None = None,
        seed: int = 0,
        clip: bool = True,
    ) -> None:
        super().__init__()
        num_train = int(scheduler.num_train_timesteps)
        self.timesteps = tuple(int(t) for t in timesteps)
        if not self.timesteps or any(not 0 <= t < num_train for t in self.timesteps):
            raise ValueError(
                f"{type(self).__name__}: timesteps must be non-empty and within [0, {num_train}), got {self.timesteps}"
            )
        self.scheduler = scheduler
        self.prediction_type = prediction_type or scheduler.prediction_type
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"{type(self).__name__}: unknown prediction_type {self.prediction_type!r}")
        self.seed = int(seed)
        self.clip = clip

    def add_noise(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise every image at every timestep.

        Args:
            inputs: clean images ``(B, 1, *spatial)`` in ``[-1, 1]``.

        Returns:
            ``(noisy, timesteps)``: ``(B * T, 1, *spatial)`` (image-major: image 0 at every timestep, then image 1...)
            and ``(B * T,)``.
        """
        if inputs.shape[1] != 1:
            raise ValueError(f"{type(self).__name__}: expected single-channel images (B, 1, *spatial)")
        n_t = len(self.timesteps)
        clean = inputs.repeat_interleave(n_t, dim=0)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn(clean.shape, generator=gen, dtype=torch.float32).to(clean)
        t = torch.tensor(self.timesteps, device=inputs.device, dtype=torch.long).repeat(inputs.shape[0])
        return self.scheduler.add_noise(clean, noise, t), t

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self, inputs: torch.Tensor, network: nn.Module, *args, **kwargs
    ) -> torch.Tensor:
        """
        Args:
            inputs: clean images ``(B, 1, *spatial)`` in ``[-1, 1]``.
            network: the diffusion UNet.

        Returns:
            the clean-image estimates ``(B, T, *spatial)``, channel ``k`` for ``timesteps[k]``.
        """
        noisy, t = self.add_noise(inputs)
        x0 = predict_x0(network(noisy, t), noisy, t, self.scheduler, self.prediction_type)
        if self.clip:
            x0 = x0.clamp(-1.0, 1.0)
        return x0.reshape(inputs.shape[0], len(self.timesteps), *inputs.shape[2:])
