from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from mmif.errors import InputError
from mmif.transforms import ModalityScaleIntensity, ModalityScaleIntensityd, modality_group
from tests.transforms._helpers import TEST_NDARRAYS, to_numpy


def expected_scale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)


class TestModalityGroup(unittest.TestCase):
    @parameterized.expand(
        [("CT", "ct"), ("PET", "pet"), ("SPECT", "pet"), ("MRI", "mr"), ("t1", "mr"), ("T2", "mr"), ("flair", "mr"),
         ("t1c", "mr"), ("PD", "mr"), ("t1_mprage", "mr"), ("transm", None), ("seg", None), (None, None)]
    )
    def test_names(self, name, group):
        self.assertEqual(modality_group(name), group)

    def test_extra(self):
        self.assertEqual(modality_group("transm", {"transm": "ct"}), "ct")


class TestModalityScaleIntensity(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(0)
        self.mr = rng.gamma(2.0, 300.0, size=(1, 20, 24, 6)).astype(np.float32)
        self.ct = rng.uniform(-1100.0, 2500.0, size=(1, 20, 24)).astype(np.float32)
        pet = rng.exponential(1000.0, size=(1, 20, 24, 6)).astype(np.float32)
        pet[0, :3] = -5.0  # reconstruction undershoot below zero
        self.pet = pet

    def test_mr_percentiles(self):
        lo, hi = np.percentile(self.mr, 0.5), np.percentile(self.mr, 99.5)
        for p in TEST_NDARRAYS:
            out = ModalityScaleIntensity(modality="t2")(p(self.mr))
            self.assertIs(type(out), type(p(self.mr)))
            self.assertEqual(out.dtype, np.float32 if isinstance(out, np.ndarray) else torch.float32)
            np.testing.assert_allclose(to_numpy(out), expected_scale(self.mr, lo, hi), atol=1e-5)

    def test_mr_custom_percentiles(self):
        lo, hi = np.percentile(self.mr, 2.0), np.percentile(self.mr, 98.0)
        out = ModalityScaleIntensity(mr_percentiles=(2, 98))(self.mr, modality="FLAIR")
        np.testing.assert_allclose(out, expected_scale(self.mr, lo, hi), atol=1e-5)

    @parameterized.expand([((-1000.0, 2000.0),), ((-160.0, 240.0),)])
    def test_ct_window(self, window):
        for p in TEST_NDARRAYS:
            out = ModalityScaleIntensity(modality="CT", ct_window=window)(p(self.ct))
            np.testing.assert_allclose(to_numpy(out), expected_scale(self.ct, *window), atol=1e-6)

    def test_ct_already_scaled_and_not_hu(self):
        scaled = np.random.default_rng(1).uniform(0.0, 1.0, (1, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(ModalityScaleIntensity("CT")(scaled), scaled, atol=1e-7)
        shifted = scaled * 3000.0 + 24.0  # non-negative: not HU, scaled by its own range
        np.testing.assert_allclose(
            ModalityScaleIntensity("CT")(shifted), expected_scale(shifted, shifted.min(), shifted.max()), atol=1e-5
        )

    @parameterized.expand([("PET", 99.9), ("SPECT", 99.0)])
    def test_pet_spect(self, modality, q):
        hi = np.percentile(self.pet, q)
        for p in TEST_NDARRAYS:
            out = ModalityScaleIntensity(modality, pet_percentile=q)(p(self.pet))
            np.testing.assert_allclose(to_numpy(out), expected_scale(self.pet, 0.0, hi), atol=1e-5)
            self.assertEqual(float(to_numpy(out)[0, :3].max()), 0.0)

    def test_mostly_empty_pet_uses_max(self):
        pet = np.zeros((1, 40, 40), np.float32)
        pet[0, 0, 0] = 7.0
        np.testing.assert_allclose(ModalityScaleIntensity("PET")(pet), pet / 7.0)

    def test_constant(self):
        for modality in ("MRI", "CT", "other"):  # relative ranges: a constant image has no range -> zeros
            out = ModalityScaleIntensity(modality)(np.full((1, 4, 4), 3.0, np.float32))
            np.testing.assert_array_equal(out, np.zeros((1, 4, 4), np.float32))
        # PET/SPECT start at an absolute 0: a constant positive uptake is the maximum
        out = ModalityScaleIntensity("PET")(np.full((1, 4, 4), 3.0, np.float32))
        np.testing.assert_array_equal(out, np.ones((1, 4, 4), np.float32))
        out = ModalityScaleIntensity("PET")(np.zeros((1, 4, 4), np.float32))
        np.testing.assert_array_equal(out, np.zeros((1, 4, 4), np.float32))

    def test_unknown_modality_min_max(self):
        x = np.random.default_rng(2).normal(size=(1, 6, 6)).astype(np.float32)
        np.testing.assert_allclose(ModalityScaleIntensity("transm")(x), expected_scale(x, x.min(), x.max()), atol=1e-6)

    def test_raster(self):
        u8 = np.random.default_rng(3).integers(0, 256, (3, 8, 8)).astype(np.float32)
        for modality in ("MRI", "CT", "PET"):
            np.testing.assert_allclose(ModalityScaleIntensity(modality, raster=True)(u8), u8 / 255.0, atol=1e-7)
        # from a MetaTensor's file name
        mt = MetaTensor(torch.as_tensor(u8), meta={"filename_or_obj": "/data/MRI_CT/CT/2004.png"})
        out = ModalityScaleIntensity("CT")(mt)
        self.assertIsInstance(out, MetaTensor)
        self.assertEqual(out.meta["filename_or_obj"], "/data/MRI_CT/CT/2004.png")
        np.testing.assert_allclose(to_numpy(out), u8 / 255.0, atol=1e-7)
        u16 = u8 * 200.0
        np.testing.assert_allclose(ModalityScaleIntensity(raster=True)(u16), u16 / 65535.0, atol=1e-7)

    def test_colour_channels_scaled_together(self):
        x = np.random.default_rng(4).gamma(2.0, 100.0, (3, 10, 10)).astype(np.float32)
        x[0] *= 2.0
        lo, hi = np.percentile(x, 0.5), np.percentile(x, 99.5)
        np.testing.assert_allclose(ModalityScaleIntensity("MRI")(x), expected_scale(x, lo, hi), atol=1e-5)

    @parameterized.expand(
        [({"ct_window": (100, -100)},), ({"mr_percentiles": (50, 10)},), ({"mr_percentiles": (0, 101)},),
         ({"pet_percentile": 0},), ({"extra_groups": {"transm": "xray"}},)]
    )
    def test_bad_arguments(self, kwargs):
        with self.assertRaisesRegex(ValueError, "ModalityScaleIntensity"):
            ModalityScaleIntensity(**kwargs)


class TestModalityScaleIntensityd(unittest.TestCase):
    def test_each_channel_by_its_modality(self):
        rng = np.random.default_rng(5)
        mr = rng.gamma(2.0, 300.0, (6, 7, 5))
        ct = rng.uniform(-1024.0, 3000.0, (6, 7, 5))
        pet = rng.exponential(5.0, (6, 7, 5))
        stacked = np.stack([mr, ct, pet]).astype(np.float32)
        expected = np.stack(
            [
                expected_scale(mr, *np.percentile(mr.astype(np.float32), (0.5, 99.5))),
                expected_scale(ct, -1000.0, 2000.0),
                expected_scale(pet, 0.0, np.percentile(pet.astype(np.float32), 99.9)),
            ]
        )
        for p in TEST_NDARRAYS:
            d = ModalityScaleIntensityd("image")({"image": p(stacked), "modalities": ["t1", "CT", "PET"], "name": "x"})
            self.assertIs(type(d["image"]), type(p(stacked)))
            self.assertEqual(d["name"], "x")
            np.testing.assert_allclose(to_numpy(d["image"]), expected, atol=1e-5)
        # fixed modalities override the sample
        d = ModalityScaleIntensityd("image", modalities=["t1", "CT", "PET"])({"image": stacked})
        np.testing.assert_allclose(d["image"], expected, atol=1e-5)

    def test_count_mismatch_names_file(self):
        img = MetaTensor(torch.rand(2, 4, 4), meta={"filename_or_obj": "/d/case1/t1.nii.gz"})
        with self.assertRaises(InputError) as cm:
            ModalityScaleIntensityd("image")({"image": img, "modalities": ["t1", "ct", "pet"]})
        self.assertIn("/d/case1/t1.nii.gz", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
