"""Multi-timestep decoder features of a frozen diffusion-trained UNet (the Stage I → Stage II interface).

Following DM-FNet (IEEE Transactions on Multimedia, 2025; github.com/HeDan-11/DM-FNet), every source image is noised
to a few small timesteps, the Stage I :class:`monai.networks.nets.DiffusionModelUNet` is run on the noisy images, and
the activations of its decoder are kept as multi-scale features for the fusion head. MONAI's UNet returns only its output, so the features are read through
forward hooks on ``up_blocks[i]`` (or a sub-module of it) and ``middle_block``; the network file is not forked.

Unlike DM-FNet, the noise is drawn from a seeded generator, so the same input always gives the same features.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import Scheduler
from torch import nn

from mmif.errors import InputError

__all__ = ["DiffusionFeatureExtractor", "load_stage1_weights", "MIDDLE"]

MIDDLE = "middle"
"""The name of the UNet's middle block in ``feature_levels`` (its output, at the coarsest resolution)."""

# keys under which a training checkpoint (MONAI CheckpointSaver ``save_dict``) may hold the network weights
_CHECKPOINT_NETWORK_KEYS = ("network", "model", "state_dict")


def load_stage1_weights(unet: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load Stage I weights into ``unet`` (in place) and return it.

    Accepts a plain ``state_dict`` (e.g. the bundle's ``models/model.pt``) or a training checkpoint written by MONAI's
    ``CheckpointSaver`` whose ``save_dict`` holds the network under ``"network"`` (``"model"`` and ``"state_dict"`` are
    accepted too). Loading uses ``torch.load(weights_only=True)``.

    Args:
        unet: the network to fill, usually a :class:`~monai.networks.nets.DiffusionModelUNet`.
        path: the checkpoint file.
        strict: passed to :meth:`torch.nn.Module.load_state_dict`.

    Raises:
        InputError: when the file is missing, unreadable, or does not hold weights matching ``unet``.
    """
    if not os.path.isfile(path):
        raise InputError(path, "Stage I checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        raise InputError(path, f"cannot read the Stage I checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict):
        raise InputError(path, f"expected a state_dict or a checkpoint dict, found {type(ckpt).__name__}")
    for key in _CHECKPOINT_NETWORK_KEYS:
        if isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    try:
        unet.load_state_dict(ckpt, strict=strict)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise InputError(path, f"weights do not match the Stage I network configuration ({first})") from e
    return unet


class _FeaturesCaptured(Exception):
    """Raised by the last forward hook to skip the rest of the UNet once every feature is captured."""


def _level_modules(unet: DiffusionModelUNet, levels: Sequence[int | str], layer: str) -> list[nn.Module]:
    """The sub-modules whose outputs are the features, in the order of ``levels``."""
    modules = []
    for level in levels:
        if level == MIDDLE:
            modules.append(unet.middle_block)
        else:
            block = unet.up_blocks[level]
            modules.append(block.get_submodule(layer) if layer else block)
    return modules


class DiffusionFeatureExtractor(nn.Module):
    """Multi-timestep, multi-scale decoder features of a frozen diffusion UNet (DM-FNet Stage I features).

    Each of the ``M`` sources of a sample is scaled to ``[-1, 1]``, noised to every timestep in ``timesteps`` with
    the scheduler's forward process (``scheduler.add_noise``) and seeded Gaussian noise, and the frozen UNet runs once,
    without gradients, on the stacked batch of ``B * M * T`` noisy images. Every sample and every source gets the same
    noise field (one seeded draw per timestep and image size), so a sample's features depend neither on the other
    samples of its batch nor on the order of its sources: fusing an image alone, in a batch or in a sliding-window
    batch gives the same result. Forward hooks collect the selected decoder
    activations; the UNet stops as soon as the last one is captured (its later layers are not computed).

    Decoder level ``i`` is ``unet.up_blocks[i]``: level 0 is the coarsest (it works at the resolution of the deepest
    encoder level), level ``L - 1`` the finest (full resolution). With the default ``layer="resnets.0"`` the feature is
    the first ResBlock output of each decoder level, as in DM-FNet, so level ``i`` has ``channels[L - 1 - i]``
    channels and stride ``2 ** (L - 1 - i)``. ``"middle"`` selects the middle block output (stride ``2 ** (L - 1)``).

    Inputs whose spatial size is not a multiple of ``2 ** (L - 1)`` are padded at the end of each axis
    (``padding_mode``) and the features are cropped back to ``ceil(size / stride)``.

    Args:
        unet: the Stage I network (``in_channels == out_channels == 1``); it is frozen (``requires_grad_(False)``)
            and kept in eval mode, including when the extractor is put in train mode.
        scheduler: the Stage I noise scheduler (e.g. :class:`~monai.networks.schedulers.DDPMScheduler`), used for
            ``add_noise``; its ``num_train_timesteps`` bounds ``timesteps``.
        timesteps: the noise levels, each in ``[0, num_train_timesteps)``. DM-FNet uses ``(5, 10, 20)``.
        feature_levels: decoder levels to return (ints in ``[0, L)``, negative ints count from the finest, and/or
            ``"middle"``), returned sorted coarsest to finest. ``None`` means every decoder level.
        layer: the sub-module of ``up_blocks[i]`` whose output is the feature, as a dotted name: ``"resnets.0"``
            (default, before any attention or upsampling), ``"resnets.1"``..., or ``""`` for the whole block (its
            output is upsampled, so its stride is half the level's).
        input_range: the value range of the input images, mapped linearly to ``[-1, 1]`` (the range the UNet was
            trained on). The default ``(0, 1)`` matches the mmif sample convention.
        seed: seed of the noise generator, re-seeded at every call.
        padding_mode: ``torch.nn.functional.pad`` mode used to reach the size multiple (``"replicate"``,
            ``"reflect"``, ``"constant"``).

    Raises:
        ValueError: for a UNet that is not single-channel, timesteps outside the scheduler range, unknown levels or
            layer, or a degenerate ``input_range``.
    """

    def __init__(
        self,
        unet: DiffusionModelUNet,
        scheduler: Scheduler,
        timesteps: Sequence[int] = (5, 10, 20),
        feature_levels: Sequence[int | str] | None = None,
        layer: str = "resnets.0",
        input_range: Sequence[float] = (0.0, 1.0),
        seed: int = 0,
        padding_mode: str = "replicate",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(unet, DiffusionModelUNet):
            raise ValueError(f"{name} expects a monai DiffusionModelUNet, got {type(unet).__name__}.")
        if unet.in_channels != 1 or unet.out_channels != 1:
            raise ValueError(f"{name} expects a single-channel UNet (in/out channels 1), got {unet.in_channels}.")
        num_train = int(scheduler.num_train_timesteps)
        timesteps = tuple(int(t) for t in timesteps)
        if not timesteps or any(t < 0 or t >= num_train for t in timesteps):
            raise ValueError(f"{name}: timesteps must be non-empty and within [0, {num_train}), got {timesteps}.")
        if len(input_range) != 2 or not float(input_range[1]) > float(input_range[0]):
            raise ValueError(f"{name}: input_range must be (low, high) with high > low, got {input_range}.")
        if padding_mode not in ("replicate", "reflect", "constant", "circular"):
            raise ValueError(f"{name}: unknown padding_mode {padding_mode!r}.")
        num_levels = len(unet.up_blocks)
        self.levels = self._normalise_levels(feature_levels, num_levels)
        try:
            modules = _level_modules(unet, self.levels, layer)
        except AttributeError as e:
            raise ValueError(f"{name}: up_blocks have no sub-module {layer!r}.") from e

        self.unet = unet.eval().requires_grad_(False)
        self.scheduler = scheduler
        self.timesteps = timesteps
        self.layer = layer
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.seed = int(seed)
        self.padding_mode = padding_mode
        self.spatial_dims = unet.conv_in.conv.weight.ndim - 2
        self.size_multiple = 2 ** (num_levels - 1)
        self._modules_to_hook = modules
        self._captured: list[torch.Tensor | None] = [None] * len(modules)
        self.feature_channels, self.feature_strides = self._probe_shapes()

    @staticmethod
    def _normalise_levels(feature_levels: Sequence[int | str] | None, num_levels: int) -> tuple[int | str, ...]:
        if feature_levels is None:
            return tuple(range(num_levels))
        levels: list[int | str] = []
        for level in feature_levels:
            if level == MIDDLE:
                levels.append(MIDDLE)
            elif isinstance(level, int) and not isinstance(level, bool) and -num_levels <= level < num_levels:
                levels.append(level % num_levels)
            else:
                raise ValueError(
                    f"DiffusionFeatureExtractor: feature level {level!r} is not 'middle' or an int in "
                    f"[-{num_levels}, {num_levels})."
                )
        if len(set(levels)) != len(levels) or not levels:
            raise ValueError(f"DiffusionFeatureExtractor: feature_levels must be distinct and non-empty: {levels}.")
        # coarsest first: the middle block, then decoder levels in order
        return tuple(sorted(levels, key=lambda v: -1 if v == MIDDLE else v))

    def _make_hook(self, index: int):
        def hook(module: nn.Module, args, output) -> None:
            self._captured[index] = output
            if all(c is not None for c in self._captured):
                raise _FeaturesCaptured  # the remaining decoder layers and the output block are not needed

        return hook

    def train(self, mode: bool = True) -> DiffusionFeatureExtractor:
        """Set train/eval mode for any trainable children; the frozen UNet always stays in eval mode."""
        super().train(mode)
        self.unet.eval()
        return self

    def _run_unet(self, x: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
        # hooks live only for this call, so the same UNet object still works normally elsewhere (e.g. for sampling)
        self._captured = [None] * len(self._modules_to_hook)
        handles = [m.register_forward_hook(self._make_hook(i)) for i, m in enumerate(self._modules_to_hook)]
        try:
            try:
                self.unet(x, t)
            except _FeaturesCaptured:
                pass
            return list(self._captured)  # type: ignore[arg-type]
        finally:
            for handle in handles:
                handle.remove()
            self._captured = [None] * len(self._modules_to_hook)

    @torch.no_grad()
    def _probe_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Channels and strides of each feature, from one tiny forward pass."""
        param = next(self.unet.parameters())
        size = 2 * self.size_multiple
        x = torch.zeros((1, 1) + (size,) * self.spatial_dims, device=param.device, dtype=param.dtype)
        feats = self._run_unet(x, torch.zeros(1, dtype=torch.long, device=param.device))
        return tuple(f.shape[1] for f in feats), tuple(size // f.shape[-1] for f in feats)

    def _noise(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """One seeded draw ``(1, 1, T, *spatial)``, the same for every sample and source, expanded to ``shape``."""
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn((1, 1, *shape[2:]), generator=generator, dtype=torch.float32)
        return noise.to(device=like.device, dtype=like.dtype).expand(shape)

    @torch.no_grad()
    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Extract the features.

        Args:
            image: the sources, ``(B, M, H, W[, D])`` with values in ``input_range``.
            noise: optional Gaussian noise ``(B, M, T, H, W[, D])`` to use instead of the seeded draw.

        Returns:
            one tensor per selected level, coarsest to finest, shaped ``(B, M, T, C_l, H_l, W_l[, D_l])`` with
            ``C_l = feature_channels[l]`` and ``H_l = ceil(H / feature_strides[l])``.

        Raises:
            ValueError: for an input with the wrong number of dimensions or a ``noise`` of the wrong shape.
        """
        name = type(self).__name__
        if isinstance(image, MetaTensor):
            image = image.as_tensor()
        if image.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{name}: expected an input (B, M, *spatial) with {self.spatial_dims} spatial dims, "
                f"got {tuple(image.shape)}."
            )
        b, m, *spatial = image.shape
        n_t = len(self.timesteps)
        shape = (b, m, n_t, *spatial)
        if noise is None:
            noise = self._noise(shape, image)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"{name}: noise must have shape {shape}, got {tuple(noise.shape)}.")
        low, high = self.input_range
        x0 = (image.float() - low) / (high - low) * 2.0 - 1.0
        x0 = x0.unsqueeze(2).expand(shape).reshape(b * m * n_t, 1, *spatial)
        t = torch.tensor(self.timesteps, device=image.device, dtype=torch.long).repeat(b * m)
        noisy = self.scheduler.add_noise(x0, noise.reshape(x0.shape).to(x0), t)

        pad = [(-s) % self.size_multiple for s in spatial]
        if any(pad):
            flat_pad = [p for amount in reversed(pad) for p in (0, amount)]
            noisy = F.pad(noisy, flat_pad, mode=self.padding_mode)
        feats = self._run_unet(noisy, t)

        out = []
        for feat, stride in zip(feats, self.feature_strides):
            crop = tuple(slice(0, -(-s // stride)) for s in spatial)
            feat = feat[(Ellipsis, *crop)]
            out.append(feat.reshape(b, m, n_t, *feat.shape[1:]))
        return out
