"""``FusionMetric`` (MONAI cumulative metric) and ``FusionMetricHandler`` (Ignite) on generated batches."""

from __future__ import annotations

import math
import unittest

import torch
from parameterized import parameterized

import mmif.metrics as M
from tests.metrics._helpers import one_thread_module, structured_image

setUpModule, tearDownModule = one_thread_module()


def _batch(b: int, spatial: tuple[int, ...], m: int = 2, seed: int = 0):
    """Sources ``(B, M, *spatial)`` and their average ``(B, 1, *spatial)`` in [0, 1] (not 8-bit exact)."""
    src = torch.stack([torch.stack([torch.from_numpy(structured_image(spatial, seed + 10 * i + k)) for k in range(m)])
                       for i in range(b)]).float() / 255.0
    src = (src + 0.3 / 255.0).clamp(0, 1)  # off the 8-bit grid, so quantize matters
    return src.mean(1, keepdim=True), src


class TestFusionMetric(unittest.TestCase):
    @parameterized.expand([("2d", (32, 32)), ("3d", (20, 18, 16))])
    def test_values_and_reduction_shapes(self, _, spatial):
        fused, src = _batch(3, spatial)
        metric = M.FusionMetric("SSIM", reduction="none")
        out = metric(fused, src)
        self.assertEqual(tuple(out.shape), (3, 1))
        for b in range(3):
            q = lambda x: torch.round(torch.clamp(x.double() * 255, 0, 255))  # noqa: E731
            want = M.ssim(q(fused[b, 0]), [q(src[b, 0]), q(src[b, 1])])
            self.assertAlmostEqual(float(out[b, 0]), want, places=6)
        metric(fused[:2], src[:2])
        self.assertEqual(tuple(metric.aggregate().shape), (5, 1))
        self.assertEqual(tuple(metric.aggregate("mean_batch").shape), (1,))
        self.assertAlmostEqual(float(metric.aggregate("mean")), float(metric.get_buffer().mean()), places=6)
        metric.reset()
        self.assertEqual(len(metric), 0)

    def test_quantize_and_scale(self):
        fused, src = _batch(2, (32, 32))
        exact = M.FusionMetric("MI", quantize=False, reduction="none")(fused, src)
        on_grid = M.FusionMetric("MI", reduction="none")(fused, src)
        self.assertEqual(tuple(exact.shape), (2, 1))
        # 255-scale input with input_scale=1 gives the same values
        same = M.FusionMetric("MI", input_scale=1.0, reduction="none")(fused * 255, src * 255)
        torch.testing.assert_close(same, on_grid)
        self.assertTrue(torch.isfinite(exact).all())

    def test_list_of_channel_first_and_options(self):
        fused, src = _batch(2, (32, 32))
        metric = M.FusionMetric("SSIM", data_range=255.0, reduction="mean")
        out = metric(list(fused), list(src))
        self.assertEqual(tuple(out.shape), (2, 1))
        self.assertGreater(float(metric.aggregate()), 0.5)  # sum of two SSIMs with the 8-bit range

    def test_nan_skipped_in_aggregate(self):
        fused, src = _batch(2, (32, 32))
        fused[0] = src[0, :1]  # F equals its first source: SCD undefined
        metric = M.FusionMetric("SCD", get_not_nans=True)
        values = metric(fused, src)
        self.assertTrue(math.isnan(float(values[0, 0])))
        mean, not_nans = metric.aggregate()
        self.assertEqual(float(not_nans), 1.0)
        self.assertAlmostEqual(float(mean), float(values[1, 0]), places=6)

    def test_no_reference_metric(self):
        fused, src = _batch(2, (32, 32))
        out = M.FusionMetric("EN", reduction="none")(fused, src)
        self.assertAlmostEqual(float(out[0, 0]), M.entropy(torch.round(fused[0, 0].double() * 255)), places=10)

    @parameterized.expand([
        ("fused_two_channels", (2, 2, 32, 32), (2, 2, 32, 32)),
        ("one_source", (2, 1, 32, 32), (2, 1, 32, 32)),
        ("spatial_mismatch", (2, 1, 32, 32), (2, 2, 32, 30)),
        ("batch_mismatch", (2, 1, 32, 32), (3, 2, 32, 32)),
        ("no_channel", (2, 32, 32), (2, 32, 32)),
    ])
    def test_bad_shapes(self, _, pred_shape, y_shape):
        with self.assertRaises(ValueError):
            M.FusionMetric("SSIM")(torch.rand(pred_shape), torch.rand(y_shape))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "FusionMetric"):
            M.FusionMetric("Sharpness")
        with self.assertRaisesRegex(ValueError, "FusionMetric"):
            M.FusionMetric("SSIM", input_scale=0)
        with self.assertRaisesRegex(ValueError, "0..255"):  # unquantized values out of range
            M.FusionMetric("SSIM", quantize=False)(torch.full((1, 1, 32, 32), 1.5), torch.rand(1, 2, 32, 32))


class TestIgniteHandler(unittest.TestCase):
    def test_engine_run(self):
        from ignite.engine import Engine
        from monai.handlers import from_engine

        batches = [_batch(2, (32, 32), seed=s) for s in (0, 100)]

        def step(engine, batch):
            fused, src = batch
            return {"pred": fused, "image": src}

        engine = Engine(step)
        M.FusionMetricHandler("MI", output_transform=from_engine(["pred", "image"])).attach(engine, "mi")
        for name, handler in M.fusion_metric_handlers(["SSIM", "Nabf"], prefix="val_",
                                                      output_transform=from_engine(["pred", "image"])).items():
            handler.attach(engine, name)
        engine.run(batches, max_epochs=1)
        per_sample = torch.cat([M.FusionMetric("MI", reduction="none")(f, s) for f, s in batches])
        self.assertAlmostEqual(engine.state.metrics["mi"], float(per_sample.mean()), places=6)
        self.assertEqual(tuple(engine.state.metric_details["mi"].shape), (4, 1))
        self.assertIn("val_SSIM", engine.state.metrics)
        self.assertGreaterEqual(engine.state.metrics["val_Nabf"], 0.0)

    def test_monai_evaluator_and_config(self):
        from monai.bundle import ConfigParser
        from monai.engines import SupervisedEvaluator

        class Average(torch.nn.Module):
            def forward(self, x):
                return x.mean(1, keepdim=True)

        data = [{"image": _batch(2, (32, 32), seed=s)[1]} for s in (0, 100)]
        handler = ConfigParser({"h": {
            "_target_": "mmif.metrics.FusionMetricHandler", "metric": "SSIM",
            "output_transform": "$monai.handlers.from_engine(['pred', 'image'])"}}).get_parsed_content("h")
        self.assertIsInstance(handler, M.FusionMetricHandler)
        evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=data, network=Average(),
                                        key_val_metric={"ssim": handler})
        evaluator.run()
        want = torch.cat([M.FusionMetric("SSIM", reduction="none")(d["image"].mean(1, keepdim=True), d["image"])
                          for d in data]).mean()
        self.assertAlmostEqual(evaluator.state.metrics["ssim"], float(want), places=6)


if __name__ == "__main__":
    unittest.main()
