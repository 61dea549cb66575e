"""The trained weights shipped in ``bundles/*/models`` through ``DMFNetFusion`` (the 2D ones are the default of
``mmif fuse``)."""

from __future__ import annotations

import unittest

import numpy as np
import torch

from mmif.fusion import get_fusion_method
from mmif.fusion.learned import DMFNetFusion, weights_available
from mmif.io import load_image
from mmif.metrics import anatomy, compute_metrics, function, to_gray8
from tests.fusion._helpers import random_sources
from tests.utils import REPO_ROOT, data_root, skip_unless_data

BUNDLE = REPO_ROOT / "bundles" / "brain_mmif_2d"
BUNDLE_3D = REPO_ROOT / "bundles" / "volume_mmif_3d"


def _blobs(size: int = 64, seed: int = 0, spatial_dims: int = 2) -> torch.Tensor:
    """Two smooth sources on a black background (a disc/ball of tissue): ``(1, 2, *[size] * spatial_dims)``, [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    shape = (size,) * spatial_dims
    coarse = torch.rand(1, 2, *(max(size // 8, 2),) * spatial_dims, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=shape, mode="bilinear" if spatial_dims == 2 else "trilinear",
                                        align_corners=False)
    grid = torch.meshgrid(*(torch.arange(size, dtype=torch.float32) for _ in range(spatial_dims)), indexing="ij")
    ball = (sum((c - size / 2) ** 2 for c in grid) < (0.35 * size) ** 2).float()
    return x * ball


def assert_deterministic_decision_map(
    case: unittest.TestCase, method: DMFNetFusion, image: torch.Tensor, tolerance: float = 0.0
) -> None:
    """Two calls give the same image of the input's size; every voxel copies one source to within ``tolerance`` (the
    head's learned correction; 0: exact copies), background black in every source stays black (to within
    ``tolerance``) and both sources are chosen somewhere."""
    fused, again = method(image), method(image)
    torch.testing.assert_close(fused, again, rtol=0, atol=0)
    case.assertEqual(tuple(fused.shape), (1, 1, *image.shape[2:]))
    nearest = (fused - image).abs().amin(dim=1)
    case.assertLessEqual(float(nearest.max()), tolerance)
    background = image.amax(dim=1, keepdim=True) == 0
    case.assertLessEqual(float(fused[background].abs().max()), tolerance)
    differ = (image[:, 0] - image[:, 1]).abs() > 2 * tolerance
    differ &= ~background[:, 0]
    for m in range(2):
        chosen = (fused[:, 0] - image[:, m]).abs() <= tolerance
        case.assertGreater(int((chosen & differ).sum()), 0)


def assert_more_edges_and_information_than_the_average(
    case: unittest.TestCase, fused: np.ndarray, sources: list[np.ndarray]
) -> None:
    """``fused`` scores higher Qabf (edges) and VIF (information) than the average of ``sources`` (same scale)."""
    ours = compute_metrics(fused, sources, ["Qabf", "VIF"])
    average = compute_metrics(sum(sources) / len(sources), sources, ["Qabf", "VIF"])
    case.assertGreater(ours["Qabf"], average["Qabf"])
    case.assertGreater(ours["VIF"], average["VIF"])


def assert_deterministic_with_black_background(case: unittest.TestCase, method: DMFNetFusion, image: torch.Tensor):
    """Two calls give the same image of the input's size, in [0, 1], exactly 0 where every source is 0."""
    fused, again = method(image), method(image)
    torch.testing.assert_close(fused, again, rtol=0, atol=0)
    case.assertEqual(tuple(fused.shape), (1, 1, *image.shape[2:]))
    background = image.amax(dim=1, keepdim=True) == 0
    case.assertEqual(float(fused[background].abs().max()), 0.0)
    case.assertGreater(float(fused[~background].mean()), 0.05)


@unittest.skipUnless(weights_available(BUNDLE), "no trained weights in bundles/brain_mmif_2d/models")
class TestShippedModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.method = DMFNetFusion(bundle=BUNDLE)

    def test_is_the_registered_default(self):
        self.assertIsInstance(get_fusion_method("dmfnet"), DMFNetFusion)

    def test_deterministic_with_black_background(self):
        assert_deterministic_with_black_background(self, self.method, _blobs(size=64, seed=1))

    def test_runs_channels_last_as_configured_with_the_contiguous_result(self):
        image = _blobs(size=64, seed=4)
        first_conv = next(m for m in self.method.model.modules() if isinstance(m, torch.nn.Conv2d))
        self.assertTrue(first_conv.weight.is_contiguous(memory_format=torch.channels_last))
        fused = self.method(image)
        contiguous = DMFNetFusion(bundle=BUNDLE)
        contiguous.model.to(memory_format=torch.contiguous_format)
        self.assertTrue(first_conv.weight.is_contiguous(memory_format=torch.channels_last))  # a separate model
        torch.testing.assert_close(fused, contiguous(image), rtol=0, atol=1e-4)

    def test_three_modalities_and_odd_sizes(self):
        image = random_sources((50, 38), m=3, b=1, seed=2)
        fused = self.method(image)
        self.assertEqual(tuple(fused.shape), (1, 1, 50, 38))
        self.assertTrue(bool(((fused >= 0) & (fused <= 1)).all()))

    @skip_unless_data("harvard/MRI_CT/test")
    def test_real_pairs_transfer_more_edges_than_the_average(self):
        root = data_root() / "harvard" / "MRI_CT" / "test"
        names = sorted(p.name for p in (root / "MRI").glob("*.png"))[:3]
        for name in names:
            sources = [load_image(root / mod / name)[0].squeeze().astype(np.float32) for mod in ("MRI", "CT")]
            image = torch.from_numpy(np.stack(sources) / 255.0)[None]
            fused = np.round(self.method(image)[0, 0].numpy() * 255.0)
            with self.subTest(name):
                assert_more_edges_and_information_than_the_average(self, fused, sources)


    @skip_unless_data("harvard/MRI_PET/test")
    def test_real_pet_pairs_show_the_mri_under_the_tracer(self):
        root = data_root() / "harvard" / "MRI_PET" / "test"
        names = sorted(p.name for p in (root / "MRI").glob("*.png"))[:3]
        for name in names:
            mri = load_image(root / "MRI" / name)[0].squeeze().astype(np.float32)
            pet = to_gray8(np.asarray(load_image(root / "PET" / name))).astype(np.float32)
            image = torch.from_numpy(np.stack([mri, pet]) / 255.0)[None]
            fused = np.round(self.method(image)[0, 0].numpy() * 255.0)
            maxabs = np.maximum(mri, pet)
            with self.subTest(name):
                self.assertGreater(anatomy(fused, [mri, pet]), anatomy(maxabs, [mri, pet]) + 0.1)
                self.assertGreater(function(fused, [mri, pet]), 0.75)


@unittest.skipUnless(weights_available(BUNDLE_3D), "no trained weights in bundles/volume_mmif_3d/models")
class TestShippedVolumeModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.method = DMFNetFusion(bundle=BUNDLE_3D)

    def test_deterministic_decision_map_with_black_background(self):
        assert_deterministic_decision_map(self, self.method, _blobs(size=40, seed=3, spatial_dims=3))

    @skip_unless_data("volumes/brats2013_pat0004")
    def test_real_volume_transfers_more_edges_than_the_average(self):
        case = data_root() / "volumes" / "brats2013_pat0004"
        sources = []
        for mod in ("flair", "t1c"):
            vol = load_image(case / f"{mod}.nii.gz")[0].squeeze().astype(np.float32)[88:152, 88:152, 45:109]
            sources.append((vol - vol.min()) / (vol.max() - vol.min()))
        image = torch.from_numpy(np.stack(sources))[None]
        fused = self.method(image)[0, 0].numpy() * 255.0
        assert_more_edges_and_information_than_the_average(self, fused, [s * 255.0 for s in sources])


if __name__ == "__main__":
    unittest.main()
