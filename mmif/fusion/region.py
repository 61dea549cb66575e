"""Region rules: choose a source per region by local energy, and the rule the learned region-detail head starts from.

- ``region``: at each voxel the source with the largest local root-mean-square over a 7×7[×7] window (the "larger
  local energy" selection of the fusion literature): a decision map that follows regions, not pixels;
- ``region_detail``: that selection plus the detail layers (``s - G * s``, Gaussian sigma 3) of the sources not
  selected wherever their detail is stronger than the selected source's — exactly what a new, untrained
  :class:`~mmif.networks.layered_head.RegionDetailHead` computes, reported beside the trained head so that a user sees
  what training added to the rule.
"""

from __future__ import annotations

import torch

from mmif.fusion.base import FusionMethod, register_fusion_method

__all__ = ["RegionEnergyFusion", "RegionDetailFusion"]


@register_fusion_method("region")
class RegionEnergyFusion(FusionMethod):
    """Per voxel the source with the largest local RMS over a ``window``-wide box (ties split evenly).

    Args:
        window: odd box side in voxels.
    """

    def __init__(self, window: int = 7) -> None:
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"{type(self).__name__}: window must be a positive odd number, got {window}.")
        self.window = window

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        from mmif.networks.layered_head import local_rms

        energy = local_rms(image, self.window)
        chosen = (energy == energy.amax(dim=1, keepdim=True)).to(image.dtype)
        return (chosen * image).sum(dim=1, keepdim=True) / chosen.sum(dim=1, keepdim=True)


@register_fusion_method("region_detail")
class RegionDetailFusion(FusionMethod):
    """The untrained :class:`~mmif.networks.layered_head.RegionDetailHead`: region selection plus detail transfer.

    Args:
        kwargs: the head's rule parameters (``detail_sigma``, ``energy_window``, ``initial_gain``,
            ``gain_prior_weight``).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__()
        from mmif.networks.layered_head import RegionDetailHead

        self.heads = torch.nn.ModuleDict({str(d): RegionDetailHead(d, 1, **kwargs).eval() for d in (2, 3)})

    def fuse(self, image: torch.Tensor) -> torch.Tensor:
        # the head's convolutions start at zero, so its features do not matter: give it zeros
        b, m, *spatial = image.shape
        with torch.no_grad():
            return self.heads[str(self.spatial_dims(image))](image.new_zeros(b, 1, *spatial), image.new_zeros(b, m, 1, *spatial), image)
