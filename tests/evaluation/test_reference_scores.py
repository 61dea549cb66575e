"""Scores written by the evaluation equal the metric reference on real Harvard MRI/CT pairs.

The reference (``shared/reference/metrics.json``) scored the classical fusions of 4 MRI/CT test pairs. For grey pairs
our 8-bit outputs equal the reference's fused images (up to a few pixels for laplacian/dwt), so the whole chain —
loading, fusion, 8-bit writing, reading convention, metrics — must reproduce its numbers within its tolerance.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import unittest
from pathlib import Path

from mmif.evaluation import evaluate
from tests.utils import reference_root

_REF = reference_root()
METRICS = ["EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR", "CC"]


def _tolerance(value: float) -> float:
    return max(1e-3, 5e-3 * abs(value))


@unittest.skipIf(_REF is None, "metric reference not found (shared/reference beside shared/data; set MMIF_DATA)")
class TestAgainstReference(unittest.TestCase):
    def test_mri_ct_scores(self):
        shared = _REF.parent
        cases = [c for c in json.loads((_REF / "metrics.json").read_text(encoding="utf-8"))["cases"] if c["task"] == "MRI_CT"]
        names = sorted({c["name"] for c in cases})[:2]
        entries = []
        for name in names:
            c = next(c for c in cases if c["name"] == name)
            entries.append({"image": [str(shared / c["A"]), str(shared / c["B"])], "modalities": ["MRI", "CT"],
                            "task": "MRI_CT", "name": name, "spatial_dims": 2})
        tmp = Path(tempfile.mkdtemp(prefix="mmif_eval_ref_"))
        try:
            res = evaluate(["average", "maxabs", "laplacian", "dwt"], tmp, datalist={"test": entries},
                           metrics=METRICS, tracking=False, progress=False, panel_rows=0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        ours = {(r["name"], r["method"]): r for r in res.rows}
        checked = 0
        for c in cases:
            if c["name"] not in names or c["method"] not in ("average", "maxabs", "laplacian", "dwt"):
                continue
            for m in METRICS:
                ref = c["metrics"][m]
                got = ours[(c["name"], c["method"])][m]
                self.assertLessEqual(abs(got - ref), _tolerance(ref), f"{c['name']} {c['method']} {m}: {got} vs {ref}")
                checked += 1
        self.assertEqual(checked, 2 * 4 * len(METRICS))


if __name__ == "__main__":
    unittest.main()
