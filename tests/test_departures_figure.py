"""``docs/figures/departures.py``: the share of pixels where one fused result departs from another, and its figure."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import tempfile
import unittest
from pathlib import Path

import numpy as np
from PIL import Image

from tests.utils import REPO_ROOT

SCRIPT = REPO_ROOT / "docs" / "figures" / "departures.py"


def _load():
    spec = importlib.util.spec_from_file_location("departures_figure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestDeparturesFigure(unittest.TestCase):
    def test_share_and_figure(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            ref = np.zeros((32, 32), np.uint8)
            ref[8:24, 8:24] = 100  # 256 foreground pixels
            ours = ref.copy()
            ours[8:12, 8:24] = 200  # 64 of them differ: 25 %
            ours[12, 8] = 101  # one grey level: not a departure
            for method, img in (("dmfnet", ours), ("maxabs", ref)):
                folder = root / "fused" / method / "MRI_CT"
                folder.mkdir(parents=True)
                Image.fromarray(img).save(folder / "a.png")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                _load().main([str(root), "-o", str(root / "fig.png")])
            self.assertIn("MRI_CT: dmfnet differs from maxabs at 25.00 %", out.getvalue())
            self.assertGreater((root / "fig.png").stat().st_size, 1000)

    def test_missing_reference_image_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "fused" / "dmfnet" / "MRI_CT"
            folder.mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
            with self.assertRaises(SystemExit) as ctx:
                _load().main([tmp, "-o", str(Path(tmp) / "fig.png")])
            self.assertIn("maxabs", str(ctx.exception))
            self.assertIn("missing", str(ctx.exception))

    def test_missing_evaluation_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "fused" / "dmfnet").mkdir(parents=True)
            with self.assertRaises(SystemExit) as ctx:
                _load().main([tmp, "-o", str(Path(tmp) / "fig.png")])
            self.assertIn("no task folders", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
