"""Reading and writing source and fused images, with their geometry, through MONAI's readers.

2D raster images (PNG, JPEG, TIFF) are read in NumPy order, ``(C, H, W)`` (row-major, as PIL/OpenCV show them), not in
MONAI's default transposed PIL order. NIfTI volumes and DICOM series are read as ``(C, H, W, D)`` with their affine.
Every problem a user can cause (missing file, unreadable file, unsupported channel count, NaN/Inf) is an
:class:`mmif.errors.InputError` naming the file.

Writes are atomic: the data goes to a temporary file in the target folder, which is then renamed over the target.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import ITKReader, MetaTensor, NibabelReader, PILReader
from monai.transforms import LoadImage

from mmif.errors import InputError

__all__ = [
    "RASTER_SUFFIXES",
    "VOLUME_SUFFIXES",
    "is_raster",
    "is_volume",
    "image_suffix",
    "load_image",
    "save_image",
    "atomic_write",
    "to_uint8",
    "check_same_geometry",
]

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


def image_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix of ``path``, with ``.nii.gz`` kept whole (``""`` for a folder)."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def is_raster(path: str | os.PathLike) -> bool:
    return image_suffix(path) in RASTER_SUFFIXES


def is_volume(path: str | os.PathLike) -> bool:
    """NIfTI/MetaImage/NRRD files and folders (DICOM series) are volumes."""
    return image_suffix(path) in VOLUME_SUFFIXES or Path(path).is_dir()


@functools.lru_cache(maxsize=None)
def _loader_for(kind: str) -> LoadImage:
    # one LoadImage per reader kind: building one constructs every MONAI reader (and logs about optional codecs)
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    reader = {"raster": lambda: PILReader(reverse_indexing=False), "nifti": NibabelReader, "itk": ITKReader}[kind]()
    with warnings.catch_warnings():  # LoadImage also builds its GPU DICOM reader, which warns on CPU-only machines
        warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
        return LoadImage(reader=reader, image_only=True, ensure_channel_first=True, dtype=np.float32)


def _loader(path: Path) -> LoadImage:
    if is_raster(path):
        return _loader_for("raster")
    if image_suffix(path) in (".nii", ".nii.gz"):
        return _loader_for("nifti")
    return _loader_for("itk")  # DICOM series folders, MetaImage, NRRD


def load_image(path: str | os.PathLike, allowed_channels: Sequence[int] = (1, 3)) -> MetaTensor:
    """Load one image as a channel-first float32 :class:`~monai.data.MetaTensor`.

    Args:
        path: a 2D raster file, a NIfTI/MetaImage/NRRD file, or a folder holding one DICOM series.
        allowed_channels: channel counts accepted (grey = 1, RGB = 3). RGBA is accepted when its alpha channel is
            fully opaque and is returned as RGB.

    Returns:
        ``(C, H, W)`` for 2D or ``(C, H, W, D)`` for 3D, with ``meta["affine"]``, ``meta["filename_or_obj"]`` and
        ``meta["spatial_shape"]``. 8-bit raster values stay on 0..255.

    Raises:
        InputError: the file is missing or unreadable, has a channel count outside ``allowed_channels``, or holds
            NaN/Inf values.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir() and not any(path.iterdir()):
        raise InputError(path, "empty folder (expected a DICOM series)")
    try:
        img = _loader(path)(str(path))
    except Exception as e:  # the readers raise many types; the user needs the file name and the gist
        raise InputError(path, f"cannot read image ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if is_raster(path) and img.shape[0] == 4:
        alpha = img[3]
        if float(alpha.min()) < float(alpha.max()) or float(alpha.min()) not in (1.0, 255.0):
            raise InputError(path, "RGBA image with transparency is not supported (save it as RGB or greyscale)")
        img = img[:3]
    if img.shape[0] not in allowed_channels:
        raise InputError(path, f"has {img.shape[0]} channels, expected {' or '.join(map(str, allowed_channels))}")
    if not torch.isfinite(img).all():
        raise InputError(path, "contains NaN or Inf values")
    img.meta["filename_or_obj"] = str(path)
    return img


def to_uint8(image: np.ndarray | torch.Tensor, decimals: int = 4) -> np.ndarray:
    """Map an image in ``[0, 1]`` to 8-bit: ``x * 255`` snapped to a ``10**-decimals`` grid, rounded half to even, clipped.

    The snap removes float32 round-off before rounding, so exact half levels round as exact arithmetic does: the mean
    of two 8-bit sources computed in float32 from ``a / 255`` and ``b / 255`` lands a few 1e-5 beside ``k + 0.5`` and
    would otherwise round either way (10 % of the pixels of a Harvard MRI/CT average, against none with the snap).
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return np.clip(np.round(np.round(arr.astype(np.float64) * 255.0, decimals)), 0, 255).astype(np.uint8)


def atomic_write(path: str | os.PathLike, write_fn) -> Path:
    """Call ``write_fn(tmp_path)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = image_suffix(path) or path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the mode a plain open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_image(
    path: str | os.PathLike, image: np.ndarray | torch.Tensor, affine: np.ndarray | torch.Tensor | None = None
) -> Path:
    """Write a channel-first image atomically.

    Args:
        path: target file; ``.png``/``.jpg``/``.tif`` for 2D, ``.nii``/``.nii.gz`` for 3D.
        image: ``(C, H, W)`` with C = 1 or 3 for raster files, values in ``[0, 1]`` (float) or ``uint8``;
            ``(C, H, W, D)`` for NIfTI (written as float32, C = 1 squeezed). A :class:`MetaTensor`'s affine is used
            when ``affine`` is not given.
        affine: the 4x4 voxel-to-world matrix for NIfTI outputs (source geometry).

    Returns:
        the written path.
    """
    path = Path(path)
    if affine is None and isinstance(image, MetaTensor):
        affine = image.affine
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    suffix = image_suffix(path)
    if suffix in RASTER_SUFFIXES:
        from PIL import Image

        if arr.ndim != 3 or arr.shape[0] not in (1, 3):
            raise ValueError(f"save_image: raster output needs shape (1|3, H, W), got {tuple(arr.shape)}")
        u8 = arr if arr.dtype == np.uint8 else to_uint8(arr)
        pil = Image.fromarray(u8[0] if u8.shape[0] == 1 else np.moveaxis(u8, 0, -1))
        return atomic_write(path, lambda tmp: pil.save(tmp, format=Image.registered_extensions()[suffix]))
    if suffix in (".nii", ".nii.gz"):
        import nibabel as nib

        data = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
        aff = np.eye(4) if affine is None else np.asarray(affine.cpu() if isinstance(affine, torch.Tensor) else affine)
        nii = nib.Nifti1Image(data.astype(np.float32), aff.astype(np.float64))
        nii.set_qform(aff.astype(np.float64), code=1)
        nii.set_sform(aff.astype(np.float64), code=1)
        return atomic_write(path, lambda tmp: nib.save(nii, tmp))
    raise ValueError(f"save_image: unsupported output type {suffix!r} for {path}")


def check_same_geometry(images: Sequence[MetaTensor], atol: float = 1e-3) -> None:
    """Check that co-registered sources share one voxel grid: spatial shape, and for volumes spacing and affine.

    Args:
        images: images from :func:`load_image` (their ``filename_or_obj`` names them in errors).
        atol: absolute tolerance on affine entries (mm) and spacing.

    Raises:
        InputError: naming the first image that differs from the first one, and how.
    """
    if len(images) < 2:
        return
    ref = images[0]
    ref_name = ref.meta.get("filename_or_obj", "source 0")
    for img in images[1:]:
        name = img.meta.get("filename_or_obj", "source")
        if tuple(img.shape[1:]) != tuple(ref.shape[1:]):
            raise InputError(
                name, f"size {tuple(img.shape[1:])} differs from {tuple(ref.shape[1:])} of its partner {ref_name}"
            )
        if img.ndim - 1 == 3:
            sp, ref_sp = img.pixdim.cpu().numpy(), ref.pixdim.cpu().numpy()
            if not np.allclose(sp, ref_sp, atol=atol):
                raise InputError(
                    name, f"spacing {tuple(np.round(sp, 4))} differs from {tuple(np.round(ref_sp, 4))} of {ref_name}"
                )
            aff, ref_aff = img.affine.cpu().numpy(), ref.affine.cpu().numpy()
            if not np.allclose(aff[:3, :3], ref_aff[:3, :3], atol=atol):
                raise InputError(name, f"orientation/direction differs from {ref_name} (resample it to the same grid)")
            if not np.allclose(aff[:3, 3], ref_aff[:3, 3], atol=atol):
                raise InputError(name, f"origin {tuple(np.round(aff[:3, 3], 3))} differs from {ref_name}")
