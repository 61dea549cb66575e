"""Inferers: how a fusion model is called on whole images or window by window, and fusing whole folders."""

from __future__ import annotations

from mmif.inferers.folder import SaveFusedd, SaveFusedD, SaveFusedDict, find_fusion_samples, fused_output_path
from mmif.inferers.fusion import FusionInferer, pad_to_multiple

__all__ = [
    "FusionInferer",
    "pad_to_multiple",
    "find_fusion_samples",
    "fused_output_path",
    "SaveFusedd",
    "SaveFusedD",
    "SaveFusedDict",
]
