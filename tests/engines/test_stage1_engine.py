"""Stage I engine pieces: PrepareBatch targets, x0 estimates, the validation inferer and datalist helpers."""

from __future__ import annotations

import os
import tempfile
import time
import unittest

import torch
from monai.networks.schedulers import DDPMScheduler
from parameterized import parameterized

from mmif.engines.diffusion import (
    DiffusionReconstructionInferer,
    DiffusionReconstructionPrepareBatch,
    predict_x0,
)
from mmif.engines.stage1_data import latest_checkpoint, split_sources


class TestPrepareBatch(unittest.TestCase):
    @parameterized.expand([("sample",), ("epsilon",), ("v_prediction",)])
    def test_target_follows_prediction_type(self, prediction_type):
        sched = DDPMScheduler(num_train_timesteps=50, prediction_type=prediction_type)
        prep = DiffusionReconstructionPrepareBatch(sched)
        images = torch.rand(4, 1, 8, 8) * 2 - 1
        torch.manual_seed(0)
        inputs, target, args, kwargs = prep({"image": images}, device="cpu")
        self.assertTrue(torch.equal(inputs, images))
        self.assertEqual(args, ())
        noise, t = kwargs["noise"], kwargs["timesteps"]
        self.assertEqual(tuple(t.shape), (4,))
        self.assertTrue(((t >= 0) & (t < 50)).all())
        a = sched.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        expected = {
            "sample": images,
            "epsilon": noise,
            "v_prediction": a.sqrt() * noise - (1 - a).sqrt() * images,
        }[prediction_type]
        torch.testing.assert_close(target, expected)

    def test_explicit_type_overrides_scheduler(self):
        prep = DiffusionReconstructionPrepareBatch(DDPMScheduler(50, prediction_type="epsilon"), "sample")
        images = torch.rand(2, 1, 8, 8)
        _, target, _, _ = prep({"image": images})
        self.assertTrue(torch.equal(target, images))
        with self.assertRaises(ValueError):
            DiffusionReconstructionPrepareBatch(DDPMScheduler(50), "x0")


class TestPredictX0(unittest.TestCase):
    @parameterized.expand([("sample",), ("epsilon",), ("v_prediction",)])
    def test_perfect_prediction_recovers_clean_image(self, prediction_type):
        sched = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)
        x0 = torch.rand(3, 1, 8, 8) * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.tensor([5, 300, 900])
        noisy = sched.add_noise(x0, noise, t)
        out = {"sample": x0, "epsilon": noise, "v_prediction": sched.get_velocity(x0, noise, t)}[prediction_type]
        torch.testing.assert_close(predict_x0(out, noisy, t, sched), x0, atol=1e-4, rtol=1e-4)


class _Identity(torch.nn.Module):
    def forward(self, x, timesteps):
        return x


class TestValidationInferer(unittest.TestCase):
    def test_shape_determinism_and_noise_level(self):
        sched = DDPMScheduler(num_train_timesteps=1000, prediction_type="sample")
        inferer = DiffusionReconstructionInferer(sched, timesteps=(5, 500), seed=1)
        clean = torch.zeros(2, 1, 16, 16)
        out = inferer(clean, _Identity())  # an identity "network" returns the noisy input as its x0 estimate
        self.assertEqual(tuple(out.shape), (2, 2, 16, 16))
        self.assertTrue(torch.equal(out, inferer(clean, _Identity())))
        self.assertLess(out[:, 0].abs().mean(), out[:, 1].abs().mean())
        noisy, t = inferer.add_noise(clean)
        self.assertEqual(t.tolist(), [5, 500, 5, 500])
        torch.testing.assert_close(noisy.reshape(2, 2, 16, 16).clamp(-1, 1), out)
        with self.assertRaises(ValueError):
            DiffusionReconstructionInferer(sched, timesteps=(1000,))


class TestStage1Data(unittest.TestCase):
    def test_split_sources(self):
        entries = [
            {"image": ["/d/MRI_CT/MRI/1.png", "/d/MRI_CT/CT/1.png"], "modalities": ["MRI", "CT"], "task": "MRI_CT"},
            {"image": ["/d/MRI_PET/MRI/1.png", "/d/MRI_PET/PET/1.png"], "modalities": ["MRI", "PET"]},
            {"image": ["/d/MRI_CT/MRI/1.png", "/d/MRI_CT/CT/2.png"], "modalities": ["MRI", "CT"]},
        ]
        out = split_sources(entries)
        self.assertEqual([e["modality"] for e in out], ["MRI", "CT", "MRI", "PET", "CT"])  # duplicate MRI dropped
        self.assertEqual(out[0], {"image": ["/d/MRI_CT/MRI/1.png"], "modalities": ["MRI"], "modality": "MRI",
                                  "task": "MRI_CT"})
        self.assertEqual(len(split_sources(entries, dedupe=False)), 6)
        self.assertEqual([e["modality"] for e in split_sources(entries, max_samples=2)], ["MRI", "MRI"])
        with self.assertRaises(ValueError):
            split_sources([{"image": ["a", "b"], "modalities": ["MRI"]}])

    def test_latest_checkpoint(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertIsNone(latest_checkpoint(tmp))
            names = ["stage1_checkpoint_iteration=20.pt", "stage1_checkpoint_iteration=10.pt", "x.txt"]
            for i, name in enumerate(names):
                path = os.path.join(tmp, name)
                open(path, "w").close()
                os.utime(path, (time.time() + i, time.time() + i))
            self.assertEqual(os.path.basename(latest_checkpoint(tmp)), "stage1_checkpoint_iteration=10.pt")


if __name__ == "__main__":
    unittest.main()
