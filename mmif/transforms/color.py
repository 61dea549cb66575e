"""Colour handling for functional images: BT.601 full-range RGB <-> YCbCr, luminance split and colour recombination.

PET and SPECT images come as pseudo-colour RGB. mmif fuses their luminance (Y) and carries their chroma (Cb, Cr) over
to the fused image. The conversion is ITU-R BT.601 "full range" (JPEG/JFIF, OpenCV ``COLOR_RGB2YCrCb``): for values in
``[0, 1]``

.. math::

    Y = 0.299 R + 0.587 G + 0.114 B, \\quad
    C_b = o + \\frac{0.5}{1 - 0.114} (B - Y), \\quad C_r = o + \\frac{0.5}{1 - 0.299} (R - Y)

Chroma offset ``o`` (see :func:`chroma_offset`): ``0.5`` for ``value_range=1`` (the mmif in-memory convention, neutral
chroma = 0.5) and ``128`` for 8-bit values (``value_range=255``), as in JPEG and OpenCV. The two conventions therefore
differ by half a grey level in chroma: ``cb_8bit = (cb_unit - 0.5) * 255 + 128``; Y is the same up to the factor 255.
OpenCV rounds the chroma factors to 0.564 and 0.713; the difference is below 0.9 grey levels at 8 bits.

Functions work on any channel dimension (``channel_dim=1`` for batches); the transforms are channel-first
(``(C, H, W[, D])``), keep the input type (NumPy, torch, :class:`~monai.data.MetaTensor`) and come as array/dictionary
pairs, as in ``monai.transforms.intensity``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple_rep

__all__ = [
    "LUMA_WEIGHTS",
    "chroma_offset",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "is_color_image",
    "RGBToYCbCr",
    "YCbCrToRGB",
    "SplitLuminance",
    "RecombineColor",
    "RGBToYCbCrd",
    "RGBToYCbCrD",
    "RGBToYCbCrDict",
    "YCbCrToRGBd",
    "YCbCrToRGBD",
    "YCbCrToRGBDict",
    "SplitLuminanced",
    "SplitLuminanceD",
    "SplitLuminanceDict",
    "RecombineColord",
    "RecombineColorD",
    "RecombineColorDict",
]

#: BT.601 luma weights for R, G, B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_CB_SCALE = 0.5 / (1.0 - LUMA_WEIGHTS[2])  # 0.564334...
_CR_SCALE = 0.5 / (1.0 - LUMA_WEIGHTS[0])  # 0.713267...


def chroma_offset(value_range: float) -> float:
    """The neutral chroma value: 128 for 8-bit data (``value_range=255``, JPEG/OpenCV), else ``value_range / 2``.

    Raises:
        ValueError: ``value_range`` is not positive.
    """
    if not value_range > 0:
        raise ValueError(f"value_range must be positive, got {value_range}")
    return 128.0 if value_range == 255 else value_range / 2.0


def _split(img: torch.Tensor, channel_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if img.shape[channel_dim] != 3:
        raise ValueError(f"colour conversion needs 3 channels on dim {channel_dim}, got shape {tuple(img.shape)}")
    a, b, c = torch.unbind(img, dim=channel_dim)
    return a, b, c


def _as_float_tensor(img: NdarrayOrTensor) -> torch.Tensor:
    t = convert_to_tensor(img, track_meta=False)
    return t if t.is_floating_point() else t.float()


def rgb_to_ycbcr(img: NdarrayOrTensor, channel_dim: int = 0, value_range: float = 1.0) -> NdarrayOrTensor:
    """Convert RGB to Y, Cb, Cr (BT.601 full range), along ``channel_dim``.

    Args:
        img: ``(..., 3, ...)`` RGB values in ``[0, value_range]``; NumPy or torch, any spatial dims.
        channel_dim: the dimension holding R, G, B (0 for a channel-first image, 1 for a batch).
        value_range: 1.0 for ``[0, 1]`` data, 255 for 8-bit values (chroma offset :func:`chroma_offset`).

    Returns:
        Y, Cb, Cr stacked on ``channel_dim``, same type as ``img`` (float).

    Raises:
        ValueError: ``img`` has no 3 channels on ``channel_dim``, or ``value_range`` is not positive.
    """
    offset = chroma_offset(value_range)
    r, g, b = _split(_as_float_tensor(img), channel_dim)
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    cb = (b - y) * _CB_SCALE + offset
    cr = (r - y) * _CR_SCALE + offset
    out = torch.stack([y, cb, cr], dim=channel_dim)
    return convert_to_dst_type(out, dst=img, dtype=out.dtype)[0]


def ycbcr_to_rgb(
    img: NdarrayOrTensor, channel_dim: int = 0, value_range: float = 1.0, clip: bool = True
) -> NdarrayOrTensor:
    """Convert Y, Cb, Cr (BT.601 full range) back to RGB; the exact inverse of :func:`rgb_to_ycbcr`.

    Args:
        img: ``(..., 3, ...)`` Y, Cb, Cr along ``channel_dim``.
        channel_dim: the dimension holding Y, Cb, Cr.
        value_range: as in :func:`rgb_to_ycbcr`.
        clip: clip the result to ``[0, value_range]`` (a fused Y with foreign chroma can leave the RGB gamut).

    Returns:
        R, G, B stacked on ``channel_dim``, same type as ``img``.

    Raises:
        ValueError: ``img`` has no 3 channels on ``channel_dim``, or ``value_range`` is not positive.
    """
    offset = chroma_offset(value_range)
    y, cb, cr = _split(_as_float_tensor(img), channel_dim)
    r = y + (cr - offset) / _CR_SCALE
    b = y + (cb - offset) / _CB_SCALE
    g = (y - LUMA_WEIGHTS[0] * r - LUMA_WEIGHTS[2] * b) / LUMA_WEIGHTS[1]
    out = torch.stack([r, g, b], dim=channel_dim)
    if clip:
        out = out.clamp(0.0, value_range)
    return convert_to_dst_type(out, dst=img, dtype=out.dtype)[0]


def is_color_image(img: NdarrayOrTensor, channel_dim: int = 0, atol: float = 0.0) -> bool:
    """Whether ``img`` holds real colour: 3 channels on ``channel_dim`` that are not all equal (grey stored as RGB).

    Args:
        img: an image with 1 or 3 channels on ``channel_dim``.
        channel_dim: the channel dimension.
        atol: channels differing by at most this much count as equal.
    """
    t = convert_to_tensor(img, track_meta=False)
    if t.shape[channel_dim] != 3:
        return False
    r, g, b = torch.unbind(t, dim=channel_dim)
    return not (torch.allclose(r, g, rtol=0.0, atol=atol) and torch.allclose(r, b, rtol=0.0, atol=atol))


class _ColorTransform(Transform):
    """Shared constructor of the colour transforms: a positive ``value_range`` and the channel dimension."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, value_range: float = 1.0, channel_dim: int = 0) -> None:
        if not value_range > 0:
            raise ValueError(f"{type(self).__name__}: value_range must be positive, got {value_range}")
        self.value_range = value_range
        self.channel_dim = channel_dim


class RGBToYCbCr(_ColorTransform):
    """Convert a channel-first RGB image to Y, Cb, Cr (BT.601 full range, see :mod:`mmif.transforms.color`).

    Args:
        value_range: 1.0 for ``[0, 1]`` data (chroma offset 0.5), 255 for 8-bit values (offset 128).
        channel_dim: the channel dimension (0 for one image ``(3, H, W[, D])``, 1 for a batch ``(B, 3, H, W[, D])``).

    Raises:
        ValueError: ``value_range`` is not positive.
    """

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: ``(3, H, W[, D])`` RGB (``(B, 3, H, W[, D])`` with ``channel_dim=1``).

        Returns:
            Y, Cb, Cr in the same layout, the type of ``img`` (float).
        """
        return rgb_to_ycbcr(img, channel_dim=self.channel_dim, value_range=self.value_range)


class YCbCrToRGB(_ColorTransform):
    """Convert a channel-first Y, Cb, Cr image back to RGB; the inverse of :class:`RGBToYCbCr`.

    Args:
        value_range: as in :class:`RGBToYCbCr`.
        channel_dim: as in :class:`RGBToYCbCr`.
        clip: clip the result to ``[0, value_range]``.

    Raises:
        ValueError: ``value_range`` is not positive.
    """

    def __init__(self, value_range: float = 1.0, channel_dim: int = 0, clip: bool = True) -> None:
        super().__init__(value_range, channel_dim)
        self.clip = clip

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: ``(3, H, W[, D])`` Y, Cb, Cr (``(B, 3, H, W[, D])`` with ``channel_dim=1``).

        Returns:
            R, G, B in the same layout, the type of ``img`` (float).
        """
        return ycbcr_to_rgb(img, channel_dim=self.channel_dim, value_range=self.value_range, clip=self.clip)


class SplitLuminance(_ColorTransform):
    """Split a source image into its luminance (fused) and its chroma (carried over to the fused image).

    A colour image ``(3, *spatial)`` gives ``Y (1, *spatial)`` and ``Cb, Cr (2, *spatial)``; a grey image
    ``(1, *spatial)`` gives itself and neutral chroma (:func:`chroma_offset`).

    Args:
        value_range: 1.0 for ``[0, 1]`` data, 255 for 8-bit values.
        channel_dim: the channel dimension (1 for batches).

    Raises:
        ValueError: ``value_range`` is not positive.
    """

    def __call__(self, img: NdarrayOrTensor) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """
        Args:
            img: ``(1 | 3, *spatial)``, grey or RGB.

        Returns:
            ``(luminance, chroma)``: ``(1, *spatial)`` and ``(2, *spatial)``, both the type of ``img`` (float).

        Raises:
            ValueError: ``img`` has neither 1 nor 3 channels.
        """
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        n = img_t.shape[self.channel_dim]
        if n == 3:
            ycc = rgb_to_ycbcr(img_t, channel_dim=self.channel_dim, value_range=self.value_range)
            y, chroma = torch.split(ycc, [1, 2], dim=self.channel_dim)
        elif n == 1:
            y = img_t if img_t.is_floating_point() else img_t.float()
            shape = list(img_t.shape)
            shape[self.channel_dim] = 2
            chroma = torch.full(shape, chroma_offset(self.value_range), dtype=y.dtype, device=y.device)
        else:
            raise ValueError(f"{type(self).__name__}: expected 1 or 3 channels, got shape {tuple(img_t.shape)}")
        y_out = convert_to_dst_type(y, dst=img, dtype=y.dtype)[0]
        chroma_out = convert_to_dst_type(chroma, dst=img, dtype=y.dtype)[0]
        return y_out, chroma_out


class RecombineColor(_ColorTransform):
    """Put a fused luminance and the source chroma back together as RGB, clipped to the gamut.

    Args:
        value_range: 1.0 for ``[0, 1]`` data, 255 for 8-bit values.
        channel_dim: the channel dimension (1 for batches).
        clip: clip the RGB result to ``[0, value_range]`` (the luminance is always clipped first).

    Raises:
        ValueError: ``value_range`` is not positive.
    """

    def __init__(self, value_range: float = 1.0, channel_dim: int = 0, clip: bool = True) -> None:
        super().__init__(value_range, channel_dim)
        self.clip = clip

    def __call__(self, img: NdarrayOrTensor, chroma: NdarrayOrTensor | None = None) -> NdarrayOrTensor:
        """
        Args:
            img: ``(1, *spatial)`` fused luminance.
            chroma: ``(2, *spatial)`` Cb, Cr of the colour source, or ``None`` when no source is colour.

        Returns:
            ``(3, *spatial)`` RGB, or ``img`` clipped to ``[0, value_range]`` (grey) when ``chroma`` is ``None``;
            the type of ``img``.

        Raises:
            ValueError: ``img`` has more than 1 channel, ``chroma`` has not 2, or their spatial shapes differ.
        """
        y = _as_float_tensor(img)
        name = type(self).__name__
        if y.shape[self.channel_dim] != 1:
            raise ValueError(f"{name}: the fused luminance must have 1 channel, got shape {tuple(y.shape)}")
        y = y.clamp(0.0, self.value_range)
        if chroma is None:
            return convert_to_dst_type(y, dst=img, dtype=y.dtype)[0]
        c = convert_to_tensor(chroma, track_meta=False, device=y.device, dtype=y.dtype)
        if c.shape[self.channel_dim] != 2:
            raise ValueError(f"{name}: chroma must have 2 channels (Cb, Cr), got shape {tuple(c.shape)}")
        y_shape, c_shape = list(y.shape), list(c.shape)
        y_shape[self.channel_dim] = c_shape[self.channel_dim] = 0
        if y_shape != c_shape:
            raise ValueError(f"{name}: luminance {tuple(y.shape)} and chroma {tuple(c.shape)} shapes do not match")
        ycc = torch.cat([y, c], dim=self.channel_dim)
        rgb = ycbcr_to_rgb(ycc, channel_dim=self.channel_dim, value_range=self.value_range, clip=self.clip)
        return convert_to_dst_type(rgb, dst=img, dtype=rgb.dtype)[0]


class RGBToYCbCrd(MapTransform):
    """Dictionary-based wrapper of :py:class:`mmif.transforms.RGBToYCbCr`.

    Args:
        keys: keys of the items to convert.
        value_range: see :class:`RGBToYCbCr`.
        channel_dim: see :class:`RGBToYCbCr`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RGBToYCbCr.backend

    def __init__(
        self, keys: KeysCollection, value_range: float = 1.0, channel_dim: int = 0, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = RGBToYCbCr(value_range=value_range, channel_dim=channel_dim)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


class YCbCrToRGBd(MapTransform):
    """Dictionary-based wrapper of :py:class:`mmif.transforms.YCbCrToRGB`.

    Args:
        keys: keys of the items to convert.
        value_range: see :class:`YCbCrToRGB`.
        channel_dim: see :class:`YCbCrToRGB`.
        clip: see :class:`YCbCrToRGB`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = YCbCrToRGB.backend

    def __init__(
        self,
        keys: KeysCollection,
        value_range: float = 1.0,
        channel_dim: int = 0,
        clip: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = YCbCrToRGB(value_range=value_range, channel_dim=channel_dim, clip=clip)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


class SplitLuminanced(MapTransform):
    """Dictionary-based wrapper of :py:class:`mmif.transforms.SplitLuminance`.

    Each ``key`` is replaced by its luminance ``(1, *spatial)``; its chroma ``(2, *spatial)`` goes to the matching
    ``chroma_keys`` entry and whether it was colour (3 unequal channels, :func:`is_color_image`) to ``is_color_keys``.

    Args:
        keys: keys of the source images (grey or RGB).
        chroma_keys: where to store each chroma; one key, or one per ``keys``. Defaults to ``"chroma"``.
        is_color_keys: where to store each colour flag (``bool``); ``None`` to skip. Defaults to ``"is_color"``.
        value_range: see :class:`SplitLuminance`.
        allow_missing_keys: don't raise if a key is missing.

    Raises:
        ValueError: ``chroma_keys`` / ``is_color_keys`` do not match ``keys`` in number.
    """

    backend = SplitLuminance.backend

    def __init__(
        self,
        keys: KeysCollection,
        chroma_keys: KeysCollection = "chroma",
        is_color_keys: KeysCollection | None = "is_color",
        value_range: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        try:
            self.chroma_keys = ensure_tuple_rep(chroma_keys, len(self.keys))
            self.is_color_keys = ensure_tuple_rep(is_color_keys, len(self.keys))
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {e}") from e
        self.splitter = SplitLuminance(value_range=value_range)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, chroma_key, color_key in self.key_iterator(d, self.chroma_keys, self.is_color_keys):
            img = d[key]
            if color_key is not None:
                d[color_key] = is_color_image(img)
            d[key], d[chroma_key] = self.splitter(img)
        return d


class RecombineColord(MapTransform):
    """Dictionary-based wrapper of :py:class:`mmif.transforms.RecombineColor`.

    Each ``key`` (a fused luminance ``(1, *spatial)``) becomes RGB ``(3, *spatial)`` with the chroma in ``chroma_key``
    when the sample is colour (``is_color_key`` true, or absent while ``chroma_key`` is present), and stays grey
    (clipped) otherwise.

    Args:
        keys: keys of the fused luminance images (e.g. ``"pred"``).
        chroma_key: the key of the source chroma.
        is_color_key: the key of the colour flag; ``None`` to decide on the presence of ``chroma_key`` alone.
        value_range: see :class:`RecombineColor`.
        clip: see :class:`RecombineColor`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RecombineColor.backend

    def __init__(
        self,
        keys: KeysCollection,
        chroma_key: str = "chroma",
        is_color_key: str | None = "is_color",
        value_range: float = 1.0,
        clip: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.chroma_key = chroma_key
        self.is_color_key = is_color_key
        self.recombine = RecombineColor(value_range=value_range, clip=clip)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        chroma = d.get(self.chroma_key)
        if self.is_color_key is not None and self.is_color_key in d:
            flag = d[self.is_color_key]
            if not bool(torch.as_tensor(flag).all()):
                chroma = None
        for key in self.key_iterator(d):
            d[key] = self.recombine(d[key], chroma)
        return d


RGBToYCbCrD = RGBToYCbCrDict = RGBToYCbCrd
YCbCrToRGBD = YCbCrToRGBDict = YCbCrToRGBd
SplitLuminanceD = SplitLuminanceDict = SplitLuminanced
RecombineColorD = RecombineColorDict = RecombineColord
