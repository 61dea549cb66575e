"""Picking one source of a stacked sample, for Stage I (the diffusion model learns each modality on its own).

Stage I trains a single-channel diffusion UNet on every modality. :class:`RandSelectSourced` turns a fusion sample
``image (M, *spatial)`` into a one-source sample ``image (1, *spatial)``, the source drawn uniformly at random from a
seeded per-transform generator, so every epoch visits the modalities in proportion. (The alternative, training on all
sources of a batch at once, needs no transform: reshape ``(B, M, *spatial)`` to ``(B * M, 1, *spatial)`` in the
engine.)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, ensure_tuple

__all__ = ["RandSelectSource", "RandSelectSourced", "RandSelectSourceD", "RandSelectSourceDict"]


class RandSelectSource(RandomizableTransform):
    """Keep one channel (source) of a channel-first image, chosen uniformly at random.

    ``randomize(num_channels)`` first calls ``RandomizableTransform.randomize`` (which draws one number for the
    probability, always 1 here) and then draws the channel index with ``self.R.randint(num_channels)``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.index = 0

    def randomize(self, num_channels: int) -> None:  # type: ignore[override]
        """Draw the channel index in ``[0, num_channels)``."""
        super().randomize(None)
        self.index = int(self.R.randint(num_channels))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: ``(M, *spatial)``.
            randomize: draw a new index (``False`` reuses the last one).

        Returns:
            ``(1, *spatial)``, the same type as ``img``.

        Raises:
            ValueError: the last drawn index is not a channel of ``img``.
        """
        if randomize:
            self.randomize(img.shape[0])
        if not 0 <= self.index < img.shape[0]:
            raise ValueError(f"{type(self).__name__}: index {self.index} out of range for shape {tuple(img.shape)}")
        return img[self.index : self.index + 1]


class RandSelectSourced(RandomizableTransform, MapTransform):
    """Dictionary-based wrapper of :py:class:`mmif.transforms.RandSelectSource`.

    The index is drawn once, on the first key, and applied to every key; the chosen modality name
    (``d[modalities_key][index]``) goes to ``modality_key`` and the index to ``index_key``.

    Args:
        keys: keys of the stacked images (all with the same number of channels).
        modalities_key: the key of the modality names (skipped when absent).
        modality_key: where to store the chosen modality name; ``None`` to skip.
        index_key: where to store the chosen index; ``None`` to skip.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandSelectSource.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        modalities_key: str = "modalities",
        modality_key: str | None = "modality",
        index_key: str | None = "source_index",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.selector = RandSelectSource()
        self.modalities_key = modalities_key
        self.modality_key = modality_key
        self.index_key = index_key

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandSelectSourced:
        super().set_random_state(seed, state)
        self.selector.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first_key = self.first_key(d)
        if first_key == ():
            return d
        self.selector.randomize(d[first_key].shape[0])
        for key in self.key_iterator(d):
            d[key] = self.selector(d[key], randomize=False)
        index = self.selector.index
        if self.modality_key is not None and self.modalities_key in d:
            d[self.modality_key] = str(ensure_tuple(d[self.modalities_key])[index])
        if self.index_key is not None:
            d[self.index_key] = index
        return d


RandSelectSourceD = RandSelectSourceDict = RandSelectSourced
