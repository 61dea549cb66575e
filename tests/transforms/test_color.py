from __future__ import annotations

import unittest

import cv2
import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from mmif.io import load_image
from mmif.transforms import (
    RecombineColor,
    RecombineColord,
    RGBToYCbCr,
    RGBToYCbCrd,
    SplitLuminance,
    SplitLuminanced,
    YCbCrToRGB,
    YCbCrToRGBd,
    chroma_offset,
    is_color_image,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from tests.transforms._helpers import TEST_NDARRAYS, chroma_np, luma_np, to_numpy
from tests.utils import data_root, skip_unless_data


def opencv_ycbcr(rgb_hwc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's grey, Y, Cb, Cr of an 8-bit ``(H, W, 3)`` RGB image (OpenCV orders channels BGR and Y Cr Cb)."""
    bgr = np.ascontiguousarray(rgb_hwc[..., ::-1])
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float64)
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb).astype(np.float64)
    return grey, ycrcb[..., 0], ycrcb[..., 2], ycrcb[..., 1]


class TestOpenCVAgreement(unittest.TestCase):
    def assert_matches_opencv(self, rgb_hwc: np.ndarray, label: str) -> None:
        grey, y_cv, cb_cv, cr_cv = opencv_ycbcr(rgb_hwc)
        ours = to_numpy(RGBToYCbCr(value_range=255)(np.moveaxis(rgb_hwc, -1, 0)))
        pairs = (("Y/gray", ours[0], grey), ("Y", ours[0], y_cv), ("Cb", ours[1], cb_cv), ("Cr", ours[2], cr_cv))
        for name, got, ref in pairs:
            diff = np.abs(got.astype(np.float64) - ref).max()
            self.assertLessEqual(diff, 1.0, f"{label}: {name} differs from OpenCV by {diff:.3f} grey levels")

    @parameterized.expand([(seed,) for seed in range(3)])
    def test_random_images(self, seed):
        rng = np.random.default_rng(seed)
        self.assert_matches_opencv(rng.integers(0, 256, (64, 48, 3)).astype(np.uint8), f"random seed {seed}")

    def test_all_8bit_corner_colours(self):
        levels = np.array([0, 1, 127, 128, 254, 255], dtype=np.uint8)
        r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
        self.assert_matches_opencv(np.stack([r, g, b], -1).reshape(36, 6, 3), "corner colours")

    @skip_unless_data("harvard")
    def test_harvard_pet_spect(self):
        root = data_root() / "harvard"
        files = sorted((root / "MRI_PET" / "test" / "PET").glob("*.png")) + sorted(
            (root / "MRI_SPECT" / "test" / "SPECT").glob("*.png")
        )
        self.assertGreater(len(files), 10)
        for i, f in enumerate(files):
            rgb = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            self.assert_matches_opencv(rgb, f.name)
            if i % 10:
                continue
            # mmif loads the same RGB values as OpenCV (checked on a few files to keep the test fast)
            loaded = load_image(f)
            self.assertEqual(tuple(loaded.shape), (3, *rgb.shape[:2]))
            np.testing.assert_array_equal(to_numpy(loaded), np.moveaxis(rgb, -1, 0).astype(np.float32))


class TestConversion(unittest.TestCase):
    def test_chroma_offset(self):
        self.assertEqual(chroma_offset(1.0), 0.5)
        self.assertEqual(chroma_offset(255), 128.0)
        with self.assertRaises(ValueError):
            chroma_offset(0)

    @parameterized.expand([(1.0,), (255,)])
    def test_against_numpy_formula(self, value_range):
        rng = np.random.default_rng(1)
        rgb = rng.uniform(0, value_range, (3, 8, 9, 5))  # 3D, float64
        for p in TEST_NDARRAYS:
            out = RGBToYCbCr(value_range=value_range)(p(rgb))
            self.assertIs(type(out), type(p(rgb)))
            out = to_numpy(out)
            hwc = np.moveaxis(rgb, 0, -1)
            np.testing.assert_allclose(out[0], luma_np(hwc), atol=1e-9 * value_range)
            np.testing.assert_allclose(out[1:], chroma_np(hwc, chroma_offset(value_range)), atol=1e-9 * value_range)

    @parameterized.expand([((3, 16, 12),), ((3, 6, 7, 5),)])
    def test_round_trip(self, shape):
        rng = np.random.default_rng(2)
        rgb8 = rng.integers(0, 256, shape).astype(np.uint8)
        for p in TEST_NDARRAYS:
            back = YCbCrToRGB(value_range=255)(RGBToYCbCr(value_range=255)(p(rgb8)))
            self.assertIs(type(back), type(p(rgb8)))
            np.testing.assert_array_equal(np.round(to_numpy(back)).astype(np.uint8), rgb8)
            np.testing.assert_allclose(to_numpy(back), rgb8, atol=1e-3)
        unit = rng.uniform(0, 1, shape)
        np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(unit)), unit, atol=1e-12)

    def test_batch_channel_dim(self):
        rgb = torch.rand(2, 3, 8, 8)
        out = RGBToYCbCr(channel_dim=1)(rgb)
        for i in range(2):
            torch.testing.assert_close(out[i], rgb_to_ycbcr(rgb[i]))

    def test_metatensor_keeps_meta(self):
        img = MetaTensor(torch.rand(3, 8, 8), affine=torch.diag(torch.tensor([2.0, 3.0, 1.0, 1.0])))
        img.meta["filename_or_obj"] = "pet.png"
        out = YCbCrToRGB()(RGBToYCbCr()(img))
        self.assertIsInstance(out, MetaTensor)
        self.assertEqual(out.meta["filename_or_obj"], "pet.png")
        torch.testing.assert_close(out.affine, img.affine)

    def test_wrong_channels(self):
        with self.assertRaisesRegex(ValueError, "3 channels"):
            RGBToYCbCr()(torch.rand(2, 4, 4))
        with self.assertRaisesRegex(ValueError, "RGBToYCbCr"):
            RGBToYCbCr(value_range=-1)
        with self.assertRaisesRegex(ValueError, "YCbCrToRGB"):
            YCbCrToRGB(value_range=0)

    def test_is_color_image(self):
        grey = np.random.default_rng(0).uniform(size=(1, 5, 5))
        self.assertFalse(is_color_image(grey))
        self.assertFalse(is_color_image(np.repeat(grey, 3, 0)))
        rgb = np.repeat(grey, 3, 0)
        rgb[2, 0, 0] += 0.1
        self.assertTrue(is_color_image(rgb))
        self.assertFalse(is_color_image(rgb, atol=0.2))

    def test_dict_twins(self):
        rgb = np.random.default_rng(3).uniform(size=(3, 6, 6)).astype(np.float32)
        d = RGBToYCbCrd(keys="img")({"img": rgb, "other": 1})
        np.testing.assert_allclose(d["img"], rgb_to_ycbcr(rgb))
        self.assertEqual(d["other"], 1)
        d = YCbCrToRGBd(keys="img")(d)
        np.testing.assert_allclose(d["img"], rgb, atol=1e-5)


class TestSplitRecombine(unittest.TestCase):
    @parameterized.expand([((16, 12),), ((6, 7, 5),)])
    def test_split_colour(self, spatial):
        rgb = np.random.default_rng(4).uniform(size=(3, *spatial))
        hwc = np.moveaxis(rgb, 0, -1)
        for p in TEST_NDARRAYS:
            y, c = SplitLuminance()(p(rgb))
            self.assertIs(type(y), type(p(rgb)))
            self.assertIs(type(c), type(p(rgb)))
            self.assertEqual(tuple(y.shape), (1, *spatial))
            self.assertEqual(tuple(c.shape), (2, *spatial))
            np.testing.assert_allclose(to_numpy(y)[0], luma_np(hwc), atol=1e-9)
            np.testing.assert_allclose(to_numpy(c), chroma_np(hwc, 0.5), atol=1e-9)

    @parameterized.expand([(1.0, 0.5), (255, 128.0)])
    def test_split_grey(self, value_range, neutral):
        grey = np.random.default_rng(5).uniform(0, value_range, size=(1, 5, 6, 4)).astype(np.float32)
        for p in TEST_NDARRAYS:
            y, c = SplitLuminance(value_range=value_range)(p(grey))
            np.testing.assert_array_equal(to_numpy(y), grey)
            self.assertEqual(tuple(c.shape), (2, 5, 6, 4))
            np.testing.assert_array_equal(to_numpy(c), np.full((2, 5, 6, 4), neutral, np.float32))

    def test_split_bad_channels(self):
        with self.assertRaisesRegex(ValueError, "SplitLuminance"):
            SplitLuminance()(np.zeros((2, 4, 4)))

    @parameterized.expand([((16, 12),), ((6, 7, 5),)])
    def test_split_then_recombine_is_identity(self, spatial):
        rgb = np.random.default_rng(6).uniform(size=(3, *spatial)).astype(np.float32)
        for p in TEST_NDARRAYS:
            y, c = SplitLuminance()(p(rgb))
            out = RecombineColor()(y, c)
            self.assertIs(type(out), type(p(rgb)))
            np.testing.assert_allclose(to_numpy(out), rgb, atol=1e-5)

    def test_recombine_grey_and_gamut(self):
        y = np.array([[[1.2, 0.5], [-0.1, 0.0]]], np.float32)
        np.testing.assert_array_equal(RecombineColor()(y), np.clip(y, 0, 1))
        strong = np.stack([np.zeros((2, 2)), np.ones((2, 2))]).astype(np.float32)  # Cb 0, Cr 1: saturated red
        out = RecombineColor()(np.full((1, 2, 2), 0.9, np.float32), strong)
        self.assertEqual(out.shape, (3, 2, 2))
        self.assertGreaterEqual(out.min(), 0.0)
        self.assertLessEqual(out.max(), 1.0)
        self.assertEqual(float(out[0].min()), 1.0)  # red is clipped, not wrapped

    def test_recombine_bad_shapes(self):
        with self.assertRaisesRegex(ValueError, "1 channel"):
            RecombineColor()(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
        with self.assertRaisesRegex(ValueError, "2 channels"):
            RecombineColor()(np.zeros((1, 4, 4)), np.zeros((3, 4, 4)))
        with self.assertRaisesRegex(ValueError, "do not match"):
            RecombineColor()(np.zeros((1, 4, 4)), np.zeros((2, 4, 5)))

    def test_batch(self):
        y, c = torch.rand(2, 1, 4, 4, 3), torch.rand(2, 2, 4, 4, 3)
        out = RecombineColor(channel_dim=1)(y, c)
        self.assertEqual(tuple(out.shape), (2, 3, 4, 4, 3))
        torch.testing.assert_close(out[1], RecombineColor()(y[1], c[1]))

    def test_dict_twins(self):
        rng = np.random.default_rng(7)
        rgb = rng.uniform(size=(3, 6, 6)).astype(np.float32)
        grey = rng.uniform(size=(1, 6, 6)).astype(np.float32)
        d = SplitLuminanced(keys=["a", "b"], chroma_keys=["ca", "cb"], is_color_keys=["col_a", "col_b"])(
            {"a": grey, "b": rgb}
        )
        self.assertEqual((d["col_a"], d["col_b"]), (False, True))
        np.testing.assert_array_equal(d["ca"], np.full((2, 6, 6), 0.5, np.float32))
        self.assertEqual(d["b"].shape, (1, 6, 6))
        # recombine: colour sample -> RGB, grey sample -> grey
        out = RecombineColord(keys="b", chroma_key="cb", is_color_key="col_b")(d)
        np.testing.assert_allclose(out["b"], rgb, atol=1e-5)
        out = RecombineColord(keys="a", chroma_key="ca", is_color_key="col_a")(d)
        np.testing.assert_array_equal(out["a"], grey)
        out = RecombineColord(keys="a", chroma_key="ca", is_color_key="col_a")({**d, "col_a": torch.tensor([True])})
        self.assertEqual(out["a"].shape, (3, 6, 6))
        with self.assertRaisesRegex(ValueError, "SplitLuminanced"):
            SplitLuminanced(keys=["a", "b"], chroma_keys=["x", "y", "z"])


if __name__ == "__main__":
    unittest.main()
