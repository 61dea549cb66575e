"""Edge terms of the fusion loss: keep the MRI's edges where a functional source outshines it (anatomy), and every
source's edges everywhere (a differentiable Q^{AB/F}).

A differentiable surrogate of :func:`mmif.metrics.anatomy`. With ``A`` the first (anatomical) source, ``B_m`` the
others and ``G`` a Gaussian low-pass, the soft region where a functional source dominates is

.. math::

    \\tilde M = \\max_m\\; \\sigma\\big(k (G{*}B_m - G{*}A - \\delta)\\big)\\, \\sigma\\big(k (G{*}B_m - \\phi)\\big)

(``delta`` = 10, ``phi`` = 20 grey levels and ``1/k`` = 2 grey levels, on [0, 1] images; values below 0.01 are set
to 0), and the term is one minus
the ``|grad A|``-weighted mean over ``M~`` of the edge agreement of ``F`` with ``A``:

.. math::

    q = \\frac{2 |\\nabla A| |\\nabla F|}{|\\nabla A|^2 + |\\nabla F|^2}
        \\cdot \\frac{|\\nabla A \\cdot \\nabla F|}{|\\nabla A| |\\nabla F|}

(strength ratio times orientation agreement, as Q^{AF} measures them; Sobel gradients). A sample without such a
region contributes 0.
"""

from __future__ import annotations

import math

import torch

from monai.utils import LossReduction

from mmif.losses.base import FusionTermLoss
from mmif.losses.filters import gaussian_smooth, sobel_components

__all__ = ["AnatomyLoss", "EdgeTransferLoss", "edge_agreement"]

_EPS = 1e-8
#: soft-region values below this are 0: voxels far outside every function-dominant region carry no weight at all
_REGION_CUT = 1e-2


class AnatomyLoss(FusionTermLoss):
    """``1 -`` the MRI's edge agreement in the fused image where a functional source outshines the MRI (see module).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        sigma: Gaussian sigma (voxels) of the low-pass that finds the function-dominant region.
        margin: how much brighter (on [0, 1]) the blurred functional source must be than the blurred MRI.
        floor: how bright (on [0, 1]) the blurred functional source must be.
        softness: the width (on [0, 1]) of the soft edges of the region.
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        sigma: float = 4.0,
        margin: float = 10.0 / 255.0,
        floor: float = 20.0 / 255.0,
        softness: float = 2.0 / 255.0,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(spatial_dims, reduction)
        if not (sigma > 0 and softness > 0):
            raise ValueError(f"{type(self).__name__}: sigma and softness must be positive, got {sigma}, {softness}.")
        self.sigma, self.margin, self.floor, self.softness = float(sigma), float(margin), float(floor), float(softness)

    def function_region(self, sources: torch.Tensor) -> torch.Tensor:
        """The soft region ``M~`` (B, 1, *spatial) in [0, 1] where a functional source outshines the first source."""
        with torch.no_grad():
            size = 2 * math.ceil(3.0 * self.sigma) + 1
            low = gaussian_smooth(sources, size, self.sigma)
            anatomical, functional = low[:, :1], low[:, 1:]
            region = torch.sigmoid((functional - anatomical - self.margin) / self.softness)
            region = region * torch.sigmoid((functional - self.floor) / self.softness)
            region = region.amax(dim=1, keepdim=True)
            return torch.where(region > _REGION_CUT, region, torch.zeros_like(region))

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        region = self.function_region(sources)[:, 0]
        agreement, weight = edge_agreement(fused, sources[:, :1])
        return 1.0 - weighted_mean(agreement[:, 0], weight[:, 0] * region)


class EdgeTransferLoss(FusionTermLoss):
    """``1 -`` the edge agreement of the fused image with every source, weighted by the sources' edge strength: a
    differentiable surrogate of Q^{AB/F} (the same ``q`` as :class:`AnatomyLoss`, over the whole image).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        agreement, weight = edge_agreement(fused, sources)
        return 1.0 - weighted_mean(agreement.flatten(1, 2), weight.flatten(1, 2))


def edge_agreement(fused: torch.Tensor, sources: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per voxel ``q`` of ``fused`` (B, 1, *S) with each source (B, M, *S) and the sources' Sobel magnitudes, both
    (B, M, *S): the strength ratio ``2 |g_S| |g_F| / (|g_S|^2 + |g_F|^2)`` times ``|cos|`` of the gradients' angle."""
    grad_s = sobel_components(sources)  # (B, M, D, *S)
    grad_f = sobel_components(fused)  # (B, 1, D, *S)
    mag_s = grad_s.square().sum(dim=2).sqrt()
    mag_f = (grad_f.square().sum(dim=2) + _EPS).sqrt()
    strength = 2.0 * mag_s * mag_f / (mag_s.square() + mag_f.square() + _EPS)
    alignment = (grad_s * grad_f).sum(dim=2).abs() / (mag_s * mag_f + _EPS)
    return strength * alignment, mag_s


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per sample ``sum(values * weight) / sum(weight)`` over all but the batch axis; 1 where the weight is all 0 (so
    that ``1 -`` it, the loss, is 0 there)."""
    values, weight = values.flatten(1), weight.flatten(1)
    total = weight.sum(dim=1)
    mean = (values * weight).sum(dim=1) / total.clamp_min(_EPS)
    return torch.where(total > _EPS, mean, torch.ones_like(mean))
