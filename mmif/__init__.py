"""mmif: multimodal medical image fusion on MONAI (MRI with CT, PET and SPECT; 2D and 3D)."""

from __future__ import annotations

from mmif.errors import InputError

__all__ = ["InputError", "__version__"]
__version__ = "0.1.0"
