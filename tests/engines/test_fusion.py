from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import from_engine
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler
from parameterized import parameterized
from PIL import Image

from mmif.engines.fusion import (
    FusionLossAdapter,
    FusionLossTermsHandler,
    FusionPanelSaver,
    FusionPrepareBatch,
    FusionScore,
    loss_terms_of,
)
from mmif.inferers import FusionInferer
from mmif.losses import FusionLoss
from mmif.metrics import FusionMetricHandler
from mmif.networks.feature_extractor import DiffusionFeatureExtractor
from mmif.networks.fusion_model import FusionModel
from mmif.networks.fusion_net import DiffusionFeatureFusionNet


def tiny_model(spatial_dims: int = 2, image_skip: bool = True, seed: int = 0, **head_kwargs) -> FusionModel:
    torch.manual_seed(seed)
    unet = DiffusionModelUNet(
        spatial_dims, 1, 1, channels=(8, 8, 8), attention_levels=(False, False, False), num_res_blocks=1,
        norm_num_groups=8,
    )
    extractor = DiffusionFeatureExtractor(unet, DDPMScheduler(1000), timesteps=(5, 10, 20), seed=0)
    head = DiffusionFeatureFusionNet(
        spatial_dims, extractor.feature_channels, num_timesteps=3, hidden_channels=8, image_skip=image_skip,
        **head_kwargs,
    )
    return FusionModel(extractor, head)


def smooth_sources(b: int, m: int, shape, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b * m, 1, *[s // 4 for s in shape]), generator=g)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return torch.nn.functional.interpolate(x, size=shape, mode=mode, align_corners=False).reshape(b, m, *shape)


class TestFusionModel(unittest.TestCase):
    @parameterized.expand([(2, 2, (32, 32)), (2, 3, (32, 24)), (3, 2, (16, 16, 16)), (3, 3, (16, 12, 8))])
    def test_shapes_and_only_head_gets_gradients(self, spatial_dims, m, shape):
        model = tiny_model(spatial_dims).train()
        self.assertFalse(model.extractor.training)
        self.assertFalse(model.extractor.unet.training)
        x = smooth_sources(2, m, shape)
        fused = model(x)
        self.assertEqual(tuple(fused.shape), (2, 1, *shape))
        self.assertTrue(0.0 <= float(fused.min()) and float(fused.max()) <= 1.0)
        fused.mean().backward()
        self.assertTrue(all(p.grad is None and not p.requires_grad for p in model.extractor.parameters()))
        head_grads = [p.grad for p in model.head.parameters()]
        self.assertTrue(all(g is not None for g in head_grads))
        self.assertGreater(sum(float(g.abs().sum()) for g in head_grads), 0.0)
        trainable = {id(p) for p in model.trainable_parameters()}
        self.assertEqual(trainable, {id(p) for p in model.head.parameters()})

    @parameterized.expand([(2, 2, (32, 32)), (3, 3, (16, 12, 8))])
    def test_source_weighting_head_gets_the_sources(self, spatial_dims, m, shape):
        model = tiny_model(spatial_dims, image_skip=False, output_mode="source_weights", selection="relaxed",
                           correction=False).eval()
        self.assertTrue(model.pass_image)
        x = smooth_sources(1, m, shape)
        with torch.no_grad():
            fused = model(x)
        # relaxed selection in eval mode: every voxel is one of the sources' voxels
        self.assertTrue(bool((fused == x).any(dim=1).all()))
        model.train()
        fused_train = model(x)
        fused_train.mean().backward()
        self.assertIsNotNone(model.head.head.logit.conv.weight.grad)

    def test_mismatched_head_is_rejected(self):
        model = tiny_model()
        head = DiffusionFeatureFusionNet(2, (8, 16, 8), num_timesteps=3)
        with self.assertRaisesRegex(ValueError, "FusionModel"):
            FusionModel(model.extractor, head)
        with self.assertRaisesRegex(ValueError, "FusionModel"):
            head = DiffusionFeatureFusionNet(2, model.extractor.feature_channels, num_timesteps=2)
            FusionModel(model.extractor, head)

    def test_checkpoint_round_trip(self):
        a = tiny_model(seed=0).eval()
        torch.manual_seed(1)
        other_head = DiffusionFeatureFusionNet(2, a.extractor.feature_channels, 3, hidden_channels=8, image_skip=True)
        b = FusionModel(a.extractor, other_head).eval()  # same frozen extractor, another head
        x = smooth_sources(1, 2, (32, 32))
        with torch.no_grad():
            self.assertGreater(float((a(x) - b(x)).abs().max()), 0.0)
        tmp = Path(tempfile.mkdtemp())
        try:
            a.save_checkpoint(tmp / "head.pt")
            ckpt = torch.load(tmp / "head.pt", weights_only=True)
            self.assertEqual(set(ckpt), {"head", "config"})
            self.assertEqual(ckpt["config"]["timesteps"], [5, 10, 20])
            b.load_checkpoint(tmp / "head.pt")
            torch.testing.assert_close(a(x), b(x))
            # a CheckpointSaver file {"model": head state} loads too
            torch.save({"model": a.head.state_dict()}, tmp / "saver.pt")
            b.load_checkpoint(tmp / "saver.pt")
            with self.assertRaisesRegex(ValueError, "timesteps"):
                b.load_checkpoint({"head": ckpt["head"], "config": {**ckpt["config"], "timesteps": [1, 2, 3]}})
            with self.assertRaises(FileNotFoundError):
                b.load_checkpoint(tmp / "missing.pt")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_inferer_is_deterministic_and_windows_agree_on_small_inputs(self):
        model = tiny_model().eval()
        x = smooth_sources(1, 2, (28, 30))
        with torch.no_grad():
            a = FusionInferer(seed=0, divisor=model.extractor.size_multiple)(x, model)
            b = FusionInferer(seed=0, divisor=model.extractor.size_multiple)(x, model)
            w = FusionInferer(roi_size=32, seed=0, divisor=model.extractor.size_multiple)(x, model)
            big = FusionInferer(roi_size=16, seed=0, divisor=4)(smooth_sources(1, 2, (40, 36)), model)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(w, a, rtol=0, atol=0)
        self.assertEqual(tuple(big.shape), (1, 1, 40, 36))


class TestStage2Engine(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _data(self, n=4, shape=(32, 32)):
        image = smooth_sources(n, 2, shape, seed=3)
        chroma = torch.full((n, 2, *shape), 0.5)
        chroma[1::2, 1] = 0.7  # every other sample is colour
        return [{"image": image[i], "chroma": chroma[i], "is_color": bool(i % 2)} for i in range(n)]

    def test_prepare_batch(self):
        batch = {"image": torch.rand(2, 2, 8, 8), "chroma": torch.rand(2, 2, 8, 8), "is_color": torch.tensor([1, 0])}
        inputs, targets = FusionPrepareBatch()(batch)
        self.assertIs(inputs, targets)
        inputs, targets = FusionPrepareBatch(extra_target_keys=["chroma", "is_color"])(batch)
        self.assertEqual(set(targets), {"sources", "chroma", "is_color"})
        torch.testing.assert_close(targets["sources"], batch["image"])
        with self.assertRaisesRegex(ValueError, "FusionPrepareBatch"):
            FusionPrepareBatch()({"label": torch.rand(1)})

    def test_training_lowers_the_loss_and_logs_terms(self):
        torch.manual_seed(0)
        model = tiny_model()
        data = self._data()
        loader = torch.utils.data.DataLoader(data, batch_size=4)
        loss = FusionLossAdapter(FusionLoss(2))
        optimizer = torch.optim.Adam(model.trainable_parameters(), lr=5e-3)
        terms = FusionLossTermsHandler(loss)
        losses: list[float] = []
        trainer = SupervisedTrainer(
            device="cpu", max_epochs=8, train_data_loader=loader, network=model, optimizer=optimizer,
            loss_function=loss, prepare_batch=FusionPrepareBatch(extra_target_keys=["chroma", "is_color"]),
            train_handlers=[terms],
        )
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
        unet_before = [p.clone() for p in model.extractor.parameters()]
        trainer.run()
        self.assertLess(losses[-1], 0.9 * losses[0], losses)
        for name in ("intensity", "gradient", "structure", "contrast", "color"):
            self.assertIn(f"loss_{name}", trainer.state.metrics)
        self.assertGreater(trainer.state.metrics["loss_color"], 0.0)  # colour samples were in the batch
        self.assertTrue(all(torch.equal(a, b) for a, b in zip(unet_before, model.extractor.parameters())))
        self.assertEqual(loss_terms_of(loss).keys(), loss.loss.last_terms.keys())

    def test_validation_metrics_score_and_panel(self):
        model = tiny_model().eval()
        loader = torch.utils.data.DataLoader(self._data(), batch_size=2)
        pair = from_engine(["pred", "label"])
        metrics = {
            "val_qabf": FusionMetricHandler("Qabf", output_transform=pair),
            "val_ssim": FusionMetricHandler("SSIM", output_transform=pair),
            "val_mi": FusionMetricHandler("MI", output_transform=pair),
            "val_vif": FusionMetricHandler("VIF", output_transform=pair, scales=1),
        }
        panel = FusionPanelSaver(self.tmp / "panels", max_samples=3)
        evaluator = SupervisedEvaluator(
            device="cpu", val_data_loader=loader, network=model, prepare_batch=FusionPrepareBatch(),
            inferer=FusionInferer(seed=0), key_val_metric={"val_fusion_score": FusionScore(metrics)},
            additional_metrics=metrics, val_handlers=[panel],
        )
        evaluator.run()
        m = evaluator.state.metrics
        expected = np.mean([m["val_qabf"], m["val_ssim"] / 2.0, m["val_mi"] / (8 * np.log(2)), m["val_vif"]])
        self.assertAlmostEqual(m["val_fusion_score"], float(expected), places=6)
        self.assertTrue(all(np.isfinite(v) for v in m.values()))
        pic = np.asarray(Image.open(panel.last_path))
        self.assertEqual(pic.shape, (3 * 32, 3 * 32, 3))  # 3 rows; 2 sources + fused
        self.assertGreater(np.abs(pic[32:64, 64:, 0].astype(int) - pic[32:64, 64:, 2]).mean(), 1)  # row 2 is colour

    def test_score_of_a_perfect_fusion_is_higher(self):
        # the score of fusing two identical sources by copying one is higher than that of a constant image
        x = smooth_sources(2, 1, (32, 32)).repeat(1, 2, 1, 1)

        def score(pred):
            metrics = {n.lower(): FusionMetricHandler(n, save_details=False) for n in ("Qabf", "SSIM")}
            s = FusionScore(metrics)
            for metric in metrics.values():
                metric.reset()
                metric.update((pred, x))
            return s.compute()

        self.assertGreater(score(x[:, :1]), score(torch.full_like(x[:, :1], 0.5)) + 0.5)

    def test_score_needs_a_scaled_metric(self):
        with self.assertRaisesRegex(ValueError, "FusionScore"):
            FusionScore({"val_psnr": FusionMetricHandler("PSNR")})


if __name__ == "__main__":
    unittest.main()
