from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from mmif.transforms import RandSelectSource, RandSelectSourced
from tests.transforms._helpers import TEST_NDARRAYS, to_numpy


def expected_index(seed: int, num_channels: int, draws: int = 1) -> list[int]:
    """Reproduce the draws: per call one ``rand()`` (probability) then ``randint(num_channels)``."""
    r = np.random.RandomState(seed)
    out = []
    for _ in range(draws):
        r.random_sample()
        out.append(int(r.randint(num_channels)))
    return out


class TestRandSelectSource(unittest.TestCase):
    @parameterized.expand([((3, 6, 5),), ((2, 4, 5, 3),)])
    def test_array_seeded(self, shape):
        img = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
        for seed in (0, 1, 5):
            for p in TEST_NDARRAYS:
                t = RandSelectSource()
                t.set_random_state(seed)
                for idx in expected_index(seed, shape[0], draws=4):
                    out = t(p(img))
                    self.assertIs(type(out), type(p(img)))
                    self.assertEqual(tuple(out.shape), (1, *shape[1:]))
                    np.testing.assert_array_equal(to_numpy(out), img[idx : idx + 1])

    def test_dict_seeded_and_shared_across_keys(self):
        img = torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(3, 4, 4)
        t = RandSelectSourced(keys=["image", "target"]).set_random_state(11)
        for idx in expected_index(11, 3, draws=5):
            d = t({"image": MetaTensor(img), "target": img.clone(), "modalities": ["t1", "pet", "spect"], "name": "c"})
            torch.testing.assert_close(d["image"].as_tensor(), img[idx : idx + 1])
            torch.testing.assert_close(d["target"], img[idx : idx + 1])
            self.assertEqual(d["modality"], ["t1", "pet", "spect"][idx])
            self.assertEqual(d["source_index"], idx)
            self.assertEqual(d["name"], "c")

    def test_all_sources_visited(self):
        t = RandSelectSourced().set_random_state(0)
        seen = {t({"image": np.zeros((3, 2, 2)), "modalities": ["a", "b", "c"]})["modality"] for _ in range(30)}
        self.assertEqual(seen, {"a", "b", "c"})

    def test_reuse_out_of_range(self):
        t = RandSelectSource()
        t.index = 2
        with self.assertRaisesRegex(ValueError, "RandSelectSource"):
            t(np.zeros((2, 3, 3)), randomize=False)


if __name__ == "__main__":
    unittest.main()
