"""Colour-aware application of a fusion method to samples and batches in the mmif sample format.

A fusion method sees only luminance. Here the sources' Y channels (``"image"``) are fused and the fused Y is
recombined with the colour source's chroma (``"chroma"``: Cb, Cr) into RGB through
:func:`mmif.transforms.color.ycbcr_to_rgb` (BT.601 full range, clipped to the RGB gamut).

Grey samples (``is_color`` false) get ``"fused_rgb"`` = the fused Y replicated on 3 channels, exactly; so
``"fused_rgb"`` is always a ``(B, 3, *spatial)`` tensor and a batch may mix colour and grey samples. Writers that keep
grey outputs grey use ``"fused"`` where ``"is_color"`` is false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from monai.networks import eval_mode

from mmif.fusion.base import check_fusion_input
from mmif.transforms.color import ycbcr_to_rgb

__all__ = ["fuse_batch", "fuse_sample", "recombine_color"]


def _is_color_flags(value: Any, batch_size: int) -> torch.Tensor:
    """``is_color`` as a ``(B,)`` bool tensor, from a bool, a sequence of bools or a tensor (as collated)."""
    if value is None:
        return torch.zeros(batch_size, dtype=torch.bool)
    flags = torch.as_tensor(value, dtype=torch.bool).reshape(-1).cpu()
    if flags.numel() == 1:
        flags = flags.expand(batch_size)
    if flags.numel() != batch_size:
        raise ValueError(f"fuse_batch: 'is_color' has {flags.numel()} entries for a batch of {batch_size}")
    return flags


def recombine_color(fused: torch.Tensor, chroma: torch.Tensor | None, is_color: torch.Tensor) -> torch.Tensor:
    """RGB from a fused luminance and the colour source's chroma.

    Args:
        fused: ``(B, 1, *spatial)`` fused Y in ``[0, 1]``.
        chroma: ``(B, 2, *spatial)`` Cb, Cr in ``[0, 1]``, or ``None`` (all samples grey).
        is_color: ``(B,)`` bool; grey samples get ``fused`` replicated on 3 channels.

    Returns:
        ``(B, 3, *spatial)`` RGB in ``[0, 1]``.
    """
    grey = fused.expand(-1, 3, *fused.shape[2:])
    if chroma is None or not bool(is_color.any()):
        return grey.clone()
    if tuple(chroma.shape) != (fused.shape[0], 2, *fused.shape[2:]):
        raise ValueError(
            f"fuse_batch: 'chroma' must have shape {(fused.shape[0], 2, *fused.shape[2:])}, got {tuple(chroma.shape)}"
        )
    chroma = torch.as_tensor(chroma).to(device=fused.device, dtype=fused.dtype)
    rgb = ycbcr_to_rgb(torch.cat([fused, chroma], dim=1), channel_dim=1)
    select = is_color.to(fused.device).reshape(-1, *[1] * (fused.ndim - 1))
    return torch.where(select, rgb, grey)


def fuse_batch(
    method: Callable[[torch.Tensor], torch.Tensor], batch: Mapping[str, Any], device: str | torch.device | None = None
) -> dict[str, Any]:
    """Fuse a collated batch and recombine colour.

    The method runs under :func:`monai.networks.eval_mode` (no gradients, eval mode restored afterwards).

    Args:
        method: a fusion method, ``(B, M, *spatial) -> (B, 1, *spatial)``.
        batch: ``{"image": (B, M, *spatial), "chroma": (B, 2, *spatial) (optional), "is_color": bool or (B,)
            (optional, default False), ...}`` as produced by the mmif loading transforms and a MONAI DataLoader.
        device: where to compute (default: where ``batch["image"]`` is).

    Returns:
        ``{"fused": (B, 1, *spatial) Y in [0, 1], "fused_rgb": (B, 3, *spatial) RGB in [0, 1], "is_color": (B,) bool}``
        as plain tensors on ``device``; grey samples' ``fused_rgb`` is ``fused`` replicated.

    Raises:
        ValueError: a missing ``"image"``, a badly shaped input or chroma, or a method output that is not
            ``(B, 1, *spatial)``.
    """
    if "image" not in batch:
        raise ValueError(f"fuse_batch: the batch has no 'image' (keys: {', '.join(map(str, batch))})")
    name = type(method).__name__
    image = check_fusion_input(batch["image"], name)
    if device is not None:
        image = image.to(device)
    is_color = _is_color_flags(batch.get("is_color"), image.shape[0])
    chroma = batch.get("chroma")
    if chroma is not None:
        chroma = chroma.as_tensor() if hasattr(chroma, "as_tensor") else torch.as_tensor(chroma)
    with eval_mode(method):
        fused = method(image)
        fused = fused.as_tensor() if hasattr(fused, "as_tensor") else fused
        expected = (image.shape[0], 1, *image.shape[2:])
        if tuple(fused.shape) != expected:
            raise ValueError(f"fuse_batch: {name} returned shape {tuple(fused.shape)}, expected {expected}")
        fused = fused.clamp(0.0, 1.0)
        rgb = recombine_color(fused, chroma, is_color)
    return {"fused": fused, "fused_rgb": rgb, "is_color": is_color}


def fuse_sample(
    method: Callable[[torch.Tensor], torch.Tensor], sample: Mapping[str, Any], device: str | torch.device | None = None
) -> dict[str, Any]:
    """Fuse one (uncollated) sample: ``"image"`` ``(M, *spatial)``, ``"chroma"`` ``(2, *spatial)``, ``"is_color"`` bool.

    Returns:
        ``{"fused": (1, *spatial), "fused_rgb": (3, *spatial), "is_color": bool}`` (see :func:`fuse_batch`).
    """
    if "image" not in sample:
        raise ValueError(f"fuse_sample: the sample has no 'image' (keys: {', '.join(map(str, sample))})")
    batch = {"image": sample["image"][None], "is_color": bool(sample.get("is_color", False))}
    if sample.get("chroma") is not None:
        batch["chroma"] = sample["chroma"][None]
    out = fuse_batch(method, batch, device=device)
    return {"fused": out["fused"][0], "fused_rgb": out["fused_rgb"][0], "is_color": bool(out["is_color"][0])}
