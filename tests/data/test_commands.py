from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import unittest
from pathlib import Path

from mmif.cli import main
from tests.data.synthetic import write_pair_folder, write_png


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


class TestCommands(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_phantom_then_prepare(self):
        out = self.root / "ph"
        code, stdout, _ = run("phantom", str(out), "--size", "16", "--cases", "2", "--slices", "2",
                              "--datalist", str(self.root / "ph.json"))
        self.assertEqual(code, 0)
        self.assertTrue((out / "MRI_SPECT/test/SPECT/6000.png").is_file())
        code, stdout, _ = run("prepare", str(out), "-o", str(self.root / "dl.json"), "--split-by", "case",
                              "--seed", "1", "--no-progress")
        self.assertEqual(code, 0)
        self.assertIn("MRI_PET", stdout)
        datalist = json.loads((self.root / "dl.json").read_text(encoding="utf-8"))
        self.assertEqual(sum(len(v) for v in datalist.values()), 3 * 2 * 2)

    def test_prepare_error_is_one_line_and_status_2(self):
        write_pair_folder(self.root / "d", "MRI_CT", names=("1001",))
        lone = write_png(self.root / "d/MRI_CT/MRI/1002.png")
        code, _, stderr = run("prepare", str(self.root / "d"), "-o", str(self.root / "dl.json"))
        self.assertEqual(code, 2)
        self.assertIn(str(lone), stderr)
        self.assertNotIn("Traceback", stderr)
        self.assertFalse((self.root / "dl.json").exists())
        code, stdout, _ = run("prepare", str(self.root / "d"), "-o", str(self.root / "dl.json"), "--skip-bad",
                              "--no-progress")
        self.assertEqual(code, 0)
        self.assertIn("skipped 1", stdout)
        self.assertIn(str(lone), stdout)

    def test_bad_fraction_is_a_user_error(self):
        write_pair_folder(self.root / "d", "MRI_CT", names=("1001", "2001"))
        code, _, stderr = run("prepare", str(self.root / "d"), "-o", str(self.root / "x.json"),
                              "--val-fraction", "1.5")
        self.assertEqual(code, 2)
        self.assertIn("val_fraction", stderr)


if __name__ == "__main__":
    unittest.main()
