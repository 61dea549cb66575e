"""The summary table's standing line: best or within 1 % of the best, per method and task."""

from __future__ import annotations

import csv
import shutil
import tempfile
import unittest
from pathlib import Path

from mmif.evaluation.report import MetricSummary, near_best_counts, summary_markdown, write_summary_csv
from mmif.metrics import HIGHER_IS_BETTER


def _task(means: dict[str, dict[str, float]]) -> dict[str, dict[str, MetricSummary]]:
    return {meth: {m: MetricSummary(v, 0.0, 3, 0) for m, v in row.items()} for meth, row in means.items()}


HIB = {"MI": True, "SSIM": True, "Nabf": False}


class TestNearBest(unittest.TestCase):
    def test_counts_within_one_percent_both_directions(self):
        task = _task({
            "a": {"MI": 3.00, "SSIM": 1.000, "Nabf": 0.0100, "PSNR": 10.0},
            "b": {"MI": 2.98, "SSIM": 0.989, "Nabf": 0.0101, "PSNR": 20.0},  # MI -0.7 %, SSIM -1.1 %, Nabf +1 %
            "c": {"MI": float("nan"), "SSIM": 0.5, "Nabf": 0.0200, "PSNR": 30.0},
        })
        counts = near_best_counts(task, ["MI", "SSIM", "Nabf", "PSNR"], HIB)  # PSNR has no direction here
        self.assertEqual(counts, {"a": 3, "b": 2, "c": 0})

    def test_standing_line_under_each_table(self):
        summary = {"MRI_CT": _task({"a": {"MI": 3.0, "SSIM": 1.0}, "b": {"MI": 2.0, "SSIM": 0.995}})}
        md = summary_markdown(summary, ["MI", "SSIM"], HIB)
        self.assertIn("Best or within 1 % of the best on MI, SSIM: a 2/2, b 1/2.", md)
        alone = summary_markdown({"MRI_CT": _task({"a": {"MI": 3.0}})}, ["MI"], HIB)
        self.assertNotIn("Best or within", alone)  # one method: nothing to stand against
        self.assertNotIn("Best or within", summary_markdown(summary, ["MI", "SSIM"], HIB, standing_metrics=()))

    def test_anatomy_function_shown_not_counted(self):
        summary = {"MRI_PET": _task({
            "a": {"MI": 3.0, "SSIM": 1.0, "anatomy": 0.1, "function": 0.8},
            "b": {"MI": 2.0, "SSIM": 0.5, "anatomy": 0.9, "function": 0.9},
        })}
        md = summary_markdown(summary, ["MI", "SSIM", "anatomy", "function"], HIGHER_IS_BETTER)
        self.assertIn("| method | MI ↑ | SSIM ↑ | anatomy ↑ | function ↑ |", md)
        self.assertIn("| b | 2.0000 ± 0.0000 | 0.5000 ± 0.0000 | **0.9000 ± 0.0000** | **0.9000 ± 0.0000** |", md)
        self.assertIn("Best or within 1 % of the best on MI, SSIM: a 2/2, b 0/2.", md)


class TestSummaryCsv(unittest.TestCase):
    def test_counts_per_metric(self):
        summary = {"MRI_CT": {"a": {"EN": MetricSummary(5.0, 0.5, 3, 0),
                                    "anatomy": MetricSummary(0.4, 0.0, 1, 2)}}}
        tmp = Path(tempfile.mkdtemp(prefix="mmif_report_"))
        try:
            write_summary_csv(tmp / "summary.csv", summary, ["EN", "anatomy"])
            with open(tmp / "summary.csv", encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(list(rows[0]), ["task", "method", "n_images", "EN_mean", "EN_std", "EN_n",
                                         "anatomy_mean", "anatomy_std", "anatomy_n"])
        self.assertEqual((rows[0]["n_images"], rows[0]["EN_n"], rows[0]["anatomy_n"]), ("3", "3", "1"))
        self.assertEqual(float(rows[0]["anatomy_mean"]), 0.4)


if __name__ == "__main__":
    unittest.main()
