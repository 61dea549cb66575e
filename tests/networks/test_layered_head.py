from __future__ import annotations

import unittest

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, uniform_filter

from mmif.data.phantom import make_phantom, to_display
from mmif.metrics import anatomy, function
from mmif.networks.fusion_net import DiffusionFeatureFusionNet
from mmif.networks.layered_head import RegionDetailHead, gaussian_lowpass, local_rms


def phantom_pair(size: int = 96) -> torch.Tensor:
    """(1, 2, size, size): the phantom's MRI and PET luminance in [0, 1] (black background)."""
    ph = make_phantom((size, size), modalities=("mri", "pet"), seed=1)
    pair = np.stack([to_display(m, ph[m]) for m in ("mri", "pet")])
    return torch.from_numpy(pair.astype(np.float32))[None]


def features_for(image: torch.Tensor, channels: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b, m, *spatial = image.shape
    return torch.rand(b, channels, *spatial, generator=g), torch.rand(b, m, channels, *spatial, generator=g)


def rule_reference(a: np.ndarray, b: np.ndarray, gain: float, sigma: float = 3.0, window: int = 7,
                   gain_prior: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """The rule a new head starts from, written independently with SciPy: region-energy selection, plus the detail
    layer of the source not selected, with the gain ``sigmoid(logit(gain) + gain_prior * (rms_7 of its detail - rms_7
    of the selected source's detail))``. Also returns the energy gap (ties are ambiguous)."""
    def rms(x):
        return np.sqrt(np.maximum(uniform_filter(x * x, window, mode="nearest"), 0))

    ea, eb = rms(a), rms(b)
    da = a - gaussian_filter(a, sigma, mode="nearest", truncate=3.0)
    db = b - gaussian_filter(b, sigma, mode="nearest", truncate=3.0)
    bias = np.log(gain / (1 - gain))

    def gain_of(detail, selected_detail):
        return 1 / (1 + np.exp(-(bias + gain_prior * (rms(detail) - rms(selected_detail)))))

    fused = np.where(ea >= eb, a + gain_of(db, da) * db, b + gain_of(da, db) * da)
    return np.clip(fused, 0, 1) * (np.maximum(a, b) > 0), np.abs(ea - eb)


class TestRegionDetailHead(unittest.TestCase):
    def test_new_head_is_region_selection_plus_detail_of_the_other_source(self):
        image = phantom_pair()
        head = RegionDetailHead(2, 4, initial_gain=0.25).eval()
        with torch.no_grad():
            fused = head(*features_for(image), image)[0, 0].double().numpy()
        a, b = image[0].double().numpy()
        expected, gap = rule_reference(a, b, 0.25)
        decided = gap > 1e-5  # away from exact energy ties, where float rounding may pick either source
        self.assertGreater(decided.mean(), 0.9)
        np.testing.assert_allclose(fused[decided], expected[decided], atol=1e-5)

    def test_background_black_in_every_source_stays_exactly_zero(self):
        image = phantom_pair()
        image[..., :20, :] = 0.0
        head = RegionDetailHead(2, 4)
        fused = head(*features_for(image), image)
        self.assertEqual(float(fused[..., :20, :].abs().max()), 0.0)
        self.assertGreater(float(fused[..., 20:, :].max()), 0.1)
        self.assertGreaterEqual(float(fused.min()), 0.0)
        self.assertLessEqual(float(fused.max()), 1.0)

    def test_detail_transfer_shows_the_mri_under_the_tracer(self):
        # MRI: fine stripes (the sulci) in a disk; PET: a large, smooth, brighter blob over half of it
        yy, xx = np.mgrid[:96, :96].astype(np.float64)
        disk = ((yy - 48) ** 2 + (xx - 48) ** 2) < 40**2
        a = disk * (0.35 + 0.15 * np.sin(xx * 2 * np.pi / 6))
        b = disk * (0.1 + 0.7 * np.exp(-((yy - 48) ** 2 + (xx - 30) ** 2) / (2 * 14.0**2)))
        image = torch.from_numpy(np.stack([a, b]).astype(np.float32))[None]
        head = RegionDetailHead(2, 4, initial_gain=0.9).eval()
        with torch.no_grad():
            fused = head(*features_for(image), image)[0, 0].numpy() * 255.0
        a, b = a * 255.0, b * 255.0
        selection = np.where(uniform_filter(a * a, 7) >= uniform_filter(b * b, 7), a, b)
        self.assertLess(anatomy(selection, [a, b]), 0.3)
        self.assertGreater(anatomy(fused, [a, b]), 0.6)
        self.assertGreater(function(fused, [a, b]), 0.8)

    def test_order_of_the_sources_does_not_matter(self):
        image = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(3))
        x, per = features_for(image)
        head = RegionDetailHead(2, 4)
        torch.nn.init.normal_(head.selection_logit.conv.weight, std=0.5)
        torch.nn.init.normal_(head.gain_logit.conv.weight, std=0.5)
        perm = torch.tensor([2, 0, 1])
        out = head(x, per, image)
        out_perm = head(x, per[:, perm], image[:, perm])
        torch.testing.assert_close(out, out_perm, atol=1e-6, rtol=0)

    def test_3d_and_gradients_reach_both_maps(self):
        image = torch.rand(1, 2, 12, 10, 8, generator=torch.Generator().manual_seed(4))
        x, per = features_for(image)
        head = RegionDetailHead(3, 4).train()
        out = head(x, per, image)
        self.assertEqual(tuple(out.shape), (1, 1, 12, 10, 8))
        (out * torch.linspace(0, 1, 8)).sum().backward()
        for layer in (head.selection_logit, head.gain_logit):
            self.assertGreater(float(layer.conv.weight.grad.abs().sum()), 0.0)
        self.assertIsNotNone(head.prior_weight.grad)

    def test_filters(self):
        image = torch.rand(1, 2, 30, 30, generator=torch.Generator().manual_seed(5))
        low = gaussian_lowpass(image, 2.0)
        ref = gaussian_filter(image[0, 0].double().numpy(), 2.0, mode="nearest", truncate=3.0)
        np.testing.assert_allclose(low[0, 0].numpy(), ref, atol=1e-5)
        rms = local_rms(image, 5)
        ref = np.sqrt(uniform_filter(image[0, 1].double().numpy() ** 2, 5, mode="nearest"))
        np.testing.assert_allclose(rms[0, 1].numpy(), ref, atol=1e-5)

    def test_bad_arguments(self):
        for kwargs in ({"out_channels": 2}, {"detail_sigma": 0}, {"energy_window": 4}, {"prior_weight": 0},
                       {"initial_gain": 1.0}):
            with self.subTest(**kwargs), self.assertRaises(ValueError):
                RegionDetailHead(2, 4, **kwargs)

    def test_in_the_fusion_net(self):
        net = DiffusionFeatureFusionNet(2, (8, 4), 1, output_mode="region_detail", hidden_channels=4)
        self.assertTrue(net.uses_image)
        image = torch.rand(1, 2, 16, 16)
        feats = [torch.rand(1, 2, 1, 8, 8, 8), torch.rand(1, 2, 1, 4, 16, 16)]
        self.assertEqual(tuple(net(feats, image).shape), (1, 1, 16, 16))
        with self.assertRaises(ValueError):
            net(feats)


if __name__ == "__main__":
    unittest.main()
