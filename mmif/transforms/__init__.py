"""MONAI array and dictionary transforms for multimodal image fusion.

- colour (:mod:`mmif.transforms.color`): BT.601 RGB <-> YCbCr, luminance/chroma split, colour recombination;
- intensity (:mod:`mmif.transforms.intensity`): modality-aware scaling to ``[0, 1]``;
- loading (:mod:`mmif.transforms.loading`): datalist entry -> stacked luminance + chroma sample;
- augmentation (:mod:`mmif.transforms.augmentation`): the same random crop/flip/rotation for every modality;
- selection (:mod:`mmif.transforms.selection`): one random source per sample (Stage I).
"""

from __future__ import annotations

from mmif.transforms.augmentation import (
    PairedAugmentationD,
    PairedAugmentationd,
    PairedAugmentationDict,
    paired_augmentation,
)
from mmif.transforms.color import (
    LUMA_WEIGHTS,
    RecombineColor,
    RecombineColorD,
    RecombineColord,
    RecombineColorDict,
    RGBToYCbCr,
    RGBToYCbCrD,
    RGBToYCbCrd,
    RGBToYCbCrDict,
    SplitLuminance,
    SplitLuminanceD,
    SplitLuminanced,
    SplitLuminanceDict,
    YCbCrToRGB,
    YCbCrToRGBD,
    YCbCrToRGBd,
    YCbCrToRGBDict,
    chroma_offset,
    is_color_image,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from mmif.transforms.intensity import (
    MODALITY_GROUPS,
    ModalityScaleIntensity,
    ModalityScaleIntensityD,
    ModalityScaleIntensityd,
    ModalityScaleIntensityDict,
    intensity_range,
    modality_group,
)
from mmif.transforms.loading import LoadFusionSourcesD, LoadFusionSourcesd, LoadFusionSourcesDict, modality_from_path
from mmif.transforms.selection import RandSelectSource, RandSelectSourceD, RandSelectSourced, RandSelectSourceDict

__all__ = [
    # colour
    "LUMA_WEIGHTS",
    "chroma_offset",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "is_color_image",
    "RGBToYCbCr",
    "RGBToYCbCrd",
    "RGBToYCbCrD",
    "RGBToYCbCrDict",
    "YCbCrToRGB",
    "YCbCrToRGBd",
    "YCbCrToRGBD",
    "YCbCrToRGBDict",
    "SplitLuminance",
    "SplitLuminanced",
    "SplitLuminanceD",
    "SplitLuminanceDict",
    "RecombineColor",
    "RecombineColord",
    "RecombineColorD",
    "RecombineColorDict",
    # intensity
    "MODALITY_GROUPS",
    "modality_group",
    "intensity_range",
    "ModalityScaleIntensity",
    "ModalityScaleIntensityd",
    "ModalityScaleIntensityD",
    "ModalityScaleIntensityDict",
    # loading
    "modality_from_path",
    "LoadFusionSourcesd",
    "LoadFusionSourcesD",
    "LoadFusionSourcesDict",
    # augmentation
    "paired_augmentation",
    "PairedAugmentationd",
    "PairedAugmentationD",
    "PairedAugmentationDict",
    # selection
    "RandSelectSource",
    "RandSelectSourced",
    "RandSelectSourceD",
    "RandSelectSourceDict",
]
