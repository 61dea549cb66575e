"""The plain metric functions on generated images: NumPy references, identities, 3D, N = 3 sources, bad input."""

from __future__ import annotations

import math
import unittest

import numpy as np
import torch
from parameterized import parameterized

import mmif.metrics as M
from tests.metrics._helpers import one_thread_module, structured_image

setUpModule, tearDownModule = one_thread_module()

SHAPE_2D = (48, 40)
ALL_SOURCE_METRICS = ("MI", "SCD", "VIF", "Qabf", "Nabf", "SSIM", "MS_SSIM", "PSNR", "CC", "MSE", "SSIM_dr255")


# ------------------------------------------------------------------------------------- independent NumPy versions

def np_entropy(f):
    p = np.bincount(f.astype(np.int64).ravel(), minlength=256) / f.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def np_sf(f):
    rf = np.mean((f[1:, :] - f[:-1, :]) ** 2)
    cf = np.mean((f[:, 1:] - f[:, :-1]) ** 2)
    return float(np.sqrt(rf + cf))


def np_ag(f):
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def np_mi(f, s):
    joint, _, _ = np.histogram2d(f.ravel(), s.ravel(), bins=256, range=[[-0.5, 255.5], [-0.5, 255.5]])
    p = joint / joint.sum()
    pf, ps = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (pf @ ps)[nz])).sum())


def np_corr(x, y):
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def np_psnr(f, sources):
    mse = np.mean([np.mean((s - f) ** 2) for s in sources])
    return float(10 * np.log10(f.max() ** 2 / mse)), float(mse)


def np_ssim(f, s, data_range, ndim):
    from scipy.ndimage import uniform_filter

    w, pad = 7, 3
    n = w**ndim
    cov = n / (n - 1)
    ux, uy = uniform_filter(f, w), uniform_filter(s, w)
    vx = cov * (uniform_filter(f * f, w) - ux * ux)
    vy = cov * (uniform_filter(s * s, w) - uy * uy)
    vxy = cov * (uniform_filter(f * s, w) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    smap = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(smap[tuple(slice(pad, -pad) for _ in range(ndim))].mean())


def np_fmi_window(a, f):
    """Haghighat's per-window normalised feature MI, written as plain loops over one pair of windows."""
    if np.array_equal(a, f):
        return 1.0

    def pdf(x):
        x = x.flatten(order="F")  # column-major, as MATLAB's x(:)
        x = np.ones_like(x) if x.max() == x.min() else (x - x.min()) / (x.max() - x.min())
        return x / x.sum()

    pa, pf = pdf(a), pdf(f)
    ca, cf = np.cumsum(pa), np.cumsum(pf)
    k = len(pa)
    at, ft = pa - pa.mean(), pf - pf.mean()
    c = 0.0 if np.sum(at * ft) == 0 else np.sum(at * ft) / np.sqrt(np.sum(at * at) * np.sum(ft * ft))
    idx = np.arange(1, k + 1)
    sd_a = np.sqrt(abs(np.sum(idx**2 * pa) - np.sum(idx * pa) ** 2))
    sd_f = np.sqrt(abs(np.sum(idx**2 * pf) - np.sum(idx * pf) ** 2))
    bound = (lambda u, v: min(u, v)) if c >= 0 else (lambda u, v: max(u + v - 1, 0.0))
    cov = sum(bound(cf[i], ca[j]) - cf[i] * ca[j] for i in range(k) for j in range(k))
    mix = 0.0 if c * sd_a * sd_f == 0 else c * sd_a * sd_f / cov

    def cdf2(i, j):
        return 0.0 if i < 0 or j < 0 else bound(cf[i], ca[j])

    joint = 0.0
    for i in range(k):
        for j in range(k):
            p = mix * (cdf2(i, j) - cdf2(i - 1, j) - cdf2(i, j - 1) + cdf2(i - 1, j - 1)) + (1 - mix) * pf[i] * pa[j]
            if p != 0:
                joint -= p * np.log2(abs(p))
    ent = lambda p: -np.sum(p[p > 0] * np.log2(p[p > 0]))  # noqa: E731
    mi = ent(pa) + ent(pf) - joint
    return 0.0 if mi == 0 else 2 * mi / (ent(pa) + ent(pf))


def np_fmi(f, sources, w=3):
    vals = [np_fmi_window(s[i:i + w, j:j + w], f[i:i + w, j:j + w])
            for s in sources for i in range(f.shape[0] - w + 1) for j in range(f.shape[1] - w + 1)]
    return float(np.mean(vals))


class TestAgainstNumPy(unittest.TestCase):
    def setUp(self):
        self.a = structured_image(SHAPE_2D, 1)
        self.b = structured_image(SHAPE_2D, 2)
        self.f = np.round(0.6 * self.a + 0.4 * self.b)

    @parameterized.expand([
        ("numpy", np.asarray),
        ("torch", torch.as_tensor),
        ("torch_float32", lambda x: torch.tensor(x, dtype=torch.float32)),
        ("numpy_uint8", lambda x: np.asarray(x, dtype=np.uint8)),
    ])
    def test_simple_metrics(self, _, conv):
        f, a, b = conv(self.f), conv(self.a), conv(self.b)
        F, A, B = self.f, self.a, self.b
        self.assertAlmostEqual(M.entropy(f), np_entropy(F), places=10)
        self.assertAlmostEqual(M.standard_deviation(f), float(np.std(F)), places=8)
        self.assertAlmostEqual(M.spatial_frequency(f), np_sf(F), places=8)
        self.assertAlmostEqual(M.average_gradient(f), np_ag(F), places=8)
        self.assertAlmostEqual(M.mutual_information(f, [a, b]), np_mi(F, A) + np_mi(F, B), places=8)
        self.assertAlmostEqual(M.mutual_information(f, [a, b], base=2, reduction="mean"),
                               (np_mi(F, A) + np_mi(F, B)) / 2 / math.log(2), places=8)
        self.assertAlmostEqual(M.cc(f, [a, b]), (np_corr(A, F) + np_corr(B, F)) / 2, places=8)
        self.assertAlmostEqual(M.scd(f, [a, b]), np_corr(A, F - B) + np_corr(B, F - A), places=8)
        psnr, mse = np_psnr(F, [A, B])
        self.assertAlmostEqual(M.psnr(f, [a, b]), psnr, places=8)
        self.assertAlmostEqual(M.mse(f, [a, b]), mse, places=6)
        self.assertAlmostEqual(M.psnr(f, [a, b], data_range=255), 10 * np.log10(255**2 / mse), places=8)

    def test_fmi_pixel(self):
        crop = (slice(10, 19), slice(14, 22))
        f, a, b = self.f[crop].copy(), self.a[crop].copy(), self.b[crop].copy()
        f[:3, :4] = a[:3, :4]  # some identical windows
        a[5:, 4:] = 9.0  # flat windows
        f[6:, 5:] = 200.0
        self.assertAlmostEqual(M.fmi(f, [a, b]), np_fmi(f, [a, b]), places=10)

    @parameterized.expand([(2.0,), (255.0,)])
    def test_ssim_2d(self, data_range):
        want = np_ssim(self.f, self.a, data_range, 2) + np_ssim(self.f, self.b, data_range, 2)
        self.assertAlmostEqual(M.ssim(self.f, [self.a, self.b], data_range=data_range), want, places=8)
        self.assertAlmostEqual(M.ssim(self.f, [self.a, self.b], data_range=data_range, reduction="mean"), want / 2,
                               places=8)

    def test_ssim_3d_windows(self):
        a, b = structured_image((20, 18, 16), 3), structured_image((20, 18, 16), 4)
        f = np.round((a + b) / 2)
        want = np_ssim(f, a, 255.0, 3) + np_ssim(f, b, 255.0, 3)
        self.assertAlmostEqual(M.ssim(f, [a, b], data_range=255.0), want, places=8)


class TestKnownValues(unittest.TestCase):
    """Identical inputs and other cases with values known from the definitions."""

    def setUp(self):
        self.a = structured_image((96, 96), 5)

    def test_identical_inputs(self):
        a = self.a
        got = M.compute_metrics(a, [a, a], names=list(M.metric_names()))
        self.assertAlmostEqual(got["SSIM"], 2.0, places=10)  # 1 per source, summed
        self.assertAlmostEqual(got["SSIM_dr255"], 2.0, places=10)
        self.assertAlmostEqual(got["MS_SSIM"], 1.0, places=5)  # float32 like the reference
        self.assertAlmostEqual(got["VIF"], 2.0, places=8)
        self.assertAlmostEqual(got["CC"], 1.0, places=10)
        self.assertEqual(got["MSE"], 0.0)
        self.assertEqual(got["PSNR"], math.inf)
        self.assertEqual(got["Nabf"], 0.0)  # F never has stronger edges than a source
        self.assertAlmostEqual(got["MI"], 2 * np_entropy(a) * math.log(2), places=8)  # I(A; A) = H(A), in nats
        self.assertAlmostEqual(got["FMI"], 1.0, places=8)
        self.assertAlmostEqual(got["FMI_w"], 1.0, places=8)
        # perfect agreement: G = g_F >= 1 and A = 1, so Q = Tg * Ta / (1 + e^(-22 * 0.2)) up to the sigmoid of G
        q_max = 0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2))
        self.assertLessEqual(got["Qabf"], q_max + 1e-12)
        self.assertGreater(got["Qabf"], q_max * (1 / (1 + math.exp(-7.5))) - 1e-12)
        self.assertTrue(math.isnan(got["SCD"]))  # F - A is constant

    def test_scd_nan_when_fused_equals_a_source(self):
        b = structured_image((96, 96), 6)
        self.assertTrue(math.isnan(M.scd(self.a, [self.a, b])))
        self.assertTrue(math.isnan(M.compute_metrics(b, [self.a, b], names=["SCD"])["SCD"]))
        self.assertFalse(math.isnan(M.scd(np.round((self.a + b) / 2), [self.a, b])))

    def test_nabf_counts_only_artifacts(self):
        b = structured_image((96, 96), 6)
        smooth = np.round((self.a + b) / 2)
        noisy = np.clip(smooth + np.random.default_rng(0).integers(-40, 41, smooth.shape), 0, 255)
        self.assertLess(M.nabf(smooth, [self.a, b]), M.nabf(noisy, [self.a, b]))
        self.assertEqual(M.nabf(self.a, [self.a, b]), 0.0)

    def test_constant_source_vif_is_nan(self):
        flat = np.full((96, 96), 7.0)
        self.assertTrue(math.isnan(M.vif(self.a, [flat, flat])))

    def test_entropy_of_two_levels(self):
        img = np.zeros((10, 10))
        img[:, 5:] = 200
        self.assertAlmostEqual(M.entropy(img), 1.0, places=12)
        self.assertAlmostEqual(M.entropy(img, base=math.e), math.log(2), places=12)

    def test_fmi_lower_for_unrelated_fused(self):
        b = structured_image((96, 96), 6)
        noise = np.random.default_rng(1).integers(0, 256, (96, 96)).astype(float)
        fused = np.round((self.a + b) / 2)
        self.assertGreater(M.fmi(fused, [self.a, b]), M.fmi(noise, [self.a, b]))


def _repeat(img2d: np.ndarray, depth: int) -> np.ndarray:
    return np.repeat(img2d[:, :, None], depth, axis=2)


class TestVolumes(unittest.TestCase):
    """A volume made of one 2D image repeated along the last axis scores like the image (where the definition says)."""

    @classmethod
    def setUpClass(cls):
        cls.a2 = structured_image((90, 90), 7)
        cls.b2 = structured_image((90, 90), 8)
        cls.f2 = np.round(0.5 * cls.a2 + 0.5 * cls.b2 + 10 * (np.indices((90, 90))[1] % 9 == 0))

    def _pair(self, depth):
        return _repeat(self.f2, depth), [_repeat(self.a2, depth), _repeat(self.b2, depth)]

    @parameterized.expand([(name,) for name in ("EN", "SD", "SF", "MI", "SCD", "Qabf", "Nabf", "PSNR", "CC", "MSE")])
    def test_repeated_slices_equal_2d(self, name):
        f3, s3 = self._pair(5)
        fn = M.get_metric(name)
        self.assertAlmostEqual(fn(f3, s3), fn(self.f2, [self.a2, self.b2]), places=8)

    def test_average_gradient_3d(self):
        f3, _ = self._pair(5)
        self.assertAlmostEqual(M.average_gradient(f3), M.average_gradient(self.f2) * math.sqrt(2 / 3), places=8)

    def test_vif_3d_windows(self):
        # (not equal to 2D here: the scales' position counts along the third axis weight the sums differently)
        f3, s3 = self._pair(89)  # 4 scales need sides >= 89
        self.assertAlmostEqual(M.vif(s3[0], [s3[0], s3[0]]), 2.0, places=8)
        noisy = np.clip(f3 + np.random.default_rng(0).integers(-30, 31, f3.shape), 0, 255)
        self.assertGreater(M.vif(f3, s3), M.vif(noisy, s3))
        self.assertGreater(M.vif(f3, s3), 0.0)

    def test_vif_small_images_use_fewer_scales(self):
        crop = (slice(0, 64), slice(0, 64))  # 64 < 89: all 4 scales do not fit, the finest 3 do
        f2, a2, b2 = self.f2[crop], self.a2[crop], self.b2[crop]
        with self.assertWarns(UserWarning):
            got = M.vif(f2, [a2, b2])
        self.assertTrue(0.0 < got < 2.0, got)
        self.assertAlmostEqual(M.vif(a2, [a2, a2]), 2.0, places=8)  # a source fused to itself keeps all information
        self.assertNotAlmostEqual(got, M.vif(f2, [a2, b2], scales=3), places=3)  # not the 3-scale pyramid's windows
        with self.assertRaises(ValueError):
            M.vif(f2, [a2, b2], fewer_scales=False)
        tiny = (slice(0, 16), slice(0, 16))
        with self.assertRaises(ValueError):  # not even the finest scale (17x17 window) fits
            M.vif(self.f2[tiny], [self.a2[tiny], self.b2[tiny]])

    def test_ms_ssim_3d(self):
        crop = (slice(0, 64), slice(0, 64))
        f2, a2, b2 = self.f2[crop], self.a2[crop], self.b2[crop]
        f3, a3, b3 = _repeat(f2, 16), _repeat(a2, 16), _repeat(b2, 16)
        self.assertAlmostEqual(M.ms_ssim(f3, [a3, b3]), M.ms_ssim(f2, [a2, b2]), places=4)

    def test_all_metrics_run_on_a_volume(self):
        a, b = structured_image((24, 20, 16), 9), structured_image((24, 20, 16), 10)
        f = np.round((a + b) / 2)
        got = M.compute_metrics(f, [a, b], names=[n for n in M.DEFAULT_METRICS if n != "VIF"] + ["FMI"])
        for name, value in got.items():
            with self.subTest(metric=name):
                self.assertTrue(math.isfinite(value), value)
        with self.assertRaisesRegex(ValueError, "89"):
            M.vif(f, [a, b])


class TestThreeSources(unittest.TestCase):
    def setUp(self):
        self.s = [structured_image((64, 64), k) for k in (11, 12, 13)]
        self.f = np.round(sum(self.s) / 3)

    def test_sums_and_means_over_sources(self):
        a, b, c = self.s
        f = self.f
        self.assertAlmostEqual(M.mutual_information(f, [a, b, c]),
                               M.mutual_information(f, [a, b]) + M.mutual_information(f, [c, c]) / 2, places=9)
        self.assertAlmostEqual(M.ssim(f, [a, b, c]), M.ssim(f, [a, b]) + M.ssim(f, [c, c]) / 2, places=9)
        self.assertAlmostEqual(M.cc(f, [a, b, c]), (2 * M.cc(f, [a, b]) + M.cc(f, [c, c])) / 3, places=9)
        self.assertAlmostEqual(M.mse(f, [a, b, c]), (2 * M.mse(f, [a, b]) + M.mse(f, [c, c])) / 3, places=6)
        self.assertAlmostEqual(M.ms_ssim(f, [a, b, c]), (2 * M.ms_ssim(f, [a, b]) + M.ms_ssim(f, [c, c])) / 3,
                               places=6)

    def test_scd_three_sources(self):
        a, b, c = self.s
        f = self.f
        want = np_corr(a, f - b - c) + np_corr(b, f - a - c) + np_corr(c, f - a - b)
        self.assertAlmostEqual(M.scd(f, [a, b, c]), want, places=8)

    def test_edge_metrics_three_sources(self):
        a, b, _ = self.s
        self.assertAlmostEqual(M.qabf(self.f, [a, a, a]), M.qabf(self.f, [a, a]), places=6)
        self.assertAlmostEqual(M.nabf(self.f, [a, a, a]), M.nabf(self.f, [a, a]), places=6)
        self.assertGreater(M.qabf(self.f, [a, b, self.s[2]]), 0.0)

    def test_vif_three_sources(self):
        s = [structured_image((90, 90), k) for k in (14, 15, 16)]
        f = np.round(sum(s) / 3)
        self.assertAlmostEqual(M.vif(f, s), M.vif(f, s[:2]) + M.vif(f, [s[2], s[2]]) / 2, places=9)

    def test_all_defaults_except_vif_finite(self):
        names = [n for n in M.DEFAULT_METRICS if n != "VIF"]  # 64² is below VIF's 89-pixel minimum
        got = M.compute_metrics(self.f, self.s, names=names)
        self.assertEqual(list(got), names)
        for name, value in got.items():
            with self.subTest(metric=name):
                self.assertTrue(math.isfinite(value), value)


class TestBadInput(unittest.TestCase):
    def setUp(self):
        self.a = structured_image((32, 32), 1)

    @parameterized.expand([(name,) for name in ALL_SOURCE_METRICS])
    def test_shape_mismatch(self, name):
        with self.assertRaisesRegex(ValueError, "shape"):
            M.get_metric(name)(self.a, [self.a, self.a[:, :31]])

    @parameterized.expand([
        ("one_source", lambda a: ([a],), "at least 2"),
        ("1d", lambda a: (a[0], [a[0], a[0]]), "2D"),
        ("4d", lambda a: (a[None, :, :, None], [a[None, :, :, None]] * 2), "2D"),
        ("nan", lambda a: (np.where(a > 100, np.nan, a), [a, a]), "NaN"),
        ("unit_range_ok_but_over_255", lambda a: (a * 2, [a, a]), "0..255"),
        ("negative", lambda a: (a - 100, [a, a]), "0..255"),
        ("no_sources", lambda a: (a, None), "source"),
        ("single_array_as_sources", lambda a: (a, a), "sequence"),
    ])
    def test_bad_inputs_raise(self, _, make, pattern):
        args = make(self.a)
        if len(args) == 1:
            args = (self.a, args[0])
        with self.assertRaisesRegex(ValueError, pattern):
            M.mutual_information(*args)

    def test_unknown_metric_and_options(self):
        with self.assertRaisesRegex(ValueError, "unknown fusion metric"):
            M.compute_metrics(self.a, [self.a, self.a], names=["EN", "Sharpness"])
        with self.assertRaisesRegex(ValueError, "reduction"):
            M.ssim(self.a, [self.a, self.a], reduction="max")
        with self.assertRaisesRegex(ValueError, "feature"):
            M.fmi(self.a, [self.a, self.a], feature="dct")
        with self.assertRaisesRegex(ValueError, "win_size"):
            M.ssim(self.a, [self.a, self.a], win_size=4)

    def test_too_small_for_windows(self):
        tiny = self.a[:8, :8]
        with self.assertRaisesRegex(ValueError, "ms_ssim"):
            M.ms_ssim(tiny, [tiny, tiny])
        with self.assertRaisesRegex(ValueError, "ssim"):
            M.ssim(tiny[:5, :5], [tiny[:5, :5]] * 2)

    def test_no_reference_metrics_ignore_sources(self):
        got = M.compute_metrics(self.a, None, names=["EN", "SD", "SF", "AG"])
        self.assertEqual(set(got), {"EN", "SD", "SF", "AG"})
        self.assertEqual(M.get_metric("EN")(self.a, [self.a, self.a[:3]]), M.entropy(self.a))
        with self.assertRaisesRegex(ValueError, "source"):
            M.compute_metrics(self.a, None, names=["EN", "MI"])


class TestRegistry(unittest.TestCase):
    def test_names_and_directions(self):
        self.assertEqual(len(M.DEFAULT_METRICS), 13)
        self.assertEqual(M.PAPER_METRICS, ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM"))
        self.assertTrue(set(M.PAPER_METRICS) <= set(M.DEFAULT_METRICS))
        lower = {n for n, better in M.HIGHER_IS_BETTER.items() if not better}
        self.assertEqual(lower, {"Nabf", "MSE"})
        self.assertTrue(set(M.DEFAULT_METRICS) <= set(M.HIGHER_IS_BETTER))


if __name__ == "__main__":
    unittest.main()
