"""The Stage II fusion model: the frozen Stage I diffusion feature extractor followed by the trainable fusion head.

DM-FNet (IEEE Transactions on Multimedia, 2025; github.com/HeDan-11/DM-FNet) fuses the decoder features that a
diffusion-trained UNet (Stage I) produces at a few timesteps with a light head (Stage II). :class:`FusionModel` joins the two behind the fusion
interface of ``docs/conventions.md``::

    fused = model(image)   # (B, M, *spatial) in [0, 1] -> (B, 1, *spatial) in [0, 1]
    fused = model(image, features=features)   # the extractor's features of image given: only the head runs

The second form is how Stage II trains on cached features (:class:`mmif.engines.feature_cache.CachedFeatureDataset`,
``cache_features`` in the bundles' ``train_stage2.json``).

Checkpoints: the Stage I UNet is frozen and has its own checkpoint (the Stage I bundle's output, ``stage1_ckpt`` in the
bundle configs), so a Stage II checkpoint holds only the head: :meth:`FusionModel.checkpoint` returns
``{"head": head state_dict, "config": {...}}`` where ``config`` records what the head was trained against (spatial
dims, feature channels/strides, timesteps); :meth:`FusionModel.load_checkpoint` checks it and loads the head. The
architecture itself comes from the bundle config (``network_def``), as in the MONAI model zoo. A MONAI
``CheckpointSaver`` with ``save_dict={"model": "$@network.head"}`` writes a compatible file (a bare head state dict is
accepted too).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["FusionModel"]


def _accepts_image(head: nn.Module) -> bool:
    """Whether ``head.forward`` takes the source images as a second argument and uses them."""
    if hasattr(head, "uses_image"):
        return bool(head.uses_image)
    if hasattr(head, "image_skip"):
        return bool(head.image_skip)
    try:
        params = list(inspect.signature(head.forward).parameters)
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


class FusionModel(nn.Module):
    """Frozen Stage I feature extractor + trainable Stage II fusion head (DM-FNet), for 2D and 3D, any M >= 2.

    The extractor's parameters are frozen (``requires_grad=False``) and it stays in eval mode whatever
    :meth:`train` is called with, and runs without gradient tracking; only the head's parameters are trainable
    (:meth:`trainable_parameters`).

    Args:
        extractor: a module mapping ``(B, M, *spatial)`` in [0, 1] to a list of feature levels, coarsest to finest, each
            ``(B, M, T, C_l, *spatial_l)`` (:class:`mmif.networks.feature_extractor.DiffusionFeatureExtractor`).
        head: a module mapping ``(features)`` or ``(features, image)`` to ``(B, 1, *spatial)`` in [0, 1]
            (:class:`mmif.networks.fusion_net.DiffusionFeatureFusionNet`).
        pass_image: pass the source images to the head as a second argument; ``None`` decides from the head
            (its ``image_skip`` attribute, else its ``forward`` signature).

    Raises:
        ValueError: the extractor or head is not an ``nn.Module``, or their feature channels / timesteps disagree.
    """

    def __init__(self, extractor: nn.Module, head: nn.Module, pass_image: bool | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(extractor, nn.Module) or not isinstance(head, nn.Module):
            raise ValueError(f"{name}: extractor and head must be torch.nn.Module instances.")
        ext_channels = getattr(extractor, "feature_channels", None)
        head_channels = getattr(head, "feature_channels", None)
        if ext_channels is not None and head_channels is not None and tuple(ext_channels) != tuple(head_channels):
            raise ValueError(
                f"{name}: the head expects feature channels {tuple(head_channels)} but the extractor gives "
                f"{tuple(ext_channels)} (build the head with feature_channels=extractor.feature_channels)."
            )
        ext_t = getattr(extractor, "timesteps", None)
        head_t = getattr(head, "num_timesteps", None)
        if ext_t is not None and head_t is not None and len(tuple(ext_t)) != int(head_t):
            raise ValueError(f"{name}: the head expects {head_t} timesteps but the extractor uses {tuple(ext_t)}.")
        self.extractor = extractor
        self.head = head
        self.pass_image = _accepts_image(head) if pass_image is None else bool(pass_image)
        for p in self.extractor.parameters():
            p.requires_grad_(False)
        self.extractor.eval()

    def train(self, mode: bool = True) -> FusionModel:
        """Set the head's training mode; the frozen extractor always stays in eval mode."""
        super().train(mode)
        self.extractor.eval()
        return self

    def trainable_parameters(self):
        """The parameters to optimise: the head's (those with ``requires_grad``)."""
        return (p for p in self.head.parameters() if p.requires_grad)

    def extract(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Stage I features of ``image`` ``(B, M, *spatial)``: a list of ``(B, M, T, C_l, *spatial_l)``."""
        with torch.no_grad():
            return list(self.extractor(image))

    def forward(self, image: torch.Tensor, features: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Fuse the sources.

        Args:
            image: ``(B, M, H, W[, D])`` luminance of the sources in [0, 1]; the spatial size must suit the Stage I UNet
                (a multiple of its total downsampling factor; :class:`mmif.inferers.FusionInferer` pads for you).
            features: the extractor's features of ``image``, one ``(B, M, T, C_l, *spatial_l)`` per level (e.g. from
                :class:`mmif.engines.feature_cache.CachedFeatureDataset`); given, the extractor is not run. Features
                stored in another floating dtype (float16) are cast to ``image``'s.

        Returns:
            ``(B, 1, H, W[, D])`` fused luminance in [0, 1].

        Raises:
            ValueError: ``features`` has another number of levels than the extractor gives.
        """
        if features is None:
            features = self.extract(image)
        else:
            levels = getattr(self.extractor, "feature_channels", None)
            if levels is not None and len(features) != len(levels):
                raise ValueError(
                    f"{type(self).__name__}: got {len(features)} feature levels, the extractor gives {len(levels)}."
                )
            dtype = image.dtype if image.is_floating_point() else torch.float32
            features = [f if f.dtype == dtype else f.to(dtype) for f in features]
        return self.head(features, image) if self.pass_image else self.head(features)

    # checkpoints ------------------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """What the head was built against: ``spatial_dims``, ``feature_channels``, ``feature_strides``, ``timesteps``,
        ``num_timesteps`` (plain Python values, safe for ``torch.load(weights_only=True)``); unknown entries omitted."""
        out: dict[str, Any] = {}
        for key, owner in (
            ("spatial_dims", self.head),
            ("feature_channels", self.head),
            ("num_timesteps", self.head),
            ("feature_strides", self.extractor),
            ("timesteps", self.extractor),
        ):
            value = getattr(owner, key, None)
            if value is None:
                continue
            if isinstance(value, torch.Tensor):
                value = value.tolist()
            out[key] = list(value) if isinstance(value, (tuple, list)) else value
            if isinstance(out[key], list):
                out[key] = [int(v) if isinstance(v, (int, float)) and float(v).is_integer() else v for v in out[key]]
        return out

    def checkpoint(self) -> dict[str, Any]:
        """The Stage II checkpoint: ``{"head": head state_dict, "config": self.config()}``."""
        return {"head": self.head.state_dict(), "config": self.config()}

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write :meth:`checkpoint` to ``path`` atomically."""
        from mmif.io import atomic_write

        ckpt = self.checkpoint()
        atomic_write(path, lambda tmp: torch.save(ckpt, tmp))

    def load_checkpoint(self, checkpoint: str | os.PathLike | Mapping[str, Any], strict: bool = True) -> None:
        """Load the head from a Stage II checkpoint.

        Accepted forms: :meth:`checkpoint`'s ``{"head": ..., "config": ...}``, a MONAI ``CheckpointSaver`` file
        ``{"model": head state_dict, ...}`` (``save_dict={"model": "$@network.head"}``), or a bare head state dict.
        Files are read with ``weights_only=True``.

        Raises:
            FileNotFoundError: ``checkpoint`` is a path that does not exist.
            ValueError: the recorded config disagrees with this model, or the state dict does not fit the head.
        """
        name = type(self).__name__
        if not isinstance(checkpoint, Mapping):
            if not os.path.isfile(checkpoint):
                raise FileNotFoundError(f"{checkpoint}: Stage II checkpoint not found")
            checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if "head" in checkpoint and isinstance(checkpoint["head"], Mapping):
            state, recorded = checkpoint["head"], checkpoint.get("config") or {}
        elif "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
            state, recorded = checkpoint["model"], {}
        else:
            state, recorded = checkpoint, {}
        mine = self.config()
        for key, value in recorded.items():
            if key in mine and mine[key] != value:
                raise ValueError(f"{name}: checkpoint was trained with {key}={value}, this model has {mine[key]}.")
        # a checkpoint of the whole FusionModel: keep the head's entries
        if any(k.startswith("extractor.") for k in state):
            state = {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
        try:
            self.head.load_state_dict(state, strict=strict)
        except RuntimeError as e:
            raise ValueError(f"{name}: the checkpoint does not fit the fusion head: {str(e).splitlines()[0]}") from e
