from __future__ import annotations

import unittest

import torch
from monai.data import MetaTensor
from parameterized import parameterized

from mmif.fusion import FusionMethod, fuse_batch, fuse_sample, get_fusion_method
from mmif.inferers import FusionInferer
from mmif.transforms.color import rgb_to_ycbcr
from tests.fusion._helpers import random_sources


def _in_gamut_batch(spatial, b=2, seed=0):
    """Y of 2 sources in [0.3, 0.7], chroma within 0.04 of neutral: every recombination stays inside the RGB gamut."""
    g = torch.Generator().manual_seed(seed)
    image = 0.3 + 0.4 * torch.rand((b, 2, *spatial), generator=g)
    chroma = 0.46 + 0.08 * torch.rand((b, 2, *spatial), generator=g)
    return image, chroma


class Scaled(FusionMethod):
    """A learnable method (one parameter) to check gradients and train/eval handling."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def fuse(self, image):
        return self.w * image.sum(1, keepdim=True) / image.shape[1] * 2


class TestFuseBatch(unittest.TestCase):
    @parameterized.expand([("2d", (12, 10)), ("3d", (6, 8, 5))])
    def test_colour_recombination_keeps_the_chroma(self, _, spatial):
        image, chroma = _in_gamut_batch(spatial)
        out = fuse_batch(get_fusion_method("average"), {"image": image, "chroma": chroma, "is_color": [True, True]})
        self.assertEqual(tuple(out["fused_rgb"].shape), (2, 3, *spatial))
        back = rgb_to_ycbcr(out["fused_rgb"], channel_dim=1)
        torch.testing.assert_close(back[:, 1:], chroma, atol=1e-5, rtol=0)
        torch.testing.assert_close(back[:, :1], out["fused"], atol=1e-5, rtol=0)
        torch.testing.assert_close(out["fused"], image.mean(1, keepdim=True))

    def test_grey_samples_get_the_fused_y_replicated_in_a_mixed_batch(self):
        image, chroma = _in_gamut_batch((9, 11))
        batch = {"image": image, "chroma": chroma, "is_color": torch.tensor([False, True])}
        out = fuse_batch(get_fusion_method("maxabs"), batch)
        torch.testing.assert_close(out["fused_rgb"][0], out["fused"][0].expand(3, -1, -1), atol=0, rtol=0)
        self.assertFalse(torch.allclose(out["fused_rgb"][1], out["fused"][1].expand(3, -1, -1)))
        self.assertEqual(out["is_color"].tolist(), [False, True])

    def test_without_chroma_everything_is_grey(self):
        image = random_sources((8, 8), m=3)
        out = fuse_batch(get_fusion_method("laplacian"), {"image": MetaTensor(image)})
        self.assertEqual(out["is_color"].tolist(), [False, False])
        torch.testing.assert_close(out["fused_rgb"], out["fused"].expand(-1, 3, -1, -1), atol=0, rtol=0)

    def test_no_grad_and_training_mode_restored(self):
        method = Scaled().train()
        out = fuse_batch(method, {"image": random_sources((8, 8))})
        self.assertFalse(out["fused"].requires_grad)
        self.assertTrue(method.training)
        torch.testing.assert_close(out["fused"], random_sources((8, 8)).mean(1, keepdim=True))

    def test_deterministic(self):
        image, chroma = _in_gamut_batch((16, 16), seed=4)
        batch = {"image": image, "chroma": chroma, "is_color": True}
        a, b = fuse_batch(get_fusion_method("dwt"), batch), fuse_batch(get_fusion_method("dwt"), batch)
        torch.testing.assert_close(a["fused_rgb"], b["fused_rgb"], atol=0, rtol=0)

    def test_fuse_sample(self):
        image, chroma = _in_gamut_batch((7, 9), b=1)
        out = fuse_sample(get_fusion_method("pca"), {"image": image[0], "chroma": chroma[0], "is_color": True})
        self.assertEqual(tuple(out["fused"].shape), (1, 7, 9))
        self.assertEqual(tuple(out["fused_rgb"].shape), (3, 7, 9))
        self.assertIs(out["is_color"], True)

    def test_errors(self):
        image, chroma = _in_gamut_batch((8, 8))
        with self.assertRaisesRegex(ValueError, "no 'image'"):
            fuse_batch(get_fusion_method("average"), {"chroma": chroma})
        with self.assertRaisesRegex(ValueError, "'chroma' must have shape"):
            fuse_batch(get_fusion_method("average"), {"image": image, "chroma": chroma[:, :1], "is_color": True})
        with self.assertRaisesRegex(ValueError, "'is_color' has 3 entries"):
            fuse_batch(get_fusion_method("average"), {"image": image, "chroma": chroma, "is_color": [1, 0, 1]})
        with self.assertRaisesRegex(ValueError, "returned shape"):
            fuse_batch(lambda x: x, {"image": image})


class TestFusionInfererWithClassicalMethods(unittest.TestCase):
    def test_whole_image(self):
        x = random_sources((20, 18), m=2)
        method = get_fusion_method("laplacian")
        torch.testing.assert_close(FusionInferer()(x, method), method(x), atol=0, rtol=0)

    def test_sliding_window_of_a_pixel_rule_is_exact(self):
        x = random_sources((20, 18, 9), m=3, b=1)
        out = FusionInferer(roi_size=(8, 8, 8), sw_batch_size=2)(x, get_fusion_method("average"))
        self.assertEqual(tuple(out.shape), (1, 1, 20, 18, 9))
        torch.testing.assert_close(out, x.mean(1, keepdim=True), atol=1e-5, rtol=0)

    def test_validates_input(self):
        with self.assertRaises(ValueError):
            FusionInferer()(torch.rand(1, 1, 8, 8), get_fusion_method("average"))


if __name__ == "__main__":
    unittest.main()
