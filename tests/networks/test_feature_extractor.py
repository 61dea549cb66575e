"""DiffusionFeatureExtractor: shapes, channels, strides, determinism, no grad, odd sizes, weight loading."""

from __future__ import annotations

import os
import tempfile
import unittest

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDPMScheduler
from monai.utils import set_determinism
from parameterized import parameterized

from mmif.errors import InputError
from mmif.networks.feature_extractor import DiffusionFeatureExtractor, load_stage1_weights


def _unet(spatial_dims: int, channels=(8, 16, 16)) -> DiffusionModelUNet:
    set_determinism(seed=0)
    net = DiffusionModelUNet(
        spatial_dims=spatial_dims,
        in_channels=1,
        out_channels=1,
        channels=channels,
        attention_levels=(False,) * (len(channels) - 1) + (True,),
        num_res_blocks=1,
        norm_num_groups=8,
        num_head_channels=8,
    )
    set_determinism(seed=None)
    return net


def _extractor(spatial_dims: int = 2, **kwargs) -> DiffusionFeatureExtractor:
    return DiffusionFeatureExtractor(_unet(spatial_dims), DDPMScheduler(num_train_timesteps=100), **kwargs)


SHAPE_CASES = [
    # spatial_dims, M, spatial, timesteps
    (2, 2, (32, 32), (5, 10, 20)),
    (2, 3, (32, 32), (5, 10, 20)),
    (2, 2, (33, 30), (7,)),  # odd sizes: padded inside, cropped back
    (3, 2, (16, 16, 16), (5, 10)),
    (3, 3, (15, 16, 17), (5, 10, 20)),
]


class TestDiffusionFeatureExtractor(unittest.TestCase):
    @parameterized.expand(SHAPE_CASES)
    def test_shapes_channels_strides(self, spatial_dims, m, spatial, timesteps):
        ext = _extractor(spatial_dims, timesteps=timesteps)
        # (8, 16, 16) UNet: decoder levels coarsest -> finest have 16, 16, 8 channels at strides 4, 2, 1
        self.assertEqual(ext.feature_channels, (16, 16, 8))
        self.assertEqual(ext.feature_strides, (4, 2, 1))
        image = torch.rand(1, m, *spatial)
        feats = ext(image)
        self.assertEqual(len(feats), 3)
        for f, c, s in zip(feats, ext.feature_channels, ext.feature_strides):
            expected = (1, m, len(timesteps), c) + tuple(-(-n // s) for n in spatial)
            self.assertEqual(tuple(f.shape), expected)
            self.assertTrue(torch.isfinite(f).all())

    def test_levels_middle_and_layer(self):
        ext = _extractor(2, feature_levels=[-1, "middle", 0])
        self.assertEqual(ext.levels, ("middle", 0, 2))
        self.assertEqual(ext.feature_channels, (16, 16, 8))
        self.assertEqual(ext.feature_strides, (4, 4, 1))
        whole = _extractor(2, feature_levels=[0], layer="")  # the whole block output is upsampled
        self.assertEqual(whole.feature_strides, (2,))

    def test_features_match_hooks_on_plain_unet(self):
        """The finest feature equals the first decoder ResBlock output of the UNet run on the same noisy input."""
        ext = _extractor(2, timesteps=(10,), feature_levels=[2])
        image = torch.rand(1, 2, 32, 32)
        noise = torch.randn(1, 2, 1, 32, 32)
        feat = ext(image, noise=noise)[0]
        captured = []
        handle = ext.unet.up_blocks[2].resnets[0].register_forward_hook(lambda m, a, o: captured.append(o))
        x0 = (image * 2 - 1).reshape(2, 1, 32, 32)
        t = torch.full((2,), 10, dtype=torch.long)
        noisy = ext.scheduler.add_noise(x0, noise.reshape(2, 1, 32, 32), t)
        with torch.no_grad():
            ext.unet(noisy, t)
        handle.remove()
        torch.testing.assert_close(feat[0, :, 0], captured[0])

    def test_unet_left_usable(self):
        """No hook stays on the UNet: its own forward still returns the full output."""
        ext = _extractor(2)
        ext(torch.rand(1, 2, 32, 32))
        with torch.no_grad():
            out = ext.unet(torch.rand(2, 1, 32, 32), torch.tensor([1, 2]))
        self.assertEqual(tuple(out.shape), (2, 1, 32, 32))

    def test_deterministic_and_seed_dependent(self):
        image = torch.rand(1, 2, 32, 32)
        a = _extractor(2, seed=3)(image)
        b = _extractor(2, seed=3)(image)
        c = _extractor(2, seed=4)(image)
        for fa, fb, fc in zip(a, b, c):
            self.assertTrue(torch.equal(fa, fb))
            self.assertFalse(torch.equal(fa, fc))

    @parameterized.expand([[2], [3]])
    def test_features_independent_of_batch_and_source_order(self, spatial_dims):
        ext = _extractor(spatial_dims, seed=5)
        size = (16,) * spatial_dims
        image = torch.rand(1, 2, *size)
        alone = ext(image)
        batch = ext(torch.cat([torch.rand(2, 2, *size), image]))  # the sample third in a batch of three
        swapped = ext(image.flip(1))  # its sources in the other order
        for fa, fb, fs in zip(alone, batch, swapped):
            torch.testing.assert_close(fb[2:], fa, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(fs.flip(1), fa, rtol=1e-5, atol=1e-5)

    def test_timesteps_differ(self):
        feats = _extractor(2, timesteps=(5, 90))(torch.rand(1, 2, 32, 32))
        self.assertFalse(torch.allclose(feats[-1][:, :, 0], feats[-1][:, :, 1]))

    def test_no_grad_frozen_eval(self):
        ext = _extractor(2)
        ext.train()
        self.assertFalse(ext.unet.training)
        self.assertTrue(all(not p.requires_grad for p in ext.unet.parameters()))
        image = torch.rand(1, 2, 32, 32, requires_grad=True)
        feats = ext(image)
        self.assertTrue(all(not f.requires_grad for f in feats))

    def test_input_range(self):
        image = torch.rand(1, 2, 32, 32)
        a = _extractor(2)(image)
        b = _extractor(2, input_range=(0, 255))(image * 255)
        for fa, fb in zip(a, b):
            torch.testing.assert_close(fa, fb, atol=1e-4, rtol=1e-4)

    @parameterized.expand(
        [
            ({"timesteps": (100,)},),
            ({"timesteps": ()},),
            ({"feature_levels": [3]},),
            ({"feature_levels": ["bottom"]},),
            ({"feature_levels": [0, 0]},),
            ({"layer": "resnets.9"},),
            ({"input_range": (1, 1)},),
            ({"padding_mode": "wrap"},),
        ]
    )
    def test_bad_arguments(self, kwargs):
        with self.assertRaises(ValueError):
            _extractor(2, **kwargs)

    def test_bad_inputs(self):
        ext = _extractor(2)
        with self.assertRaises(ValueError):
            ext(torch.rand(2, 32, 32))
        with self.assertRaises(ValueError):
            ext(torch.rand(1, 2, 32, 32), noise=torch.rand(1, 2, 1, 32, 32))
        with self.assertRaises(ValueError):
            DiffusionFeatureExtractor(
                DiffusionModelUNet(2, 2, 1, channels=(8, 8), attention_levels=(False, False), norm_num_groups=8),
                DDPMScheduler(100),
            )


class TestLoadStage1Weights(unittest.TestCase):
    def test_plain_and_checkpoint_dicts(self):
        src = _unet(2)
        with tempfile.TemporaryDirectory() as tmp:
            plain = os.path.join(tmp, "model.pt")
            ckpt = os.path.join(tmp, "checkpoint.pt")
            torch.save(src.state_dict(), plain)
            torch.save({"network": src.state_dict(), "optimizer": {"state": {}, "param_groups": []}}, ckpt)
            for path in (plain, ckpt):
                dst = DiffusionModelUNet(2, 1, 1, channels=(8, 16, 16), attention_levels=(False, False, True),
                                         num_res_blocks=1, norm_num_groups=8, num_head_channels=8)
                load_stage1_weights(dst, path)
                for k, v in src.state_dict().items():
                    torch.testing.assert_close(dst.state_dict()[k], v)

    def test_errors_name_the_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaises(InputError):
                load_stage1_weights(_unet(2), os.path.join(tmp, "missing.pt"))
            wrong = os.path.join(tmp, "wrong.pt")
            torch.save(_unet(2, channels=(8, 8, 8)).state_dict(), wrong)
            with self.assertRaisesRegex(InputError, "wrong.pt"):
                load_stage1_weights(_unet(2), wrong)
            junk = os.path.join(tmp, "junk.pt")
            with open(junk, "w") as f:
                f.write("not a checkpoint")
            with self.assertRaises(InputError):
                load_stage1_weights(_unet(2), junk)


if __name__ == "__main__":
    unittest.main()
