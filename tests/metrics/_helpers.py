"""Shared helpers of the metric tests: deterministic test images and one-thread module set-up."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["structured_image", "one_thread_module"]


def structured_image(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Smooth random texture plus an edge, integer grey levels 0..255 (float64), any 2D/3D shape."""
    rng = np.random.default_rng(seed)
    coarse = rng.random(tuple(max(2, s // 6) for s in shape))
    t = torch.from_numpy(coarse)[None, None]
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    smooth = torch.nn.functional.interpolate(t, size=shape, mode=mode, align_corners=True)[0, 0].numpy()
    grid = np.indices(shape)[0] / shape[0]
    img = 40 + 150 * smooth + 50 * (grid > 0.5) + rng.integers(0, 8, size=shape)
    return np.clip(np.round(img), 0, 255).astype(np.float64)


def one_thread_module():
    """``(setUpModule, tearDownModule)`` running a test module with one torch thread (2 shared cores, many agents)."""
    saved: list[int] = []

    def set_up() -> None:
        saved.append(torch.get_num_threads())
        torch.set_num_threads(1)

    def tear_down() -> None:
        torch.set_num_threads(saved.pop())

    return set_up, tear_down
