"""``to_gray8``: the reference's reading convention (float BT.601 luma of 8-bit RGB, rounded half to even)."""

from __future__ import annotations

import unittest

import numpy as np
import torch
from parameterized import parameterized

from mmif.metrics import to_gray8

try:
    import cv2
except ImportError:  # opencv is a test extra
    cv2 = None


def _rgb(seed: int, shape=(17, 23)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


class TestToGray8(unittest.TestCase):
    def test_known_colours(self):
        rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30]]], dtype=np.uint8)
        # 0.299*255 = 76.245, 0.587*255 = 149.685, 0.114*255 = 29.07, 0.299*10 + 0.587*20 + 0.114*30 = 18.15
        np.testing.assert_array_equal(to_gray8(rgb), [[76, 150, 29, 255, 18]])

    def test_grey_passes_through(self):
        grey = np.random.default_rng(0).integers(0, 256, (9, 11), dtype=np.uint8)
        out = to_gray8(grey)
        self.assertEqual(out.dtype, np.float64)
        np.testing.assert_array_equal(out, grey)
        np.testing.assert_array_equal(to_gray8(grey[:, :, None]), grey)
        np.testing.assert_array_equal(to_gray8(grey[None]), grey)

    @parameterized.expand([("channel_last", lambda x: x), ("channel_first", lambda x: np.moveaxis(x, -1, 0)),
                           ("torch", torch.from_numpy), ("float_values", lambda x: x.astype(np.float32))])
    def test_layouts_agree(self, _, conv):
        rgb = _rgb(1)
        np.testing.assert_array_equal(to_gray8(conv(rgb)), to_gray8(rgb))

    @unittest.skipIf(cv2 is None, "opencv-python-headless not installed (test extra)")
    def test_matches_opencv_float_conversion(self):
        rgb = np.concatenate([_rgb(2, (64, 64)).reshape(-1, 3),
                              # colours whose luma is exactly a half level in decimal (ties, where order matters)
                              np.array([[0, 0, 125], [250, 0, 0], [10, 0, 5]], dtype=np.uint8)])[None]
        bgr = np.ascontiguousarray(rgb[..., ::-1]).astype(np.float32)
        want = np.round(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        np.testing.assert_array_equal(to_gray8(rgb), want)

    @parameterized.expand([
        ("4_channels", np.zeros((5, 5, 4), np.uint8)),
        ("1d", np.zeros(5, np.uint8)),
        ("not_integer", np.full((4, 4, 3), 0.5)),
        ("over_255", np.full((4, 4), 300)),
    ])
    def test_bad_input(self, _, arr):
        with self.assertRaises(ValueError):
            to_gray8(arr)


if __name__ == "__main__":
    unittest.main()
