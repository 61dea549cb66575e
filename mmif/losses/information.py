"""Information term of the fusion loss: how much of each source's histogram information the fused image keeps."""

from __future__ import annotations

import torch

from monai.losses import GlobalMutualInformationLoss
from monai.utils import LossReduction

from mmif.losses.base import FusionTermLoss

__all__ = ["InformationLoss"]


class InformationLoss(FusionTermLoss):
    """``1 - mean_m MI(F, S_m) / H(S_m)``: the share of each source's entropy that the fused image does not explain.

    The mutual information ``MI(F, S_m)`` of the fused image with source ``m`` is MONAI's differentiable
    :class:`monai.losses.GlobalMutualInformationLoss` (Gaussian Parzen windows over the whole image, one value per
    sample); ``H(S_m) = MI(S_m, S_m)`` under the same windows normalises it, so every source counts the same however
    much texture it has and the term lies in about [0, 1]: 0 when the fused image determines every source, 1 when it
    says nothing about any of them. This is the quantity the MI fusion metric scores (there with 256 hard bins on the
    8-bit image), so a model trained with it learns the departures from a selection rule that keep the sources'
    information rather than only their edges.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        num_bins: Parzen bins over [0, 1] (values outside are clamped, as in MONAI).
        sigma_ratio: Parzen window width relative to the bin spacing.
        reduction: ``"mean"``/``"sum"`` over the batch or ``"none"`` for ``(B,)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        num_bins: int = 32,
        sigma_ratio: float = 0.5,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(spatial_dims, reduction)
        if num_bins < 2 or sigma_ratio <= 0:
            raise ValueError(
                f"{type(self).__name__}: need num_bins >= 2 and sigma_ratio > 0, got {num_bins}, {sigma_ratio}."
            )
        self.mutual_information = GlobalMutualInformationLoss(
            kernel_type="gaussian", num_bins=num_bins, sigma_ratio=sigma_ratio, reduction=LossReduction.NONE
        )

    def per_sample(self, fused: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        shares = []
        for m in range(sources.shape[1]):
            source = sources[:, m : m + 1]
            kept = -self.mutual_information(fused, source)
            with torch.no_grad():
                entropy = -self.mutual_information(source, source)
            shares.append(kept / entropy.clamp_min(1e-6))
        return 1.0 - torch.stack(shares, dim=1).mean(dim=1)
