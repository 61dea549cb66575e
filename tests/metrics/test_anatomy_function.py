"""``anatomy`` and ``function`` (anatomy under function): real Harvard MRI/PET pairs where present, generated images
always; fixed points (F = MRI, F = PET, the halfway blend), empty masks, volumes, N = 3 sources, shared computation and
the NaN-skipping validation average."""

from __future__ import annotations

import math
import unittest

import numpy as np
import torch

import mmif.metrics as M
from tests.metrics._helpers import one_thread_module, structured_image
from tests.utils import data_root, skip_unless_data

setUpModule, tearDownModule = one_thread_module()

PET_TEST = "harvard/MRI_PET/test"
#: a few test pairs spread over the split (25015, 25022, 25027 are neighbouring slices of one subject)
PET_NAMES = ("25015", "25022", "25027", "30034")


def _read_gray(path) -> np.ndarray:
    """The reference reading: 8-bit grey/RGB -> float BT.601 luma, rounded (0..255)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(M.to_gray8(np.asarray(im.convert("RGB"))), dtype=np.float64)


def _pet_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(MRI, PET luminance)`` of one Harvard MRI/PET test pair."""
    folder = data_root() / PET_TEST
    return _read_gray(folder / "MRI" / f"{name}.png"), _read_gray(folder / "PET" / f"{name}.png")


def _generated_pair(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dim textured "MRI" with an edge, and a "tracer" blob that outshines it off-centre (M covers ~20 %)."""
    a = np.round(structured_image(shape, seed) * 0.6)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    r2 = sum((g - 0.55 * s) ** 2 for g, s in zip(grids, shape))
    b = np.round(230.0 * np.exp(-r2 / (2.0 * (0.2 * shape[0]) ** 2)))
    return a, b


def _maxabs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.abs(a) >= np.abs(b), a, b)


def _repeat(x: np.ndarray, depth: int) -> np.ndarray:
    return np.repeat(x[..., None], depth, axis=-1)


class _FixedPoints:
    """The properties every pair must have; subclasses provide ``pairs`` (2D) and ``volume`` (3D, stacked)."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    volume: tuple[np.ndarray, np.ndarray]
    #: the volume stacks unrelated slices: the 3D blur (sigma 4 voxels along depth too) mixes them
    volume_mixes_slices = False

    def _cases(self):
        for i, (a, b) in enumerate([*self.pairs, self.volume]):
            with self.subTest(case=i, ndim=a.ndim):
                yield a, b

    def test_maxabs_loses_the_anatomy_keeps_the_function(self):
        for a, b in self._cases():
            f = _maxabs(a, b)
            self.assertLess(M.anatomy(f, [a, b]), 0.3)
            if a.ndim == 2 or not self.volume_mixes_slices:
                self.assertGreater(M.function(f, [a, b]), 0.5)

    def test_fused_equal_to_mri(self):
        for a, b in self._cases():
            self.assertGreater(M.anatomy(a, [a, b]), 0.9)
            self.assertAlmostEqual(M.function(a, [a, b]), 0.0, delta=1e-9)

    def test_fused_equal_to_functional(self):
        for a, b in self._cases():
            self.assertAlmostEqual(M.function(b, [a, b]), 1.0, delta=1e-9)
            self.assertLess(M.anatomy(b, [a, b]), 0.3)

    def test_halfway_blend(self):
        for a, b in self._cases():
            # the blur is linear: exactly 1/2 unrounded; the 8-bit rounding moves it a little
            self.assertAlmostEqual(M.function((a + b) / 2.0, [a, b]), 0.5, delta=1e-9)
            self.assertAlmostEqual(M.function(np.round((a + b) / 2.0), [a, b]), 0.5, delta=0.01)

    def test_computed_together_equal_separate_calls(self):
        for a, b in self._cases():
            f = np.round(0.7 * _maxabs(a, b) + 0.3 * a)
            got = M.compute_metrics(f, [a, b], names=["Qabf", "anatomy", "function"])
            self.assertEqual(list(got), ["Qabf", "anatomy", "function"])
            self.assertAlmostEqual(got["Qabf"], M.qabf(f, [a, b]), places=12)
            self.assertAlmostEqual(got["anatomy"], M.anatomy(f, [a, b]), places=12)
            self.assertAlmostEqual(got["function"], M.function(f, [a, b]), places=12)
            # the shared edge terms do not depend on which metric computed them first
            first = M.compute_metrics(f, [a, b], names=["anatomy", "Qabf"])
            self.assertAlmostEqual(first["Qabf"], got["Qabf"], places=12)
            self.assertAlmostEqual(first["anatomy"], got["anatomy"], places=12)


@skip_unless_data(PET_TEST)
class TestHarvardPET(_FixedPoints, unittest.TestCase):
    volume_mixes_slices = True

    @classmethod
    def setUpClass(cls) -> None:
        cls.pairs = [_pet_pair(n) for n in PET_NAMES]
        # three slices of one subject (not adjacent) as a (128, 128, 3) volume, the centre of the 256² slices
        cls.volume = tuple(np.stack(s, axis=-1)[64:192, 64:192] for s in zip(*cls.pairs[:3]))

    def test_stacked_slices_are_blurred_together(self):
        """``M`` and ``function`` are 3D: a stack of 3 dissimilar slices is blurred across them, so max-abs's
        brightness (the mean of per-slice maxima) no longer follows the stack's blurred tracer."""
        a, b = self.volume
        per_slice = [M.function(_maxabs(a[..., k], b[..., k]), [a[..., k], b[..., k]]) for k in range(3)]
        self.assertGreater(min(per_slice), 0.5)
        self.assertLess(M.function(_maxabs(a, b), [a, b]), 0.5 * min(per_slice))

    def test_masks_cover_part_of_the_slice(self):
        for a, b in self.pairs:
            frac = float(M.function_dominant_mask(a, b).double().mean())
            self.assertGreater(frac, 0.01)
            self.assertLess(frac, 0.5)

    def test_repeated_slice_volume_equals_the_slice(self):
        a, b = (x[64:192, 64:192] for x in self.pairs[0])
        f = _maxabs(a, b)
        vol = [_repeat(x, 3) for x in (f, a, b)]
        self.assertAlmostEqual(M.anatomy(vol[0], vol[1:]), M.anatomy(f, [a, b]), places=9)
        self.assertAlmostEqual(M.function(vol[0], vol[1:]), M.function(f, [a, b]), places=9)


class TestGenerated(_FixedPoints, unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.pairs = [_generated_pair((64, 56), seed) for seed in (0, 1)]
        cls.volume = _generated_pair((40, 36, 6), 2)

    def test_empty_mask_is_nan(self):
        a, b = self.pairs[0]
        f = _maxabs(a, b)
        for sources in ([a, np.round(0.5 * a)],  # the functional image darker than the MRI everywhere
                        [a, a],  # identical sources
                        [np.zeros_like(a), np.full_like(a, 15.0)]):  # brighter, but under the floor
            with self.subTest(sources=len(sources)):
                self.assertFalse(bool(M.function_dominant_mask(*sources).any()))
                self.assertTrue(math.isnan(M.anatomy(f, sources)))
                self.assertTrue(math.isnan(M.function(f, sources)))
                got = M.compute_metrics(f, sources, names=["anatomy", "function", "Qabf"])
                self.assertTrue(math.isnan(got["anatomy"]) and math.isnan(got["function"]))
                self.assertTrue(math.isfinite(got["Qabf"]))

    def test_anatomy_nan_without_mri_edges_in_the_mask(self):
        _, b = self.pairs[0]
        flat = np.full_like(b, 50.0)
        f = _maxabs(flat, b)
        self.assertTrue(math.isnan(M.anatomy(f, [flat, b])))
        self.assertTrue(math.isfinite(M.function(f, [flat, b])))

    def test_function_negative_further_from_the_tracer_than_the_mri(self):
        a, b = self.pairs[0]
        self.assertLess(M.function(np.zeros_like(a), [a, b]), 0.0)

    def test_repeated_slice_volume_equals_the_slice(self):
        a, b = self.pairs[0]
        f = np.round(0.5 * (a + _maxabs(a, b)))
        vol = [_repeat(x, 5) for x in (f, a, b)]
        self.assertAlmostEqual(M.anatomy(vol[0], vol[1:]), M.anatomy(f, [a, b]), places=9)
        self.assertAlmostEqual(M.function(vol[0], vol[1:]), M.function(f, [a, b]), places=9)

    def test_three_sources_average_over_functional_sources(self):
        (a, b1), (_, b2) = self.pairs
        b2 = np.roll(b2, 9, axis=1)  # a second tracer image elsewhere
        f = np.round((a + _maxabs(b1, b2)) / 2.0)
        for fn in (M.anatomy, M.function):
            with self.subTest(metric=fn.__name__):
                pair_values = [fn(f, [a, b1]), fn(f, [a, b2])]
                self.assertNotAlmostEqual(*pair_values, places=3)
                self.assertAlmostEqual(fn(f, [a, b1, b2]), float(np.mean(pair_values)), places=12)
                # a functional source whose M is empty does not count
                self.assertAlmostEqual(fn(f, [a, b1, np.round(0.5 * a)]), pair_values[0], places=12)

    def test_bad_input(self):
        a, b = self.pairs[0]
        with self.assertRaisesRegex(ValueError, "at least 2"):
            M.anatomy(a, [a])
        with self.assertRaisesRegex(ValueError, "shape"):
            M.function(a, [a, b[:-1]])


class TestValidationAverage(unittest.TestCase):
    """``FusionMetric`` (behind the bundles' ``val_anatomy`` / ``val_function``): the mean over the images where the
    score is defined, NaN when it is defined for none."""

    @staticmethod
    def _batch(empty: tuple[bool, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = _generated_pair((48, 40))
        samples = [(a, np.round(0.5 * a)) if e else (a, np.roll(b, 4 * i, axis=0)) for i, e in enumerate(empty)]
        src = torch.stack([torch.from_numpy(np.stack(s)) for s in samples]) / 255.0
        return src.amax(1, keepdim=True), src  # max-abs fusion, (B, 1, H, W) and (B, 2, H, W) in [0, 1]

    def test_nan_images_are_skipped(self):
        fused, src = self._batch((False, True, False))
        for name in M.ANATOMY_METRICS:
            with self.subTest(metric=name):
                metric = M.FusionMetric(name, get_not_nans=True)
                values = metric(fused, src)[:, 0]
                self.assertTrue(math.isnan(float(values[1])))
                mean, not_nans = metric.aggregate()
                self.assertEqual(float(not_nans), 2.0)
                self.assertAlmostEqual(float(mean), float(values[[0, 2]].mean()), places=6)

    def test_nan_when_no_image_has_a_value(self):
        fused, src = self._batch((True, True))
        for name in M.ANATOMY_METRICS:
            with self.subTest(metric=name):
                metric = M.FusionMetric(name)
                metric(fused, src)
                self.assertTrue(math.isnan(float(metric.aggregate())))  # not MONAI's 0 for "no value"
                self.assertTrue(math.isnan(float(metric.aggregate("mean_batch"))))
                self.assertEqual(tuple(metric.aggregate("none").shape), (2, 1))

    def test_ignite_handler(self):
        from ignite.engine import Engine
        from monai.handlers import from_engine

        batches = [self._batch((False, True)), self._batch((True, True))]
        engine = Engine(lambda e, batch: {"pred": batch[0], "label": batch[1]})
        for name, handler in M.fusion_metric_handlers(M.ANATOMY_METRICS, prefix="val_",
                                                      output_transform=from_engine(["pred", "label"])).items():
            handler.attach(engine, name)
        engine.run(batches, max_epochs=1)
        fused, src = batches[0]
        self.assertAlmostEqual(engine.state.metrics["val_anatomy"], M.anatomy(fused[0, 0] * 255, src[0] * 255),
                               places=5)
        self.assertAlmostEqual(engine.state.metrics["val_function"], M.function(fused[0, 0] * 255, src[0] * 255),
                               places=5)
        self.assertEqual(int(torch.isnan(engine.state.metric_details["val_anatomy"]).sum()), 3)


if __name__ == "__main__":
    unittest.main()
