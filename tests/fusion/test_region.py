from __future__ import annotations

import unittest

import numpy as np
import torch
from parameterized import parameterized
from scipy.ndimage import uniform_filter

from mmif.fusion import get_fusion_method
from mmif.networks.layered_head import RegionDetailHead, local_rms
from tests.fusion._helpers import SHAPES, random_sources


class TestRegionEnergyFusion(unittest.TestCase):
    def test_selects_the_source_of_larger_local_energy(self):
        image = random_sources((40, 36), m=2, b=1, seed=1)
        fused = get_fusion_method("region")(image)[0, 0].double().numpy()
        a, b = image[0].double().numpy()
        ea, eb = uniform_filter(a * a, 7, mode="nearest"), uniform_filter(b * b, 7, mode="nearest")
        decided = np.abs(ea - eb) > 1e-6
        np.testing.assert_allclose(fused[decided], np.where(ea > eb, a, b)[decided], atol=1e-6)

    @parameterized.expand(SHAPES)
    def test_copies_sources_in_2d_and_3d(self, shape, _label):
        image = random_sources(shape, m=3, b=2, seed=2)
        fused = get_fusion_method("region")(image)
        self.assertEqual(tuple(fused.shape), (2, 1, *shape))
        energy = local_rms(image, 7)
        unique = (energy == energy.amax(dim=1, keepdim=True)).sum(dim=1) == 1  # exact float ties split evenly
        self.assertGreater(float(unique.float().mean()), 0.99)
        self.assertLess(float((fused - image).abs().amin(dim=1)[unique].max()), 1e-6)

    def test_bad_window(self):
        with self.assertRaises(ValueError):
            get_fusion_method("region", window=4)


class TestRegionDetailFusion(unittest.TestCase):
    @parameterized.expand(SHAPES)
    def test_is_the_untrained_head_with_black_background(self, shape, _label):
        image = random_sources(shape, m=2, b=1, seed=3)
        image[..., :3] = 0.0
        fused = get_fusion_method("region_detail")(image)
        head = RegionDetailHead(len(shape), 5).eval()
        b, m = image.shape[:2]
        with torch.no_grad():
            expected = head(torch.rand(b, 5, *shape), torch.rand(b, m, 5, *shape), image)
        torch.testing.assert_close(fused, expected, atol=1e-6, rtol=0)
        self.assertEqual(float(fused[..., :3].abs().max()), 0.0)
        self.assertGreater(float((fused - image).abs().amin(dim=1).max()), 1e-3)  # not a copy: detail carried


if __name__ == "__main__":
    unittest.main()
