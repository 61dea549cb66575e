"""The fusion inferer: runs a fusion model (or any fusion method) on whole images or with a sliding window.

``FusionInferer`` calls ``network(image)`` on ``(B, M, *spatial)`` sources in [0, 1] and returns ``(B, 1, *spatial)``:

- whole images: the input is padded (edge values repeated) to a multiple of ``divisor`` (the Stage I UNet's total
  downsampling factor), fused, and cropped back;
- sliding window (``roi_size``): MONAI's :class:`~monai.inferers.SlidingWindowInferer` fuses windows of ``roi_size``
  (Gaussian blending, ``overlap``), so the network never sees more than one window per call (``sw_batch_size``
  windows) and memory is bounded by the window size. An input that fits in one window is fused whole, so the two modes
  agree exactly there.

With ``seed`` set, the call runs inside a forked RNG seeded with it, so methods that draw random numbers (the diffusion
noise of the feature extractor) give the same output for the same input every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import Inferer, SlidingWindowInferer
from monai.utils import ensure_tuple_rep

from mmif.fusion.base import check_fusion_input

__all__ = ["FusionInferer", "pad_to_multiple"]


def pad_to_multiple(image: torch.Tensor, divisor: int | Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad ``image`` ``(B, C, *spatial)`` at the end of each axis (edge values repeated) to multiples of ``divisor``.

    Returns:
        the padded image and the slices (over all dims) that crop a same-sized result back to ``spatial``.
    """
    spatial = image.shape[2:]
    div = ensure_tuple_rep(divisor, len(spatial))
    extra = [(-s) % int(d) for s, d in zip(spatial, div)]
    crop = (slice(None), slice(None), *(slice(0, s) for s in spatial))
    if not any(extra):
        return image, crop
    pad: list[int] = []
    for e in reversed(extra):  # F.pad wants the last dim first
        pad += [0, e]
    return F.pad(image, pad, mode="replicate"), crop


class FusionInferer(Inferer):
    """Fuse ``(B, M, *spatial)`` sources with a fusion model, whole or window by window (2D and 3D).

    Args:
        roi_size: sliding-window size per spatial dimension (one int for all), or ``None`` for whole images. Each size
            must be a multiple of ``divisor``.
        sw_batch_size: windows per network call.
        overlap: overlap fraction of neighbouring windows.
        mode: window blending, ``"gaussian"`` (default) or ``"constant"``.
        sigma_scale: the Gaussian window's standard deviation as a fraction of ``roi_size``.
        divisor: the spatial size the network needs a multiple of (``2 ** (levels - 1)`` for a UNet with ``levels``
            resolution levels); whole images are edge-padded to it.
        seed: seed of the random numbers drawn during the call (``None``: the global RNG is left alone).
        sw_device: where the windows are computed (default: the input's device).
        device: where the stitched output is kept (default: the input's device).

    Raises:
        ValueError: bad window arguments (the message names the class).
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int | None = None,
        sw_batch_size: int = 1,
        overlap: float = 0.25,
        mode: str = "gaussian",
        sigma_scale: float = 0.125,
        divisor: int | Sequence[int] = 1,
        seed: int | None = 0,
        sw_device: str | torch.device | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if sw_batch_size < 1:
            raise ValueError(f"{name}: sw_batch_size must be >= 1, got {sw_batch_size}.")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"{name}: overlap must be in [0, 1), got {overlap}.")
        if mode not in ("gaussian", "constant"):
            raise ValueError(f"{name}: mode must be 'gaussian' or 'constant', got {mode!r}.")
        if any(int(d) < 1 for d in ((divisor,) if isinstance(divisor, int) else divisor)):
            raise ValueError(f"{name}: divisor must be positive, got {divisor}.")
        self.divisor = divisor
        self.seed = seed
        # one int means the same size on every axis (resolved per input in _roi)
        if roi_size is None:
            self.roi_size: tuple[int, ...] | None = None
        elif isinstance(roi_size, int):
            self.roi_size = (int(roi_size),)
        else:
            self.roi_size = tuple(int(r) for r in roi_size)
        if self.roi_size is not None and any(r < 1 for r in self.roi_size):
            raise ValueError(f"{name}: roi_size must be positive, got {roi_size}.")
        self._window_args = {
            "sw_batch_size": sw_batch_size,
            "overlap": overlap,
            "mode": mode,
            "sigma_scale": sigma_scale,
            "padding_mode": "replicate",
            "sw_device": sw_device,
            "device": device,
        }

    def _roi(self, spatial_dims: int) -> tuple[int, ...] | None:
        if self.roi_size is None:
            return None
        roi = ensure_tuple_rep(self.roi_size[0], spatial_dims) if len(self.roi_size) == 1 else self.roi_size
        if len(roi) != spatial_dims:
            raise ValueError(f"{type(self).__name__}: roi_size {self.roi_size} does not fit {spatial_dims}D inputs.")
        div = ensure_tuple_rep(self.divisor, spatial_dims)
        if any(r % int(d) for r, d in zip(roi, div)):
            raise ValueError(
                f"{type(self).__name__}: roi_size {tuple(roi)} must be a multiple of the network's divisor "
                f"{tuple(div)}."
            )
        return tuple(roi)

    def _whole(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        padded, crop = pad_to_multiple(inputs, self.divisor)
        return network(padded, *args, **kwargs)[crop]

    def _run(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        roi = self._roi(inputs.ndim - 2)
        if roi is None or all(s <= r for s, r in zip(inputs.shape[2:], roi)):
            return self._whole(inputs, network, *args, **kwargs)
        # dims smaller than the window are edge-padded by the window inferer itself (padding_mode="replicate")
        window = SlidingWindowInferer(roi_size=roi, **self._window_args)
        return window(inputs, network, *args, **kwargs)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        """Fuse ``inputs``.

        Args:
            inputs: ``(B, M, H, W[, D])`` sources in [0, 1].
            network: a fusion model or method, ``(B, M, *spatial) -> (B, 1, *spatial)``.
            args: extra positional arguments for ``network``.
            kwargs: extra keyword arguments for ``network``.

        Returns:
            ``(B, 1, H, W[, D])`` fused image in [0, 1], on ``device`` (default: the input's device).
        """
        inputs = check_fusion_input(inputs, type(self).__name__)
        if self.seed is None:
            out = self._run(inputs, network, *args, **kwargs)
        else:
            devices = [inputs.device] if inputs.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                out = self._run(inputs, network, *args, **kwargs)
        return out.clamp(0.0, 1.0)
