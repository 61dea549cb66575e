"""mmif's metrics against the reference values in ``shared/reference/metrics.json`` (60 real cases)."""

from __future__ import annotations

import json
import math
import unittest

import numpy as np

from mmif.metrics import METRICS, compute_metrics, get_metric, to_gray8
from tests.metrics._helpers import one_thread_module
from tests.utils import reference_root

setUpModule, tearDownModule = one_thread_module()

_REF = reference_root()
_SKIP = "metric reference not found: set MMIF_DATA or place shared/ (data/ and reference/) beside the repo"
#: float32-computed references (README): looser tolerance
_LOOSE = ("MS_SSIM", "Nabf")


def _tolerance(name: str, ref: float) -> float:
    if name in _LOOSE:
        return max(2e-3, 1e-2 * abs(ref))
    return max(1e-3, 5e-3 * abs(ref))


def _read_gray(path) -> np.ndarray:
    """The reference reading: 3-channel 8-bit -> float BT.601 luma, rounded."""
    from PIL import Image

    with Image.open(path) as im:
        return to_gray8(np.asarray(im.convert("RGB")))


def _cases() -> list[dict]:
    return json.loads((_REF / "metrics.json").read_text(encoding="utf-8"))["cases"]


@unittest.skipIf(_REF is None, _SKIP)
class TestReferenceValues(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cases = _cases()
        cls.shared = _REF.parent

    def load(self, case):
        return [_read_gray(self.shared / case[k]) for k in ("F", "A", "B")]

    def test_every_case_every_metric(self):
        self.assertEqual(len(self.cases), 60)
        names = list(self.cases[0]["metrics"])
        self.assertTrue(set(names) <= set(METRICS), set(names) - set(METRICS))
        nan_cases = 0
        for case in self.cases:
            f, a, b = self.load(case)
            got = compute_metrics(f, [a, b], names=names)
            for name in names:
                ref = case["metrics"][name]
                with self.subTest(task=case["task"], name=case["name"], method=case["method"], metric=name):
                    if ref is None:  # the reference's NaN: SCD with F equal to a source
                        nan_cases += 1
                        self.assertTrue(math.isnan(got[name]), got[name])
                    else:
                        self.assertLessEqual(abs(got[name] - ref), _tolerance(name, ref), f"ours {got[name]} ref {ref}")
        self.assertEqual(nan_cases, 12)  # one identity_mri case per pair

    def test_functions_alone_equal_compute_metrics(self):
        """Sharing intermediates in compute_metrics must not change any value."""
        case = next(c for c in self.cases if c["method"] == "laplacian" and c["task"] == "MRI_PET")
        f, a, b = self.load(case)
        together = compute_metrics(f, [a, b], names=list(case["metrics"]))
        for name, value in together.items():
            spec = METRICS[name]
            alone = spec.function(f, [a, b], **spec.options) if spec.needs_sources else spec.function(f, **spec.options)
            with self.subTest(metric=name):
                self.assertAlmostEqual(alone, value, places=10)
                self.assertAlmostEqual(get_metric(name)(f, [a, b]), value, places=10)


if __name__ == "__main__":
    unittest.main()
