"""CachedFeatureDataset (the Stage II feature cache): the cached features are the extractor's, builds are deterministic,
the cached and the uncached FusionModel agree, and a MONAI SupervisedTrainer trains on it without running the UNet."""

from __future__ import annotations

import unittest

import torch
from ignite.engine import Events
from monai.data import CacheDataset, DataLoader
from monai.engines import SupervisedTrainer
from monai.transforms import Compose, EnsureTyped

from mmif.engines.feature_cache import CachedFeatureDataset
from mmif.engines.fusion import FusionLossAdapter, FusionPrepareBatch
from mmif.losses import FusionLoss
from mmif.transforms import PairedAugmentationd
from tests.engines.test_fusion import smooth_sources, tiny_model


def _dataset(n: int = 3, shape=(40, 40), roi=(32, 32), num_samples: int = 1) -> CacheDataset:
    """``n`` source pairs behind MONAI's random paired crop (a new crop at every read), as the Stage II bundles."""
    image = smooth_sources(n, 2, shape, seed=5)
    data = [
        {"image": image[i], "chroma": torch.full((2, *shape), 0.5 + 0.1 * i), "is_color": bool(i % 2), "name": str(i)}
        for i in range(n)
    ]
    transform = Compose([
        PairedAugmentationd(len(shape), list(roi), rotate90=len(shape) == 2, num_samples=num_samples),
        EnsureTyped(keys=["image", "chroma"], dtype=torch.float32, track_meta=False),
    ])
    return CacheDataset(data, transform, cache_rate=1.0, progress=False)


def _crops(item):
    return item if isinstance(item, list) else [item]


class TestCachedFeatureDataset(unittest.TestCase):
    def setUp(self):
        self.model = tiny_model().eval()

    def _cache(self, dataset=None, **kwargs) -> CachedFeatureDataset:
        kwargs = {"crops_per_image": 2, "batch_size": 4, "seed": 0, "progress": False, **kwargs}
        return CachedFeatureDataset(_dataset() if dataset is None else dataset, self.model.extractor, **kwargs)

    def test_features_are_the_extractors_of_each_crop(self):
        with self.assertLogs("mmif.engines.feature_cache", "INFO") as logs:
            cache = self._cache()
        self.assertEqual(len(cache), 3 * 2)
        self.assertEqual(cache.num_crops, 6)
        self.assertTrue(any("6 crops" in line and " MB" in line for line in logs.output), logs.output)
        n_t = len(self.model.extractor.timesteps)
        for i in range(len(cache)):
            item = cache[i]
            self.assertEqual(tuple(item["image"].shape), (2, 32, 32))
            self.assertEqual(item["name"], str(i % 3))  # draw i // 3 of image i % 3
            expected = self.model.extractor(item["image"][None])
            self.assertEqual(len(item["features"]), len(expected))
            for got, want, c in zip(item["features"], expected, self.model.extractor.feature_channels):
                self.assertEqual(got.shape[:3], (2, n_t, c))
                torch.testing.assert_close(got, want[0], atol=1e-5, rtol=1e-5)  # alone vs in an extraction batch
        # the draws of one image are different crops
        self.assertFalse(torch.equal(cache[0]["image"], cache[3]["image"]))
        self.assertGreater(cache.memory_mb, cache.feature_bytes / 2**20)
        self.assertGreater(cache.feature_bytes, 0)

    def test_deterministic_for_a_seed(self):
        state = torch.random.get_rng_state()
        a, b = self._cache(), self._cache()
        self.assertTrue(torch.equal(state, torch.random.get_rng_state()))  # torch's global RNG is left as it was
        c = self._cache(seed=1)
        for i in range(len(a)):
            self.assertTrue(torch.equal(a[i]["image"], b[i]["image"]))
            self.assertTrue(torch.equal(a[i]["chroma"], b[i]["chroma"]))
            for fa, fb in zip(a[i]["features"], b[i]["features"]):
                self.assertTrue(torch.equal(fa, fb))
        self.assertFalse(all(torch.equal(a[i]["image"], c[i]["image"]) for i in range(len(a))))

    def test_cached_and_uncached_model_agree(self):
        cache = self._cache()
        batch = next(iter(DataLoader(cache, batch_size=4, shuffle=False)))
        self.assertEqual([tuple(f.shape[:2]) for f in batch["features"]], [(4, 2)] * len(batch["features"]))
        with torch.no_grad():
            uncached = self.model(batch["image"])
            cached = self.model(batch["image"], features=batch["features"])
        torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=1e-5)
        with self.assertRaisesRegex(ValueError, "feature levels"):
            self.model(batch["image"], features=batch["features"][:-1])

    def test_float16_storage(self):
        full, half = self._cache(), self._cache(dtype="float16")
        self.assertEqual({f.dtype for f in half[0]["features"]}, {torch.float16})
        self.assertAlmostEqual(half.feature_bytes * 2, full.feature_bytes)
        self.assertEqual(half[0]["image"].dtype, torch.float32)  # images are kept as given
        batch = next(iter(DataLoader(half, batch_size=6)))
        with torch.no_grad():
            out = self.model(batch["image"], features=batch["features"])
            ref = self.model(batch["image"])
        self.assertEqual(out.dtype, torch.float32)
        torch.testing.assert_close(out, ref, atol=5e-3, rtol=0)

    def test_several_samples_per_draw_stay_together(self):
        """``num_samples`` crops per read (the 3D bundle): an item is the list of that draw's crops; batches flatten."""
        self.model = tiny_model(3).eval()
        cache = self._cache(_dataset(2, (20, 20, 16), (16, 16, 16), num_samples=3))
        self.assertEqual(len(cache), 2 * 2)
        self.assertEqual(cache.num_crops, 12)
        self.assertEqual([len(_crops(cache[i])) for i in range(len(cache))], [3] * 4)
        crop = cache[1][2]
        for got, want in zip(crop["features"], self.model.extractor(crop["image"][None])):
            torch.testing.assert_close(got, want[0], atol=1e-5, rtol=1e-5)
        batch = next(iter(DataLoader(cache, batch_size=2)))
        self.assertEqual(tuple(batch["image"].shape), (6, 2, 16, 16, 16))

    def test_rejects_bad_arguments(self):
        for kwargs in ({"crops_per_image": 0}, {"batch_size": 0}, {"dtype": "int8"}):
            with self.assertRaises(ValueError):
                self._cache(**kwargs)
        with self.assertRaisesRegex(ValueError, "empty"):
            self._cache([])
        with self.assertRaisesRegex(ValueError, "'image'"):
            self._cache([{"label": torch.rand(2, 32, 32)}])


class TestTrainingOnTheCache(unittest.TestCase):
    def test_prepare_batch_passes_the_features(self):
        feats = [torch.rand(2, 2, 1, 8, 4, 4)]
        batch = {"image": torch.rand(2, 2, 8, 8), "chroma": torch.rand(2, 2, 8, 8), "features": feats}
        inputs, targets, args, kwargs = FusionPrepareBatch(extra_target_keys=["chroma"])(batch)
        self.assertEqual(args, ())
        self.assertEqual(set(kwargs), {"features"})
        self.assertIs(kwargs["features"][0], feats[0])
        self.assertEqual(set(targets), {"sources", "chroma"})
        self.assertEqual(len(FusionPrepareBatch(features_key=None)(batch)), 2)  # switched off
        self.assertEqual(len(FusionPrepareBatch()({"image": batch["image"]})), 2)  # a batch without features

    def test_supervised_trainer_sees_every_crop_and_never_runs_the_unet(self):
        torch.manual_seed(0)
        model = tiny_model()
        cache = CachedFeatureDataset(_dataset(), model.extractor, crops_per_image=3, batch_size=8, progress=False)
        calls = []
        model.extractor.register_forward_hook(lambda *a: calls.append(1))
        seen: list[str] = []
        loss = FusionLossAdapter(FusionLoss(2))
        trainer = SupervisedTrainer(
            device="cpu", max_epochs=2, train_data_loader=DataLoader(cache, batch_size=4, shuffle=True),
            network=model, optimizer=torch.optim.Adam(model.trainable_parameters(), lr=1e-3), loss_function=loss,
            prepare_batch=FusionPrepareBatch(extra_target_keys=["chroma", "is_color"]),
        )
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.extend(d["name"] for d in e.state.batch))
        head_before = [p.clone() for p in model.head.parameters()]
        trainer.run()
        self.assertEqual(calls, [])
        self.assertEqual(trainer.state.iteration, 2 * 3)  # 9 cached crops per epoch, batches of 4
        self.assertEqual(sorted(seen[:9]), sorted(seen[9:]))  # each epoch: every cached crop
        self.assertEqual(sorted(seen[:9]), sorted(["0", "1", "2"] * 3))
        self.assertTrue(any(not torch.equal(a, b) for a, b in zip(head_before, model.head.parameters())))
        self.assertTrue(torch.isfinite(torch.as_tensor(trainer.state.output[0]["loss"])))


if __name__ == "__main__":
    unittest.main()
