from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from monai.networks import eval_mode
from monai.utils import set_determinism

from mmif.networks.fusion_net import DiffusionFeatureFusionNet, default_hidden_channels

# (spatial_dims, num_modalities, feature_channels, size of the finest level, extra kwargs)
SHAPE_CASES = [
    [2, 2, (8, 6, 4), 16, {}],
    [2, 3, (8, 6, 4), 16, {"hidden_channels": 4}],
    [2, 2, (4,), 12, {"norm": "batch"}],
    [2, 3, (8, 4), 10, {"norm": ("group", {"num_groups": 2}), "output_activation": "clamp"}],  # odd size: 5 -> 10
    [3, 2, (6, 4), 8, {}],
    [3, 3, (8, 6, 4), 8, {"hidden_channels": (8, 4, 4), "norm": "instance"}],
]


def make_features(batch, modalities, timesteps, channels, finest, spatial_dims, seed=0):
    """Coarsest-to-finest feature list (B, M, T, C_l, *spatial_l), level l at finest / 2^(L-1-l)."""
    g = torch.Generator().manual_seed(seed)
    levels = len(channels)
    return [
        torch.rand(batch, modalities, timesteps, c, *(max(finest >> (levels - 1 - i), 1),) * spatial_dims, generator=g)
        for i, c in enumerate(channels)
    ]


class TestDiffusionFeatureFusionNet(unittest.TestCase):
    def setUp(self):
        set_determinism(seed=0)

    def tearDown(self):
        set_determinism(None)

    @parameterized.expand(SHAPE_CASES)
    def test_shape_and_range(self, spatial_dims, modalities, channels, finest, kwargs):
        net = DiffusionFeatureFusionNet(spatial_dims, channels, num_timesteps=3, **kwargs)
        feats = make_features(2, modalities, 3, channels, finest, spatial_dims)
        with eval_mode(net):
            out = net(feats)
        self.assertEqual(out.shape, (2, 1, *(finest,) * spatial_dims))
        self.assertGreaterEqual(out.min().item(), 0.0)
        self.assertLessEqual(out.max().item(), 1.0)

    @parameterized.expand([[2, False], [3, False], [2, True], [3, True]])
    def test_gradients_reach_all_parameters(self, spatial_dims, image_skip):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(spatial_dims, channels, num_timesteps=2, image_skip=image_skip)
        feats = make_features(2, 2, 2, channels, 8, spatial_dims)
        image = torch.rand(2, 2, *(8,) * spatial_dims)
        net(feats, image).square().mean().backward()
        for name, p in net.named_parameters():
            self.assertIsNotNone(p.grad, name)
            self.assertGreater(p.grad.abs().sum().item(), 0.0, name)

    @parameterized.expand([[2, 2, False], [2, 3, True], [3, 3, False]])
    def test_invariant_to_modality_order(self, spatial_dims, modalities, image_skip):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(spatial_dims, channels, num_timesteps=2, image_skip=image_skip)
        feats = make_features(1, modalities, 2, channels, 8, spatial_dims)
        image = torch.rand(1, modalities, *(8,) * spatial_dims)
        perm = torch.arange(modalities - 1, -1, -1)
        with eval_mode(net):
            out = net(feats, image)
            out_perm = net([f[:, perm] for f in feats], image[:, perm])
        torch.testing.assert_close(out, out_perm, rtol=1e-5, atol=1e-6)
        # the modalities' contents do matter: replacing modality 1 by a copy of modality 0 changes the output
        copied = [f.clone() for f in feats]
        for f in copied:
            f[:, 1] = f[:, 0]
        image_copied = image.clone()
        image_copied[:, 1] = image[:, 0]
        with eval_mode(net):
            out_other = net(copied, image_copied)
        self.assertGreater((out - out_other).abs().max().item(), 1e-4)

    def test_image_skip_changes_output(self):
        channels = (4,)
        net = DiffusionFeatureFusionNet(2, channels, num_timesteps=1, image_skip=True)
        feats = make_features(1, 2, 1, channels, 8, 2)
        with eval_mode(net):
            a = net(feats, torch.zeros(1, 2, 8, 8))
            b = net(feats, torch.ones(1, 2, 8, 8))
        self.assertGreater((a - b).abs().max().item(), 1e-4)

    @parameterized.expand([[2, 2], [2, 3], [3, 2], [3, 3]])
    def test_source_weights_mode(self, spatial_dims, modalities):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(spatial_dims, channels, num_timesteps=2, output_mode="source_weights")
        self.assertTrue(net.uses_image)
        feats = make_features(2, modalities, 2, channels, 8, spatial_dims)
        image = torch.rand(2, modalities, *(8,) * spatial_dims)
        image[..., :3] = 0.0  # a background that is black in every source
        with eval_mode(net):
            out = net(feats, image)
            same = net(feats, image[:, :1].expand_as(image).contiguous())
            perm = torch.arange(modalities - 1, -1, -1)
            out_perm = net([f[:, perm] for f in feats], image[:, perm])
        self.assertEqual(out.shape, (2, 1, *(8,) * spatial_dims))
        # a new head is a convex combination of the sources: between their min and max, black stays exactly black
        self.assertTrue(bool((out[:, 0] >= image.amin(dim=1) - 1e-6).all()))
        self.assertTrue(bool((out[:, 0] <= image.amax(dim=1) + 1e-6).all()))
        self.assertEqual(out[..., :3].abs().max().item(), 0.0)
        torch.testing.assert_close(same[:, 0], image[:, 0], rtol=1e-5, atol=1e-6)  # identical sources: unchanged
        torch.testing.assert_close(out, out_perm, rtol=1e-5, atol=1e-6)
        # the weights follow the features: other features, other result
        with eval_mode(net):
            other = net(make_features(2, modalities, 2, channels, 8, spatial_dims, seed=1), image)
        self.assertGreater((out - other).abs().max().item(), 1e-5)

    @parameterized.expand([[2], [3]])
    def test_source_weights_gradients_reach_all_parameters(self, spatial_dims):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(spatial_dims, channels, num_timesteps=2, output_mode="source_weights")
        feats = make_features(2, 2, 2, channels, 8, spatial_dims)
        image = torch.rand(2, 2, *(8,) * spatial_dims) * 0.5 + 0.25
        # two steps: the correction starts at zero, so the layers before it get gradient once it has moved
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(2):
            optimizer.zero_grad()
            (net(feats, image) - image.amax(dim=1, keepdim=True)).square().mean().backward()
            optimizer.step()
        for name, p in net.named_parameters():
            self.assertIsNotNone(p.grad, name)
            self.assertGreater(p.grad.abs().sum().item(), 0.0, name)

    @parameterized.expand([[2, 2], [3, 3]])
    def test_hard_selection_copies_one_source_per_voxel(self, spatial_dims, modalities):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(
            spatial_dims, channels, 2, output_mode="source_weights", selection="hard", correction=False
        )
        self.assertIsNone(net.head.correction)
        feats = make_features(2, modalities, 2, channels, 8, spatial_dims)
        image = torch.rand(2, modalities, *(8,) * spatial_dims)
        with eval_mode(net):
            out = net(feats, image)[:, 0]
            perm = torch.arange(modalities - 1, -1, -1)
            out_perm = net([f[:, perm] for f in feats], image[:, perm])[:, 0]
        matches = (out.unsqueeze(1) == image).sum(dim=1)
        self.assertTrue(bool((matches >= 1).all()))  # exactly one of the sources' values
        chosen = (out.unsqueeze(1) == image).float().mean(dim=tuple(range(2, 2 + spatial_dims)))
        self.assertTrue(bool((chosen > 0).sum(dim=1).ge(2).any()))  # not one source everywhere: a real decision map
        torch.testing.assert_close(out, out_perm)
        # training: the forward value is the same selection, and gradients reach the logit layer through the softmax
        net.train()
        trained = net(feats, image)
        torch.testing.assert_close(trained[:, 0], out, rtol=0, atol=1e-6)
        (trained - image.amax(dim=1, keepdim=True)).abs().mean().backward()
        self.assertGreater(net.head.logit.conv.weight.grad.abs().sum().item(), 0.0)

    @parameterized.expand([[2, 2], [3, 3]])
    def test_max_prior_starts_at_the_max_rule_and_learns_away_from_it(self, spatial_dims, modalities):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(
            spatial_dims, channels, 2, output_mode="source_weights", selection="hard", correction=False, prior="max"
        )
        feats = make_features(2, modalities, 2, channels, 8, spatial_dims)
        image = torch.rand(2, modalities, *(8,) * spatial_dims)
        brighter = image.amax(dim=1)
        with eval_mode(net):
            torch.testing.assert_close(net(feats, image)[:, 0], brighter, rtol=0, atol=0)
        # the target is the darker source: training moves the selection away from the prior, through the features
        optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
        darker = image.amin(dim=1, keepdim=True)
        for _ in range(20):
            optimizer.zero_grad()
            (net(feats, image) - darker).abs().mean().backward()
            optimizer.step()
        self.assertGreater(net.timestep_blocks[0].reduce.conv.weight.grad.abs().sum().item(), 0.0)
        with eval_mode(net):
            out = net(feats, image)[:, 0]
        # from nowhere (the prior takes the brighter source everywhere) to a third of the voxels or more
        self.assertGreater((out == darker[:, 0]).float().mean().item(), 0.3)

    def test_relaxed_selection_is_soft_in_training_and_hard_in_eval(self):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(2, channels, 2, output_mode="source_weights", selection="relaxed",
                                        correction=False)
        feats = make_features(1, 2, 2, channels, 8, 2)
        image = torch.rand(1, 2, 8, 8)
        net.train()
        soft = net(feats, image)[:, 0]
        with eval_mode(net):
            hard = net(feats, image)[:, 0]
        copies = (hard.unsqueeze(1) == image).any(dim=1)
        self.assertTrue(bool(copies.all()))
        self.assertLess((soft.unsqueeze(1) == image).any(dim=1).float().mean().item(), 0.5)  # mostly mixtures
        # both are mixes of the same two sources: the soft result lies between them, so within their difference
        self.assertTrue(bool(((soft - hard).abs() <= (image[:, 0] - image[:, 1]).abs() + 1e-6).all()))

    def test_default_hidden_channels(self):
        self.assertEqual(default_hidden_channels(4), (32, 32, 16, 8))
        self.assertEqual(default_hidden_channels(1), (8,))
        net = DiffusionFeatureFusionNet(2, (16, 8, 8), num_timesteps=3)
        self.assertEqual(net.hidden_channels, (32, 16, 8))

    @parameterized.expand(
        [
            [{"spatial_dims": 1}],
            [{"feature_channels": ()}],
            [{"feature_channels": (4, 0)}],
            [{"num_timesteps": 0}],
            [{"num_modalities": 1}],
            [{"hidden_channels": (4, 4, 4)}],
            [{"hidden_channels": 0}],
            [{"out_channels": 0}],
            [{"output_activation": "tanh"}],
            [{"output_mode": "residual"}],
            [{"output_mode": "source_weights", "out_channels": 2}],
            [{"output_mode": "source_weights", "selection": "gumbel"}],
            [{"output_mode": "source_weights", "correction": True, "selection": "argmax"}],
            [{"output_mode": "source_weights", "prior": "min"}],
            [{"output_mode": "image", "prior": "max"}],
            [{"output_mode": "source_weights", "prior": "max", "prior_weight": 0.0}],
        ]
    )
    def test_bad_arguments(self, override):
        kwargs = {"spatial_dims": 2, "feature_channels": (4, 4), "num_timesteps": 2, **override}
        with self.assertRaises(ValueError):
            DiffusionFeatureFusionNet(**kwargs)

    def test_bad_inputs(self):
        channels = (6, 4)
        net = DiffusionFeatureFusionNet(2, channels, num_timesteps=2, num_modalities=2)
        good = make_features(1, 2, 2, channels, 8, 2)
        cases = {
            "wrong number of levels": good[:1],
            "3D feature for a 2D net": [f.unsqueeze(-1) for f in good],
            "wrong channels": [good[0], good[1][:, :, :, :2]],
            "wrong timesteps": [f[:, :, :1] for f in good],
            "batch mismatch": [good[0], torch.cat([good[1], good[1]])],
            "modalities != num_modalities": make_features(1, 3, 2, channels, 8, 2),
        }
        for what, feats in cases.items():
            with self.subTest(what), self.assertRaises(ValueError):
                net(feats)
        same_channels = DiffusionFeatureFusionNet(2, (4, 4), num_timesteps=2)
        coarse_to_fine = make_features(1, 2, 2, (4, 4), 8, 2)
        with self.assertRaises(ValueError):
            same_channels(coarse_to_fine[::-1])  # finest first
        single = DiffusionFeatureFusionNet(2, channels, num_timesteps=2)
        with self.assertRaises(ValueError):
            single([f[:, :1] for f in good])  # one modality
        skip = DiffusionFeatureFusionNet(2, channels, num_timesteps=2, image_skip=True)
        with self.assertRaises(ValueError):
            skip(good)  # image missing
        with self.assertRaises(ValueError):
            skip(good, torch.rand(1, 2, 4, 4))  # image not at the finest size
        weighting = DiffusionFeatureFusionNet(2, channels, num_timesteps=2, output_mode="source_weights")
        with self.assertRaisesRegex(ValueError, "source images"):
            weighting(good)  # image missing


if __name__ == "__main__":
    unittest.main()
