"""Generated fusion inputs shared by the fusion tests."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["random_sources", "textured_pair", "SHAPES"]

#: (spatial shape, label) for 2D and 3D, including sizes not divisible by 2 ** levels.
SHAPES = [((32, 40), "2d"), ((37, 29), "2d_odd"), ((16, 20, 12), "3d"), ((13, 17, 11), "3d_odd")]


def random_sources(shape, m: int = 2, b: int = 2, seed: int = 0) -> torch.Tensor:
    """``(b, m, *shape)`` smooth-ish random sources in ``[0, 1]`` (float32)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, m, *shape), generator=g)


def textured_pair(shape, strong: float = 0.3, weak: float = 0.03, seed: int = 0) -> torch.Tensor:
    """``(1, 2, *shape)``: two sources on the same flat 0.5 background; source 0 carries strong fine texture,
    source 1 a different, weak texture."""
    rng = np.random.default_rng(seed)
    t0 = rng.choice([-1.0, 1.0], size=shape)
    t1 = rng.choice([-1.0, 1.0], size=shape)
    a = 0.5 + strong * t0
    b = 0.5 + weak * t1
    return torch.from_numpy(np.stack([a, b])[None].astype(np.float32))
