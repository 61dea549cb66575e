"""mmif.losses: the hybrid fusion loss and its terms (2D and 3D)."""

from __future__ import annotations

from mmif.losses.anatomy import AnatomyLoss, EdgeTransferLoss
from mmif.losses.base import FusionTermLoss
from mmif.losses.color import ColorGamutLoss
from mmif.losses.contrast import ContrastLoss
from mmif.losses.fusion_loss import FusionLoss
from mmif.losses.gradient import GradientLoss
from mmif.losses.information import InformationLoss
from mmif.losses.intensity import IntensityLoss
from mmif.losses.structure import StructureLoss

__all__ = [
    "AnatomyLoss",
    "ColorGamutLoss",
    "ContrastLoss",
    "EdgeTransferLoss",
    "FusionLoss",
    "FusionTermLoss",
    "GradientLoss",
    "InformationLoss",
    "IntensityLoss",
    "StructureLoss",
]
