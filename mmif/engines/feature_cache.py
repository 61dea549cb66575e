"""Stage II feature cache: the frozen Stage I features of fixed training crops, extracted once, served every epoch.

The Stage I UNet is frozen during Stage II, so its features of a crop never change. :class:`CachedFeatureDataset`
draws ``crops_per_image`` augmented crops of every training image once (the training dataset's own random transforms,
seeded), runs the extractor over them once, without gradients and in batches, and keeps per crop::

    {"image": (M, *spatial), "chroma": ..., "is_color": ..., <other keys of the item>,
     "features": [(M, T, C_l, *spatial_l) for each level, coarsest to finest]}

A ``DataLoader`` collates ``features`` into a list of ``(B, M, T, C_l, *spatial_l)``;
:class:`mmif.engines.fusion.FusionPrepareBatch` passes it to :meth:`mmif.networks.fusion_model.FusionModel.forward`
as ``features=``, which then skips the extractor, so a Stage II iteration costs only the head (forward, loss,
backward). Every epoch iterates over all cached crops (shuffled by the loader); the crops are the same every epoch.

Determinism: the crops depend only on ``seed`` and the dataset (the dataset's random transforms are seeded with
:func:`monai.data.utils.set_rnd` and torch's global generator is seeded inside a forked RNG state, which is restored
afterwards), and the extractor's noise is seeded, so two builds with the same seed hold the same crops and features;
on every rank of a distributed training too (each rank builds the whole cache; a ``DistributedSampler`` shards it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import set_rnd
from torch import nn
from torch.utils.data import Dataset

__all__ = ["CachedFeatureDataset"]

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _plain(value: Any) -> Any:
    """A ``MetaTensor`` as a plain tensor (no per-crop metadata kept in memory); anything else unchanged."""
    return value.as_tensor() if isinstance(value, MetaTensor) else value


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, Mapping):
        return sum(_nbytes(v) for v in value.values())
    return 0


class CachedFeatureDataset(Dataset):
    """Fixed augmented training crops with their Stage I features, extracted once (Stage II feature cache).

    Item ``i`` is the ``(i // len(dataset))``-th draw of ``dataset[i % len(dataset)]``: a dict, or a list of dicts
    when the dataset's transforms return several samples per image (``num_samples`` of
    :class:`mmif.transforms.PairedAugmentationd`; the loader's ``list_data_collate`` flattens them into the batch, as
    without the cache). Each dict is the dataset's item (``image_key`` plain tensor) plus ``features_key``: the list
    of feature levels of that crop, ``(M, T, C_l, *spatial_l)``, stored on the CPU in ``dtype``.

    Args:
        dataset: the training dataset, its items after the random transforms (e.g. a ``CacheDataset`` over the
            deterministic loading with the random crop in its transform). It is read ``crops_per_image`` times.
        extractor: the frozen feature extractor (:class:`mmif.networks.feature_extractor.DiffusionFeatureExtractor`),
            ``(B, M, *spatial)`` -> list of ``(B, M, T, C_l, *spatial_l)``.
        crops_per_image: draws per image.
        batch_size: crops per extractor call (crops of the same shape are batched together).
        seed: seed of the crops.
        dtype: storage dtype of the features (``torch.float16`` / ``"float16"`` halves the memory; the model casts
            them back to its own dtype). ``None``: as the extractor gives them (float32). Images are kept as given.
        device: run the extractor on this device (it is moved there); ``None``: where its parameters are.
        image_key: the key of the stacked sources.
        features_key: the key the features are stored under.
        progress: show a tqdm progress bar while extracting (the log lines are written either way).

    Attributes:
        num_crops: cached crops (``len(dataset) * crops_per_image * samples per draw``).
        memory_bytes: bytes held by the cached tensors (features, images and the other tensors of the items).
        feature_bytes: bytes held by the features alone.
        extraction_seconds: wall time of the build (reading the dataset + extraction).

    Raises:
        ValueError: ``crops_per_image`` or ``batch_size`` < 1, an empty dataset, an item without ``image_key``, or an
            unknown ``dtype``.
    """

    def __init__(
        self,
        dataset: Sequence,
        extractor: nn.Module,
        crops_per_image: int = 4,
        batch_size: int = 8,
        seed: int = 0,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        image_key: str = "image",
        features_key: str = "features",
        progress: bool = True,
    ) -> None:
        name = type(self).__name__
        if int(crops_per_image) != crops_per_image or crops_per_image < 1:
            raise ValueError(f"{name}: crops_per_image must be a positive int, got {crops_per_image}.")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"{name}: batch_size must be a positive int, got {batch_size}.")
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(f"{name}: dtype must be one of {sorted(_DTYPES)} or None, got {dtype!r}.")
            dtype = _DTYPES[dtype]
        if len(dataset) == 0:
            raise ValueError(f"{name}: the dataset is empty.")
        self.crops_per_image = int(crops_per_image)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.dtype = dtype
        self.image_key = image_key
        self.features_key = features_key
        self.num_images = len(dataset)
        if device is not None:
            extractor.to(device)
        param = next(iter(extractor.parameters()), None)
        self.device = torch.device(device) if device is not None else (param.device if param is not None else None)

        start = time.perf_counter()
        # _items[i]: one draw, a dict or a list of dicts (the crops of that draw, in the dataset's order)
        self._items: list[dict | list[dict]] = []
        self.num_crops = 0
        self._build(dataset, extractor, progress)
        self.extraction_seconds = time.perf_counter() - start
        self.feature_bytes = sum(_nbytes(c[features_key]) for c in self._crops())
        self.memory_bytes = sum(_nbytes(c) for c in self._crops())
        logger.info(
            "%s: %d crops (%d images x %d draws) cached in %.1f s: %.1f MB (features %.1f MB, %s)",
            name, self.num_crops, self.num_images, self.crops_per_image, self.extraction_seconds,
            self.memory_mb, self.feature_bytes / 2**20, str(self.dtype or "as extracted").replace("torch.", ""),
        )

    @property
    def memory_mb(self) -> float:
        """:attr:`memory_bytes` in MB (2**20 bytes)."""
        return self.memory_bytes / 2**20

    def _crops(self):
        for item in self._items:
            yield from (item if isinstance(item, list) else [item])

    def _build(self, dataset: Sequence, extractor: nn.Module, progress: bool) -> None:
        from tqdm.auto import tqdm

        name = type(self).__name__
        total = self.num_images * self.crops_per_image
        logger.info(
            "%s: extracting Stage I features of %d images x %d crops (batch %d, seed %d) ...",
            name, self.num_images, self.crops_per_image, self.batch_size, self.seed,
        )
        was_training = extractor.training
        extractor.eval()
        pending: list[dict] = []
        bar = tqdm(total=total, desc="feature cache", unit="draw", disable=not progress, leave=False)
        next_log = 0.1
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(self.seed)
                set_rnd(dataset, self.seed)
                for _ in range(self.crops_per_image):
                    for index in range(self.num_images):
                        item = dataset[index]
                        crops = [self._copy(c) for c in (item if isinstance(item, list) else [item])]
                        self._items.append(crops if isinstance(item, list) else crops[0])
                        for crop in crops:
                            if pending and tuple(pending[0][self.image_key].shape) != tuple(crop[self.image_key].shape):
                                self._extract(pending, extractor)
                            pending.append(crop)
                            if len(pending) >= self.batch_size:
                                self._extract(pending, extractor)
                        bar.update(1)
                        if not progress and len(self._items) >= next_log * total:
                            logger.info("%s: %d / %d draws", name, len(self._items), total)
                            next_log += 0.1
                if pending:
                    self._extract(pending, extractor)
        finally:
            bar.close()
            extractor.train(was_training)

    def _copy(self, crop: Any) -> dict:
        if not isinstance(crop, Mapping) or self.image_key not in crop:
            keys = ", ".join(map(str, crop)) if isinstance(crop, Mapping) else type(crop).__name__
            raise ValueError(f"{type(self).__name__}: dataset items need the key {self.image_key!r} (got {keys}).")
        out = dict(crop)
        out[self.image_key] = _plain(torch.as_tensor(crop[self.image_key]))
        self.num_crops += 1
        return out

    def _extract(self, pending: list[dict], extractor: nn.Module) -> None:
        """Run the extractor on the pending crops (same shape) and store each crop's levels; empties ``pending``."""
        image = torch.stack([c[self.image_key] for c in pending])
        if self.device is not None:
            image = image.to(self.device)
        levels = extractor(image)
        for level in levels:
            level = _plain(level).detach()
            level = level.to(device="cpu", dtype=self.dtype or level.dtype)
            for j, crop in enumerate(pending):
                crop.setdefault(self.features_key, []).append(level[j].clone())  # its own storage, not a batch view
        pending.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict | list[dict]:
        item = self._items[index]
        if isinstance(item, list):
            return [{**c, self.features_key: list(c[self.features_key])} for c in item]
        return {**item, self.features_key: list(item[self.features_key])}
