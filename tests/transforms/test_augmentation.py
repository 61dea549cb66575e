from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Compose, RandFlipd, RandRotated, RandSpatialCropd, SpatialPadd
from parameterized import parameterized

from mmif.transforms import PairedAugmentationd, paired_augmentation
from tests.transforms._helpers import to_numpy

CASES = [
    (2, (40, 36), (24, 24), 0.4),
    (3, (20, 18, 16), (12, 12, 12), (0.3, 0.2, 0.1)),
]


def sample(spatial, seed=0, meta=True):
    """``image`` = (base, 1 - base, base) and ``chroma`` = (base, 1 - base): aligned iff the channels stay equal."""
    base = torch.as_tensor(np.random.default_rng(seed).uniform(size=spatial), dtype=torch.float32)
    image, chroma = torch.stack([base, 1 - base, base]), torch.stack([base, 1 - base])
    if meta:
        image, chroma = MetaTensor(image), MetaTensor(chroma)
    return {"image": image, "chroma": chroma, "name": "x"}


class TestPairedAugmentation(unittest.TestCase):
    def assert_aligned(self, d):
        img, chroma = to_numpy(d["image"]), to_numpy(d["chroma"])
        np.testing.assert_allclose(img[2], img[0], atol=1e-6)
        np.testing.assert_allclose(img[0], chroma[0], atol=1e-6)
        np.testing.assert_allclose(img[1], chroma[1], atol=1e-5)
        np.testing.assert_allclose(img[0] + img[1], np.ones_like(img[0]), atol=1e-5)

    @parameterized.expand(CASES)
    def test_channels_stay_aligned(self, dims, spatial, roi, rotate):
        aug = PairedAugmentationd(dims, roi, prob=0.5, rotate=rotate, rotate90=True)
        outputs = []
        for seed in range(6):
            aug.set_random_state(seed)
            for meta in (True, False):
                d = aug(sample(spatial, meta=meta))
                self.assertEqual(tuple(d["image"].shape), (3, *roi))
                self.assertEqual(tuple(d["chroma"].shape), (2, *roi))
                self.assertEqual(d["name"], "x")
                self.assert_aligned(d)
            outputs.append(to_numpy(d["image"]))
        # the draws differ between seeds (the test would notice a no-op)
        self.assertTrue(any(not np.allclose(outputs[0], o) for o in outputs[1:]))

    @parameterized.expand(CASES)
    def test_separate_transforms_would_misalign(self, dims, spatial, roi, rotate):
        """Control: one transform per key draws twice, and the check above then fails."""
        per_key = [
            Compose(paired_augmentation(dims, roi, keys=k, prob=0.5, rotate=rotate)) for k in ("image", "chroma")
        ]
        failures = 0
        for seed in range(6):
            d = sample(spatial)
            for i, t in enumerate(per_key):
                t.set_random_state(seed * 2 + i)
                d = t(d)
            try:
                self.assert_aligned(d)
            except AssertionError:
                failures += 1
        self.assertGreater(failures, 0)

    @parameterized.expand(CASES)
    def test_seeded_reproducibility(self, dims, spatial, roi, rotate):
        a = PairedAugmentationd(dims, roi, rotate=rotate).set_random_state(7)
        b = PairedAugmentationd(dims, roi, rotate=rotate).set_random_state(7)
        for _ in range(3):
            da, db = a(sample(spatial)), b(sample(spatial))
            np.testing.assert_array_equal(to_numpy(da["image"]), to_numpy(db["image"]))
            np.testing.assert_array_equal(to_numpy(da["chroma"]), to_numpy(db["chroma"]))
        # seeding an enclosing Compose seeds the transforms inside
        c1 = Compose([PairedAugmentationd(dims, roi, rotate=rotate)]).set_random_state(3)
        c2 = Compose([PairedAugmentationd(dims, roi, rotate=rotate)]).set_random_state(3)
        np.testing.assert_array_equal(to_numpy(c1(sample(spatial))["image"]), to_numpy(c2(sample(spatial))["image"]))

    def test_crop_pads_small_inputs_with_border_values(self):
        d = {"image": torch.ones(2, 10, 12), "chroma": torch.full((2, 10, 12), 0.5)}
        out = PairedAugmentationd(2, (16, 16), prob=0.0)(d)
        self.assertEqual(tuple(out["image"].shape), (2, 16, 16))
        np.testing.assert_array_equal(to_numpy(out["chroma"]), np.full((2, 16, 16), 0.5, np.float32))
        np.testing.assert_array_equal(to_numpy(out["image"]), np.ones((2, 16, 16), np.float32))

    def test_contents(self):
        ts = paired_augmentation(3, 8, rotate=0.2)
        expected = [SpatialPadd, RandSpatialCropd, RandFlipd, RandFlipd, RandFlipd, RandRotated]
        self.assertEqual([type(t) for t in ts], expected)
        self.assertTrue(all(tuple(t.keys) == ("image", "chroma") for t in ts))
        self.assertEqual([type(t) for t in paired_augmentation(2, None, flip=False)], [])

    @parameterized.expand(CASES)
    def test_num_samples_gives_aligned_distinct_crops(self, dims, spatial, roi, rotate):
        aug = PairedAugmentationd(dims, roi, prob=0.5, rotate=rotate, num_samples=4)
        aug.set_random_state(3)
        out = aug(sample(spatial))
        self.assertIsInstance(out, list)
        self.assertEqual(len(out), 4)
        for d in out:
            self.assertEqual(tuple(d["image"].shape), (3, *roi))
            self.assertEqual(d["name"], "x")
            self.assert_aligned(d)
        crops = [to_numpy(d["image"]) for d in out]
        self.assertTrue(any(not np.allclose(crops[0], c) for c in crops[1:]))
        # MONAI's list collation makes one batch of all crops
        from monai.data import DataLoader, Dataset

        batch = next(iter(DataLoader(Dataset([sample(spatial, seed=s, meta=False) for s in range(2)], aug),
                                     batch_size=2)))
        self.assertEqual(tuple(batch["image"].shape), (8, 3, *roi))

    def test_bundle_config(self):
        parser = ConfigParser(
            {
                "roi": [16, 16],
                "aug": {"_target_": "mmif.transforms.PairedAugmentationd", "spatial_dims": 2, "roi_size": "@roi",
                        "rotate": 0.2},
                "aug_list": "$paired_augmentation(2, @roi, rotate=0.2)",
                "aug_list_target": {"_target_": "mmif.transforms.paired_augmentation", "spatial_dims": 2,
                                    "roi_size": "@roi", "rotate": 0.2},
                "imports": ["$from mmif.transforms import paired_augmentation"],
            }
        )
        parser.get_parsed_content("imports")  # as a bundle workflow does first
        aug = parser.get_parsed_content("aug")
        self.assertIsInstance(aug, PairedAugmentationd)
        aug_list = parser.get_parsed_content("aug_list")
        self.assertEqual([type(t) for t in aug_list], [type(t) for t in aug.transforms])
        self.assertEqual([type(t) for t in parser.get_parsed_content("aug_list_target")], [type(t) for t in aug_list])
        self.assertEqual(tuple(aug(sample((20, 20)))["image"].shape), (3, 16, 16))

    @parameterized.expand(
        [({"spatial_dims": 1},), ({"prob": 1.5},), ({"rotate": (0.1, 0.2)},), ({"rotate": -0.1},),
         ({"flip_axes": (2,)},), ({"padding_mode": "wrap"},), ({"num_samples": 0},),
         ({"num_samples": 2, "roi_size": None},)]
    )
    def test_bad_arguments(self, kwargs):
        args = {"spatial_dims": 2, "roi_size": 8, **kwargs}
        with self.assertRaisesRegex(ValueError, "PairedAugmentationd"):
            PairedAugmentationd(**args)
        with self.assertRaisesRegex(ValueError, "paired_augmentation"):
            paired_augmentation(**args)


if __name__ == "__main__":
    unittest.main()
