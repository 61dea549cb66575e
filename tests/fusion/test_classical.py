from __future__ import annotations

import itertools
import unittest

import cv2
import numpy as np
import pywt
import torch
from parameterized import parameterized

from mmif.fusion import get_fusion_method
from mmif.fusion.guided import box_mean, guided_filter
from mmif.fusion.pyramid import laplacian_pyramid, reconstruct_laplacian
from tests.fusion._helpers import SHAPES, random_sources, textured_pair

METHODS = ["average", "maxabs", "min", "pca", "laplacian", "dwt", "gff"]
CASES = [
    (f"{name}_{label}_m{m}", name, shape, m)
    for name, (shape, label), m in itertools.product(METHODS, SHAPES, (2, 3))
]


class TestEveryMethod(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_shape_range_and_identical_sources_fuse_to_themselves(self, _, name, shape, m):
        method = get_fusion_method(name)
        x = random_sources(shape, m=m)
        out = method(x)
        self.assertEqual(tuple(out.shape), (x.shape[0], 1, *shape))
        self.assertEqual(out.dtype, torch.float32)
        self.assertGreaterEqual(float(out.min()), 0.0)
        self.assertLessEqual(float(out.max()), 1.0)
        one = random_sources(shape, m=1, seed=3)
        torch.testing.assert_close(method(one.expand(-1, m, *shape)), one, atol=1e-5, rtol=0)

    @parameterized.expand([(n,) for n in METHODS])
    def test_deterministic_and_batch_independent(self, name):
        x = random_sources((24, 20), m=3, b=3, seed=5)
        method = get_fusion_method(name)
        whole = method(x)
        torch.testing.assert_close(method(x), whole, atol=0, rtol=0)
        torch.testing.assert_close(method(x[1:2]), whole[1:2], atol=1e-6, rtol=0)


class TestPixelRules(unittest.TestCase):
    def test_average_max_min_match_numpy(self):
        x = random_sources((9, 7, 5), m=3)
        arr = x.numpy()
        np.testing.assert_allclose(get_fusion_method("average")(x).numpy(), arr.mean(1, keepdims=True), atol=1e-6)
        np.testing.assert_allclose(get_fusion_method("maxabs")(x).numpy(), arr.max(1, keepdims=True), atol=0)
        np.testing.assert_allclose(get_fusion_method("min")(x).numpy(), arr.min(1, keepdims=True), atol=0)

    def test_pca_weights_favour_the_high_variance_source(self):
        g = torch.Generator().manual_seed(0)
        strong = torch.rand(1, 1, 32, 32, generator=g)
        flat = 0.5 + 0.01 * torch.rand(1, 1, 32, 32, generator=g)
        out = get_fusion_method("pca")(torch.cat([flat, strong], dim=1))
        # weights from the leading eigenvector of the 2x2 covariance, computed independently
        a = torch.cat([flat, strong], 1).reshape(2, -1).double().numpy()
        vals, vecs = np.linalg.eigh(np.cov(a))
        w = np.abs(vecs[:, -1]) / np.abs(vecs[:, -1]).sum()
        self.assertGreater(w[1], 0.95)
        np.testing.assert_allclose(out.numpy().ravel(), (w[:, None] * a).sum(0), atol=1e-5)

    def test_pca_constant_sources_fall_back_to_average(self):
        x = torch.stack([torch.full((8, 8), 0.2), torch.full((8, 8), 0.6)])[None]
        torch.testing.assert_close(get_fusion_method("pca")(x), torch.full((1, 1, 8, 8), 0.4))


class TestMultiScale(unittest.TestCase):
    @parameterized.expand([(label, shape) for shape, label in SHAPES])
    def test_laplacian_with_average_everywhere_is_the_average(self, _, shape):
        x = random_sources(shape, m=3)
        out = get_fusion_method("laplacian", levels=3, detail_rule="average", base_rule="average")(x)
        torch.testing.assert_close(out, x.mean(1, keepdim=True), atol=1e-5, rtol=0)

    @parameterized.expand([(label, shape) for shape, label in SHAPES])
    def test_pyramid_reconstructs_exactly(self, _, shape):
        x = random_sources(shape, m=2).double()
        bands = laplacian_pyramid(x, 3)
        self.assertEqual(len(bands), 4)
        torch.testing.assert_close(reconstruct_laplacian(bands), x, atol=1e-12, rtol=0)

    @parameterized.expand([("laplacian",), ("dwt",), ("gff",)])
    def test_max_abs_picks_the_stronger_detail(self, name):
        for shape in ((32, 32), (16, 16, 16)):
            x = textured_pair(shape)
            out = get_fusion_method(name)(x)
            err_strong = float((out - x[:, :1]).abs().mean())
            err_weak = float((out - x[:, 1:]).abs().mean())
            self.assertLess(err_strong, 0.03, shape)
            self.assertGreater(err_weak, 0.2, shape)

    @parameterized.expand([((37, 50),), ((31, 29),), ((64, 64),)])
    def test_laplacian_matches_an_opencv_pyramid(self, shape):
        x = random_sources(shape, m=2, b=1, seed=7).double()
        a, b = x[0, 0].numpy(), x[0, 1].numpy()

        def pyramid(img, levels):
            gauss = [img]
            for _ in range(levels):
                gauss.append(cv2.pyrDown(gauss[-1]))
            details = [g - cv2.pyrUp(n, dstsize=g.shape[::-1]) for g, n in zip(gauss[:-1], gauss[1:])]
            return details + [gauss[-1]]

        pa, pb = pyramid(a, 3), pyramid(b, 3)
        fused = [np.where(np.abs(u) >= np.abs(v), u, v) for u, v in zip(pa[:-1], pb[:-1])] + [(pa[-1] + pb[-1]) / 2]
        expected = fused[-1]
        for detail in reversed(fused[:-1]):
            expected = cv2.pyrUp(expected, dstsize=detail.shape[::-1]) + detail
        out = get_fusion_method("laplacian", levels=3)(x)[0, 0].numpy()
        np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-10)

    @parameterized.expand([("db2", 3, "periodization", (33, 40)), ("haar", 2, "symmetric", (30, 27))])
    def test_dwt_matches_pywavelets_2d(self, wavelet, levels, mode, shape):
        x = random_sources(shape, m=2, b=1, seed=11).double()
        a, b = x[0, 0].numpy(), x[0, 1].numpy()
        ca, cb = pywt.wavedec2(a, wavelet, mode=mode, level=levels), pywt.wavedec2(b, wavelet, mode=mode, level=levels)
        coeffs = [(ca[0] + cb[0]) / 2] + [
            tuple(np.where(np.abs(u) >= np.abs(v), u, v) for u, v in zip(da, db)) for da, db in zip(ca[1:], cb[1:])
        ]
        expected = pywt.waverec2(coeffs, wavelet, mode=mode)[: shape[0], : shape[1]]
        out = get_fusion_method("dwt", wavelet=wavelet, levels=levels, mode=mode)(x)[0, 0].numpy()
        np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-10)

    @parameterized.expand([("laplacian", {}), ("dwt", {})])
    def test_3d_volume_constant_along_depth_equals_2d_per_slice(self, name, kwargs):
        x2 = random_sources((32, 24), m=2, b=1, seed=2)
        x3 = x2[..., None].expand(-1, -1, -1, -1, 24).contiguous()
        method = get_fusion_method(name, **kwargs)
        out2, out3 = method(x2), method(x3)
        for k in (0, 11, 23):
            torch.testing.assert_close(out3[..., k], out2, atol=1e-5, rtol=0)

    def test_levels_are_capped_for_tiny_images(self):
        x = random_sources((4, 5), m=2)
        for name in ("laplacian", "dwt"):
            out = get_fusion_method(name, levels=8)(x)
            self.assertEqual(tuple(out.shape), (2, 1, 4, 5))
        torch.testing.assert_close(
            get_fusion_method("laplacian", levels=0, base_rule="maxabs")(x), x.amax(1, keepdim=True)
        )


class TestGuidedFilter(unittest.TestCase):
    def test_box_mean_is_the_border_truncated_window_mean(self):
        x = random_sources((20, 17), m=2).double()
        expected = torch.nn.functional.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=False)
        torch.testing.assert_close(box_mean(x, 3), expected, atol=1e-12, rtol=0)
        v = random_sources((5, 6, 4), m=1).double()  # window larger than the volume: the global mean
        torch.testing.assert_close(box_mean(v, 50), v.mean((2, 3, 4), keepdim=True).expand_as(v), atol=1e-12, rtol=0)

    def test_guided_filter_self_guided_keeps_edges_and_smooths_with_large_eps(self):
        step = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
        step[..., 8:] = 1.0
        torch.testing.assert_close(guided_filter(step, step, 3, 1e-6), step, atol=1e-4, rtol=0)
        smooth = guided_filter(step, step, 3, 1e3)
        torch.testing.assert_close(smooth, box_mean(box_mean(step, 3), 3), atol=1e-3, rtol=0)


if __name__ == "__main__":
    unittest.main()
