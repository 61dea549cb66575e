"""``mmif bench metrics`` runs and prints the per-metric figures (no timing assertions)."""

from __future__ import annotations

import contextlib
import io
import unittest

import torch

from mmif.bench import TARGETS, metric_triple, time_call
from mmif.cli import main as cli_main


class TestBench(unittest.TestCase):
    def setUp(self):
        self.threads = torch.get_num_threads()

    def tearDown(self):
        torch.set_num_threads(self.threads)

    def test_metrics_target(self):
        self.assertIn("metrics", TARGETS)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cli_main(["bench", "metrics", "--repeats", "1", "--warmup", "0", "--threads", "1"])
        self.assertEqual(rc, 0)
        text = out.getvalue()
        for name in ("EN", "Qabf", "MS_SSIM", "ALL 13"):
            self.assertIn(name, text)

    def test_triple_and_timer(self):
        fused, sources, what = metric_triple(64)
        self.assertEqual(len(sources), 2)
        self.assertEqual(fused.shape, sources[0].shape)
        self.assertTrue(what)
        med, best, cpu = time_call(lambda: None, repeats=3, warmup=0)
        self.assertGreaterEqual(med, best)
        self.assertGreaterEqual(cpu, 0.0)

    def test_bad_option(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(cli_main(["bench", "metrics", "--repeats", "0"]), 2)


if __name__ == "__main__":
    unittest.main()
