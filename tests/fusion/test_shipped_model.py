"""The trained weights shipped in ``bundles/brain_mmif_2d/models`` through ``DMFNetFusion`` (the default of ``mmif fuse``)."""

from __future__ import annotations

import unittest

import numpy as np
import torch

from mmif.fusion import get_fusion_method
from mmif.fusion.learned import DMFNetFusion, weights_available
from mmif.io import load_image
from mmif.metrics import compute_metrics
from tests.fusion._helpers import random_sources
from tests.utils import REPO_ROOT, data_root, skip_unless_data

BUNDLE = REPO_ROOT / "bundles" / "brain_mmif_2d"


def _blobs(size: int = 64, seed: int = 0) -> torch.Tensor:
    """Two smooth sources on a black background (a disc of tissue), ``(1, 2, size, size)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 2, size // 8, size // 8, generator=g), size=(size, size),
                                        mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.35 * size) ** 2).float()
    return x * disc


@unittest.skipUnless(weights_available(BUNDLE), "no trained weights in bundles/brain_mmif_2d/models")
class TestShippedModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.method = DMFNetFusion(bundle=BUNDLE)

    def test_is_the_registered_default(self):
        self.assertIsInstance(get_fusion_method("dmfnet"), DMFNetFusion)

    def test_deterministic_decision_map_with_black_background(self):
        image = _blobs(seed=1)
        a, b = self.method(image), self.method(image)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        self.assertEqual(tuple(a.shape), (1, 1, 64, 64))
        # every pixel is copied from one of the sources, so black stays exactly black
        self.assertTrue(bool((a == image).any(dim=1).all()))
        background = image.amax(dim=1, keepdim=True) == 0
        self.assertEqual(float(a[background].abs().max()), 0.0)
        # and it is a real choice: both sources contribute
        inside = ~background[:, 0]
        took_first = (a[:, 0] == image[:, 0]) & (image[:, 0] != image[:, 1]) & inside
        took_second = (a[:, 0] == image[:, 1]) & (image[:, 0] != image[:, 1]) & inside
        self.assertGreater(int(took_first.sum()), 0)
        self.assertGreater(int(took_second.sum()), 0)

    def test_three_modalities_and_odd_sizes(self):
        image = random_sources((50, 38), m=3, b=1, seed=2)
        fused = self.method(image)
        self.assertEqual(tuple(fused.shape), (1, 1, 50, 38))
        self.assertTrue(bool((fused == image).any(dim=1).all()))

    @skip_unless_data("harvard/MRI_CT/test")
    def test_real_pairs_transfer_more_edges_than_the_average(self):
        root = data_root() / "harvard" / "MRI_CT" / "test"
        names = sorted(p.name for p in (root / "MRI").glob("*.png"))[:3]
        for name in names:
            sources = [load_image(root / mod / name)[0].squeeze().astype(np.float32) for mod in ("MRI", "CT")]
            image = torch.from_numpy(np.stack(sources) / 255.0)[None]
            fused = self.method(image)[0, 0].numpy() * 255.0
            average = (sources[0] + sources[1]) / 2.0
            ours = compute_metrics(np.round(fused), sources, ["Qabf", "VIF"])
            avg = compute_metrics(np.round(average), sources, ["Qabf", "VIF"])
            with self.subTest(name):
                self.assertGreater(ours["Qabf"], avg["Qabf"])
                self.assertGreater(ours["VIF"], avg["VIF"])


if __name__ == "__main__":
    unittest.main()
