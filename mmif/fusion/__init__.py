"""Fusion methods behind one interface: ``fused = method(image)``, ``(B, M, *spatial)`` -> ``(B, 1, *spatial)``.

Classical baselines (``average``, ``maxabs``, ``min``, ``pca``, ``laplacian``, ``dwt``, ``gff``) and the region
rules (``region``, ``region_detail``) are registered on import;
learned models register themselves with :func:`register_fusion_method` (``dmfnet`` lazily, from
:mod:`mmif.fusion.learned`). :func:`fuse_batch` fuses the Y channels of a
sample batch and recombines colour.
"""

from __future__ import annotations

from mmif.fusion.apply import fuse_batch, fuse_sample, recombine_color
from mmif.fusion.base import (
    FusionMethod,
    available_fusion_methods,
    check_fusion_input,
    get_fusion_method,
    register_fusion_method,
)
from mmif.fusion.classical import (
    AverageFusion,
    DWTFusion,
    LaplacianFusion,
    MaxAbsFusion,
    MinFusion,
    PCAFusion,
)
from mmif.fusion.guided import GuidedFilterFusion, guided_filter
from mmif.fusion.region import RegionDetailFusion, RegionEnergyFusion
from mmif.fusion.rules import FUSION_RULES

# the learned model, imported only when asked for by name (its module loads bundle configs and networks)
register_fusion_method("dmfnet", "mmif.fusion.learned:DMFNetFusion")

__all__ = [
    "FusionMethod",
    "register_fusion_method",
    "get_fusion_method",
    "available_fusion_methods",
    "check_fusion_input",
    "AverageFusion",
    "MaxAbsFusion",
    "MinFusion",
    "PCAFusion",
    "LaplacianFusion",
    "DWTFusion",
    "GuidedFilterFusion",
    "RegionEnergyFusion",
    "RegionDetailFusion",
    "guided_filter",
    "FUSION_RULES",
    "fuse_batch",
    "fuse_sample",
    "recombine_color",
]
