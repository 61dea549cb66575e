from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from mmif.losses import (
    AnatomyLoss,
    ColorGamutLoss,
    ContrastLoss,
    EdgeTransferLoss,
    FusionLoss,
    GradientLoss,
    InformationLoss,
    IntensityLoss,
    StructureLoss,
)
from mmif.losses.filters import local_mean_std, sobel_magnitude
from mmif.transforms.color import rgb_to_ycbcr

DIMS = [[2], [3]]
SIZE = {2: 24, 3: 14}
WIN = 7


def grid(spatial_dims):
    """Coordinates in [0, 1) along the first spatial axis, shape (1, 1, *spatial)."""
    n = SIZE[spatial_dims]
    ramp = torch.arange(n, dtype=torch.float32) / n
    return ramp.view(1, 1, n, *(1,) * (spatial_dims - 1)).expand(1, 1, *(n,) * spatial_dims)


def square(spatial_dims, value=0.8, background=0.1):
    """A bright cube in the centre (sharp edges) on a dark background, (1, 1, *spatial)."""
    n = SIZE[spatial_dims]
    img = torch.full((1, 1, *(n,) * spatial_dims), background)
    img[(slice(None), slice(None)) + (slice(n // 4, 3 * n // 4),) * spatial_dims] = value
    return img


def texture(spatial_dims, seed=0, amplitude=0.3):
    gen = torch.Generator().manual_seed(seed)
    return 0.5 + amplitude * (torch.rand(1, 1, *(SIZE[spatial_dims],) * spatial_dims, generator=gen) - 0.5)


class TestFilters(unittest.TestCase):
    @parameterized.expand(DIMS)
    def test_sobel_zero_on_constant_and_positive_on_edges(self, spatial_dims):
        self.assertEqual(sobel_magnitude(torch.full((1, 1, *(8,) * spatial_dims), 0.3)).abs().max().item(), 0.0)
        mag = sobel_magnitude(square(spatial_dims, 1.0, 0.0))
        # a unit step seen along one axis: normalised Sobel gives 0.5 next to the face centre
        n = SIZE[spatial_dims]
        centre = (0, 0, n // 4) + (n // 2,) * (spatial_dims - 1)
        self.assertAlmostEqual(mag[centre].item(), 0.5, places=5)

    @parameterized.expand(DIMS)
    def test_local_std_of_constant_is_tiny_and_valid_size(self, spatial_dims):
        x = torch.full((1, 1, *(12,) * spatial_dims), 0.7)
        mean, std = local_mean_std(x, 5, 1.0, valid=True)
        self.assertEqual(std.shape[2:], (8,) * spatial_dims)
        torch.testing.assert_close(mean, torch.full_like(mean, 0.7))
        self.assertLess(std.max().item(), 2e-3)


class TestIntensityLoss(unittest.TestCase):
    @parameterized.expand(DIMS)
    def test_max_target(self, spatial_dims):
        sources = torch.cat([square(spatial_dims), grid(spatial_dims)], dim=1)
        loss = IntensityLoss(spatial_dims)
        self.assertEqual(loss(sources.amax(1, keepdim=True), sources).item(), 0.0)
        self.assertGreater(loss(sources.amin(1, keepdim=True), sources).item(), 0.05)

    @parameterized.expand(DIMS)
    def test_saliency_target(self, spatial_dims):
        bright = square(spatial_dims, 0.9, 0.3)
        flat = torch.full_like(bright, 0.3)
        sources = torch.cat([bright, flat], dim=1)
        loss = IntensityLoss(spatial_dims, target="saliency", saliency_sigma=1.0)
        target = loss.intensity_target(sources)
        self.assertTrue(bool((target >= sources.amin(1, keepdim=True) - 1e-6).all()))
        self.assertTrue(bool((target <= sources.amax(1, keepdim=True) + 1e-6).all()))
        n = SIZE[spatial_dims]
        self.assertGreater(target[(0, 0) + (n // 2,) * spatial_dims].item(), 0.85)  # the salient cube wins
        self.assertLess(loss(target, sources).item(), 1e-7)
        self.assertGreater(loss(flat, sources).item(), 0.05)
        same = torch.cat([bright, bright], dim=1)  # identical sources: the target is the source
        self.assertLess(loss(bright, same).item(), 1e-6)


class TestGradientLoss(unittest.TestCase):
    @parameterized.expand(DIMS)
    def test_detects_lost_edges(self, spatial_dims):
        edges = square(spatial_dims)
        flat = torch.full_like(edges, 0.4)
        sources = torch.cat([flat, edges], dim=1)
        loss = GradientLoss(spatial_dims)
        self.assertEqual(loss(edges, sources).item(), 0.0)
        lost = loss(flat, sources).item()
        weakened = loss(0.5 * edges + 0.2, sources).item()
        self.assertGreater(lost, weakened)
        self.assertGreater(weakened, 0.0)


class TestContrastLoss(unittest.TestCase):
    @parameterized.expand(DIMS)
    def test_zero_for_most_contrasted_source(self, spatial_dims):
        strong = texture(spatial_dims, amplitude=0.6)
        weak = 0.25 * (strong - 0.5) + 0.5
        sources = torch.cat([weak, strong], dim=1)
        loss = ContrastLoss(spatial_dims, win_size=WIN)
        self.assertLess(loss(strong, sources).item(), 1e-6)  # zero up to float rounding (the conv path differs by CPU)
        self.assertGreater(loss(weak, sources).item(), 0.01)


class TestStructureLoss(unittest.TestCase):
    @parameterized.expand(DIMS)
    def test_follows_locally_more_structured_source(self, spatial_dims):
        n = SIZE[spatial_dims]
        left = torch.zeros(1, 1, *(n,) * spatial_dims)
        left[:, :, : n // 2] = 1.0
        a = texture(spatial_dims, 0) * left + 0.5 * (1 - left)  # textured in the first half only
        b = texture(spatial_dims, 1) * (1 - left) + 0.5 * left  # textured in the second half only
        sources = torch.cat([a, b], dim=1)
        loss = StructureLoss(spatial_dims, win_size=WIN)
        combined = a * left + b * (1 - left)
        self.assertLess(loss(a, sources).item(), 1.0)
        self.assertLess(loss(combined, sources).item(), 0.5 * loss(a, sources).item())
        self.assertLess(loss(combined, sources).item(), 0.5 * loss(b, sources).item())
        single = torch.cat([a, torch.full_like(a, 0.5)], dim=1)
        self.assertAlmostEqual(loss(a, single).item(), 0.0, places=5)
        self.assertGreater(loss(torch.full_like(a, 0.5), single).item(), 0.4)

    def test_too_small_input(self):
        with self.assertRaises(ValueError):
            StructureLoss(2, win_size=11)(torch.rand(1, 1, 8, 8), torch.rand(1, 2, 8, 8))


class TestColorGamutLoss(unittest.TestCase):
    @parameterized.expand(DIMS)
    def test_inside_and_outside_gamut(self, spatial_dims):
        gen = torch.Generator().manual_seed(0)
        rgb = torch.rand(2, 3, *(8,) * spatial_dims, generator=gen)
        ycc = rgb_to_ycbcr(rgb, channel_dim=1)
        y, chroma = ycc[:, :1], ycc[:, 1:]
        loss = ColorGamutLoss(spatial_dims)
        self.assertLess(loss(y, chroma).item(), 1e-6)  # the source's own luminance recombines inside the gamut
        brighter = (y + 0.5).requires_grad_(True)
        value = loss(brighter, chroma)
        self.assertGreater(value.item(), 0.05)
        value.backward()
        self.assertGreater(brighter.grad.abs().sum().item(), 0.0)
        neutral = torch.full_like(chroma, 0.5)
        self.assertEqual(loss(torch.rand_like(y), neutral).item(), 0.0)  # grey: any Y in [0, 1] is in gamut
        per_sample = ColorGamutLoss(spatial_dims, reduction="none")(y + 0.5, chroma, torch.tensor([True, False]))
        self.assertGreater(per_sample[0].item(), 0.05)
        self.assertEqual(per_sample[1].item(), 0.0)

    def test_bad_shapes(self):
        loss = ColorGamutLoss(2)
        with self.assertRaises(ValueError):
            loss(torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8))
        with self.assertRaises(ValueError):
            loss(torch.rand(1, 1, 8, 8), torch.rand(1, 2, 8, 8), torch.tensor([True, False]))


class TestInformationLoss(unittest.TestCase):
    @parameterized.expand(DIMS)
    def test_keeping_the_sources_information(self, spatial_dims):
        a, b = texture(spatial_dims, seed=0), square(spatial_dims)
        sources = torch.cat([a, b], 1)
        loss = InformationLoss(spatial_dims, reduction="none")
        # a fused image that is a copy of the one source determines it: nothing is lost
        self.assertLess(loss(a, a).item(), 1e-4)
        # a constant says nothing about either source; a copy of one keeps about half; max-abs keeps more of both
        constant = loss(torch.full_like(a, 0.5), sources).item()
        copy_a = loss(a, sources).item()
        maxabs = loss(sources.amax(1, keepdim=True), sources).item()
        self.assertGreater(constant, 0.99)
        self.assertLess(maxabs, copy_a)
        self.assertLess(copy_a, constant)
        fused = (0.5 * a + 0.5 * b).requires_grad_(True)
        loss(fused, sources).sum().backward()
        self.assertTrue(torch.isfinite(fused.grad).all())
        self.assertGreater(fused.grad.abs().sum().item(), 0.0)

    def test_bad_arguments(self):
        for kwargs in ({"num_bins": 1}, {"sigma_ratio": 0.0}, {"spatial_dims": 1}):
            with self.subTest(**kwargs), self.assertRaises(ValueError):
                InformationLoss(**kwargs)


class TestFusionLoss(unittest.TestCase):
    @parameterized.expand([[2, 2], [2, 3], [3, 2], [3, 3]])
    def test_total_is_weighted_sum_and_terms_logged(self, spatial_dims, modalities):
        gen = torch.Generator().manual_seed(1)
        n = SIZE[spatial_dims]
        sources = torch.rand(2, modalities, *(n,) * spatial_dims, generator=gen)
        sources[:, 1:] = 0.5 + 0.5 * sources[:, 1:]  # functional sources that outshine the first (anatomy term)
        chroma = torch.rand(2, 2, *(n,) * spatial_dims, generator=gen)
        fused = torch.rand(2, 1, *(n,) * spatial_dims, generator=gen).requires_grad_(True)
        weights = dict(
            intensity=1.0, gradient=2.0, structure=0.5, contrast=0.7, color=3.0, information=0.4, anatomy=0.8, edge=0.6
        )
        loss = FusionLoss(spatial_dims, *weights.values(), win_size=WIN)
        total = loss(fused, sources, chroma=chroma)
        expected = (
            weights["intensity"] * IntensityLoss(spatial_dims)(fused, sources)
            + weights["gradient"] * GradientLoss(spatial_dims)(fused, sources)
            + weights["structure"] * StructureLoss(spatial_dims, win_size=WIN)(fused, sources)
            + weights["contrast"] * ContrastLoss(spatial_dims, win_size=WIN)(fused, sources)
            + weights["color"] * ColorGamutLoss(spatial_dims)(fused, chroma)
            + weights["information"] * InformationLoss(spatial_dims)(fused, sources)
            + weights["anatomy"] * AnatomyLoss(spatial_dims)(fused, sources)
            + weights["edge"] * EdgeTransferLoss(spatial_dims)(fused, sources)
        )
        torch.testing.assert_close(total, expected)
        self.assertEqual(set(loss.last_terms), set(FusionLoss.TERMS))
        self.assertTrue(all(v.item() > 0 for v in loss.last_terms.values()))
        total.backward()
        self.assertGreater(fused.grad.abs().sum().item(), 0.0)

    def test_trainer_call_and_skipped_terms(self):
        sources = torch.rand(3, 2, 16, 16)
        loss = FusionLoss(2, gradient_weight=0.0, structure_weight=0.0, contrast_weight=0.0, reduction="none")
        values = loss(sources[:, :1], sources)  # loss_function(pred, targets); no chroma -> no colour term
        self.assertEqual(values.shape, (3,))
        torch.testing.assert_close(values, IntensityLoss(2, reduction="none")(sources[:, :1], sources))
        self.assertEqual(loss.last_terms["gradient"].abs().sum().item(), 0.0)
        self.assertEqual(loss.last_terms["color"].abs().sum().item(), 0.0)
        self.assertEqual(loss.last_terms["information"].abs().sum().item(), 0.0)  # off by default

    def test_perfect_fusion_of_identical_sources(self):
        img = texture(2)
        loss = FusionLoss(2, win_size=WIN)
        self.assertLess(loss(img, torch.cat([img, img], 1), chroma=torch.full((1, 2, 24, 24), 0.5)).item(), 1e-4)

    @parameterized.expand(
        [
            [{"spatial_dims": 4}],
            [{"intensity_weight": -1.0}],
            [{f"{term}_weight": 0.0 for term in FusionLoss.TERMS}],
            [{"intensity_target": "mean"}],
            [{"win_size": 4}],
            [{"structure_component": "luminance"}],
            [{"reduction": "median"}],
        ]
    )
    def test_bad_arguments(self, kwargs):
        with self.assertRaises(ValueError):
            FusionLoss(**kwargs)

    def test_bad_shapes(self):
        loss = FusionLoss(2, win_size=WIN)
        cases = {
            "fused has 2 channels": (torch.rand(1, 2, 16, 16), torch.rand(1, 2, 16, 16)),
            "3D input to a 2D loss": (torch.rand(1, 1, 16, 16, 16), torch.rand(1, 2, 16, 16, 16)),
            "spatial mismatch": (torch.rand(1, 1, 16, 16), torch.rand(1, 2, 16, 12)),
            "batch mismatch": (torch.rand(2, 1, 16, 16), torch.rand(1, 2, 16, 16)),
        }
        for what, (fused, sources) in cases.items():
            with self.subTest(what), self.assertRaises(ValueError):
                loss(fused, sources)
        with self.assertRaises(ValueError):
            loss(torch.rand(1, 1, 16, 16), torch.rand(1, 2, 16, 16), chroma=torch.rand(1, 2, 8, 8))


if __name__ == "__main__":
    unittest.main()
