from __future__ import annotations

import unittest

import numpy as np
import torch

from mmif.losses import AnatomyLoss, EdgeTransferLoss, FusionLoss, IntensityLoss
from mmif.losses.filters import gaussian_smooth
from mmif.metrics import anatomy


def stripes_under_a_blob(size: int = 96) -> torch.Tensor:
    """(1, 2, size, size): an MRI of fine stripes in a disk, and a smooth brighter tracer blob over part of it."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    disk = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.42 * size) ** 2
    mri = disk * (0.35 + 0.15 * np.sin(xx * 2 * np.pi / 6))
    tracer = disk * (0.1 + 0.7 * np.exp(-((yy - size / 2) ** 2 + (xx - 0.3 * size) ** 2) / (2 * (0.15 * size) ** 2)))
    return torch.from_numpy(np.stack([mri, tracer]).astype(np.float32))[None]


class TestAnatomyLoss(unittest.TestCase):
    def setUp(self):
        self.sources = stripes_under_a_blob()
        self.loss = AnatomyLoss(reduction="none")

    def test_orders_fusions_as_the_anatomy_metric_does(self):
        a, b = self.sources[:, :1], self.sources[:, 1:]
        fusions = {"mri": a, "max": self.sources.amax(dim=1, keepdim=True), "tracer": b,
                   "tracer+detail": (b + a - a.mean()).clamp(0, 1)}
        losses = {k: float(self.loss(f, self.sources)) for k, f in fusions.items()}
        scores = {k: anatomy(f[0, 0].numpy() * 255, [s.numpy() * 255 for s in self.sources[0]])
                  for k, f in fusions.items()}
        self.assertLess(losses["mri"], 1e-4)
        self.assertGreater(losses["max"], 0.3)
        order_loss = sorted(losses, key=losses.get)
        order_metric = sorted(scores, key=scores.get, reverse=True)
        self.assertEqual(order_loss, order_metric)

    def test_no_function_region_contributes_nothing(self):
        a = self.sources[:, :1]
        darker = torch.cat([a, 0.5 * a], dim=1)  # the second source never outshines the first
        self.assertEqual(float(self.loss(darker.amax(1, keepdim=True) * 0.3, darker).abs().max()), 0.0)

    def test_gradient_pushes_towards_the_mri_edges(self):
        fused = self.sources.amax(dim=1, keepdim=True).clone().requires_grad_(True)
        before = float(self.loss(fused, self.sources))
        opt = torch.optim.Adam([fused], lr=0.01)
        for _ in range(20):
            opt.zero_grad()
            self.loss(fused, self.sources).sum().backward()
            opt.step()
        self.assertLess(float(self.loss(fused, self.sources)), before - 0.05)

    def test_3d_and_three_sources(self):
        vol = torch.rand(1, 3, 20, 18, 16, generator=torch.Generator().manual_seed(0))
        vol[:, 1:] = vol[:, 1:] * 0.2 + 0.6  # bright, flat functional sources
        value = AnatomyLoss(3)(vol[:, :1], vol)
        self.assertLess(float(value), 1e-4)
        self.assertGreater(float(AnatomyLoss(3)(vol[:, 1:2], vol)), 0.3)

    def test_in_the_fusion_loss(self):
        loss = FusionLoss(anatomy_weight=1.0)
        loss(self.sources.amax(1, keepdim=True), self.sources)
        self.assertGreater(float(loss.last_terms["anatomy"]), 0.3)
        self.assertEqual(float(FusionLoss()(self.sources[:, :1], self.sources) * 0), 0.0)
        self.assertEqual(float(FusionLoss().weights["anatomy"]), 0.0)


class TestEdgeTransferLoss(unittest.TestCase):
    def test_copies_score_zero_and_blur_loses_edges(self):
        sources = stripes_under_a_blob()
        loss = EdgeTransferLoss(reduction="none")
        same = torch.cat([sources[:, :1], sources[:, :1]], dim=1)
        self.assertLess(float(loss(sources[:, :1], same)), 1e-4)
        sharp = float(loss(sources.amax(dim=1, keepdim=True), sources))
        blurred = float(loss(gaussian_smooth(sources.amax(dim=1, keepdim=True), 9, 2.0), sources))
        self.assertGreater(blurred, sharp + 0.1)
        flat = torch.full_like(sources, 0.5)
        self.assertEqual(float(loss(sources[:, :1], flat)), 0.0)  # no source edge: nothing to keep


class TestLowPassIntensity(unittest.TestCase):
    def test_detail_on_top_of_the_target_costs_little_under_the_low_pass(self):
        sources = stripes_under_a_blob()
        target = sources.amax(dim=1, keepdim=True)
        detailed = target + 0.1 * torch.sin(torch.arange(96.0) * 2 * torch.pi / 4)
        full, low = IntensityLoss(), IntensityLoss(lowpass_sigma=4.0)
        # the detail costs under the full-resolution term, hardly anything under the low-pass
        cost_full = float(full(detailed, sources)) - float(full(target, sources))
        cost_low = abs(float(low(detailed, sources)) - float(low(target, sources)))
        self.assertGreater(cost_full, 0.02)
        self.assertLess(cost_low, 0.15 * cost_full)
        with self.assertRaises(ValueError):
            IntensityLoss(lowpass_sigma=0.0)


if __name__ == "__main__":
    unittest.main()
