from __future__ import annotations

import unittest

import torch
from parameterized import parameterized
from torch import nn

from mmif.inferers import FusionInferer, pad_to_multiple


class TinyConvFusion(nn.Module):
    """A random conv net ``(B, M, *S) -> (B, 1, *S)`` that needs sizes divisible by 4 (two 2x poolings)."""

    def __init__(self, spatial_dims: int, m: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.enc = conv(m, 4, 3, padding=1)
        self.dec = conv(4, 1, 3, padding=1)
        self.pool = nn.AvgPool2d(2) if spatial_dims == 2 else nn.AvgPool3d(2)
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x):
        self.calls.append(tuple(x.shape[2:]))
        if any(s % 4 for s in x.shape[2:]):
            raise RuntimeError(f"size {tuple(x.shape[2:])} not divisible by 4")
        h = self.pool(self.pool(torch.relu(self.enc(x))))
        h = nn.functional.interpolate(h, size=x.shape[2:], mode="nearest")
        return torch.sigmoid(self.dec(h))


def average(x):
    """A point-wise fusion (so a stitched result must equal the whole-image one)."""
    return x.mean(dim=1, keepdim=True)


class NoisyAverage(nn.Module):
    """Draws random numbers from the global RNG, like the diffusion feature extractor does."""

    def forward(self, x):
        return (x.mean(dim=1, keepdim=True) + 0.1 * torch.randn_like(x[:, :1])).clamp(0, 1)


class TestPadToMultiple(unittest.TestCase):
    def test_pads_with_edge_values_and_crops_back(self):
        x = torch.rand(1, 2, 10, 13)
        padded, crop = pad_to_multiple(x, 4)
        self.assertEqual(tuple(padded.shape), (1, 2, 12, 16))
        torch.testing.assert_close(padded[crop], x)
        torch.testing.assert_close(padded[..., 11, :13], x[..., 9, :])  # last row repeated
        torch.testing.assert_close(padded[..., :10, 15], x[..., :, 12])  # last column repeated

    def test_no_padding_needed(self):
        x = torch.rand(1, 2, 8, 8, 4)
        padded, crop = pad_to_multiple(x, (4, 4, 2))
        self.assertIs(padded, x)


class TestFusionInferer(unittest.TestCase):
    @parameterized.expand([(2, (20, 22)), (3, (10, 12, 9))])
    def test_whole_image_pads_to_divisor(self, spatial_dims, shape):
        net = TinyConvFusion(spatial_dims)
        out = FusionInferer(divisor=4)(torch.rand(1, 2, *shape), net)
        self.assertEqual(tuple(out.shape), (1, 1, *shape))
        self.assertTrue(all(s % 4 == 0 for s in net.calls[0]))

    @parameterized.expand([(2, (20, 22), 24), (3, (10, 12, 9), 12)])
    def test_window_larger_than_input_equals_whole_image(self, spatial_dims, shape, roi):
        net = TinyConvFusion(spatial_dims).eval()
        x = torch.rand(2, 2, *shape)
        whole = FusionInferer(divisor=4)(x, net)
        windowed = FusionInferer(roi_size=roi, divisor=4, overlap=0.5)(x, net)
        torch.testing.assert_close(windowed, whole, rtol=0, atol=0)

    @parameterized.expand([(2, (40, 52), 16), (3, (20, 24, 18), 8)])
    def test_large_input_only_sees_windows(self, spatial_dims, shape, roi):
        net = TinyConvFusion(spatial_dims).eval()
        x = torch.rand(1, 2, *shape)
        out = FusionInferer(roi_size=roi, divisor=4, sw_batch_size=2)(x, net)
        self.assertEqual(tuple(out.shape), (1, 1, *shape))
        self.assertTrue(torch.isfinite(out).all())
        self.assertGreater(len(net.calls), 1)
        self.assertTrue(all(c == (roi,) * spatial_dims for c in net.calls), net.calls)

    @parameterized.expand([(2, (40, 52), (16, 24)), (3, (20, 24, 18), (8, 8, 12))])
    def test_stitching_of_a_pointwise_method_is_exact(self, spatial_dims, shape, roi):
        x = torch.rand(2, 3, *shape)
        out = FusionInferer(roi_size=roi, overlap=0.25, mode="gaussian")(x, average)
        torch.testing.assert_close(out, x.mean(dim=1, keepdim=True), rtol=1e-5, atol=1e-5)

    def test_seeded_calls_are_deterministic(self):
        x = torch.rand(1, 2, 24, 24)
        a = FusionInferer(seed=3)(x, NoisyAverage())
        torch.manual_seed(123)  # the global state must not matter
        b = FusionInferer(seed=3)(x, NoisyAverage())
        c = FusionInferer(seed=4)(x, NoisyAverage())
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        self.assertGreater(float((a - c).abs().max()), 1e-3)
        w1 = FusionInferer(roi_size=16, seed=3)(x, NoisyAverage())
        w2 = FusionInferer(roi_size=16, seed=3)(x, NoisyAverage())
        torch.testing.assert_close(w1, w2, rtol=0, atol=0)

    def test_seed_does_not_disturb_the_global_rng(self):
        x = torch.rand(1, 2, 8, 8)
        torch.manual_seed(0)
        FusionInferer(seed=7)(x, NoisyAverage())
        after = torch.rand(3)
        torch.manual_seed(0)
        expected = torch.rand(3)
        torch.testing.assert_close(after, expected, rtol=0, atol=0)

    def test_output_clipped(self):
        out = FusionInferer()(torch.rand(1, 2, 8, 8), lambda x: 2 * x[:, :1] - 0.5)
        self.assertGreaterEqual(float(out.min()), 0.0)
        self.assertLessEqual(float(out.max()), 1.0)

    @parameterized.expand(
        [
            ({"sw_batch_size": 0},),
            ({"overlap": 1.0},),
            ({"mode": "mean"},),
            ({"divisor": 0},),
            ({"roi_size": (0, 16)},),
        ]
    )
    def test_bad_arguments(self, kwargs):
        with self.assertRaisesRegex(ValueError, "FusionInferer"):
            FusionInferer(**kwargs)

    def test_window_not_multiple_of_divisor(self):
        with self.assertRaisesRegex(ValueError, "multiple"):
            FusionInferer(roi_size=18, divisor=4)(torch.rand(1, 2, 40, 40), TinyConvFusion(2))

    def test_bad_input_shape(self):
        with self.assertRaisesRegex(ValueError, "FusionInferer"):
            FusionInferer()(torch.rand(2, 8, 8), average)


if __name__ == "__main__":
    unittest.main()
