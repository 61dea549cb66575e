"""The summary table's standing line: best or within 1 % of the best, per method and task."""

from __future__ import annotations

import unittest

from mmif.evaluation.report import MetricSummary, near_best_counts, summary_markdown


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


if __name__ == "__main__":
    unittest.main()
