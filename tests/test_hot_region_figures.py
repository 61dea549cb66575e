"""``docs/figures/hot_regions.py`` (zoomed hot regions per method) and ``docs/figures/tradeoff.py`` (anatomy against
MI/Qabf/SSIM)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import tempfile
import unittest
from pathlib import Path

import numpy as np
from PIL import Image

from tests.utils import REPO_ROOT


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_figure", REPO_ROOT / "docs" / "figures" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_pet_case(root: Path) -> None:
    """A 64² MRI (stripes) and a red-ish PET blob brighter than it, plus max-abs and MRI-copy 'fusions'."""
    yy, xx = np.mgrid[:64, :64]
    mri = ((60 + 30 * np.sin(xx * 2 * np.pi / 6)) * (((yy - 32) ** 2 + (xx - 32) ** 2) < 28**2)).astype(np.uint8)
    blob = np.exp(-((yy - 32) ** 2 + (xx - 24) ** 2) / (2 * 9.0**2))
    pet = np.stack([250 * blob, 200 * blob, 60 * blob], axis=-1).astype(np.uint8)
    for folder, img in (("MRI", mri), ("PET", pet)):
        (root / "data" / "MRI_PET" / "test" / folder).mkdir(parents=True)
        Image.fromarray(img).save(root / "data" / "MRI_PET" / "test" / folder / "a.png")
    grey_pet = (pet.astype(float) @ [0.299, 0.587, 0.114]).round().astype(np.uint8)
    for method, img in (("maxabs", np.maximum(mri, grey_pet)), ("mri", mri)):
        (root / "eval" / "fused" / method / "MRI_PET").mkdir(parents=True)
        Image.fromarray(img).save(root / "eval" / "fused" / method / "MRI_PET" / "a.png")


class TestHotRegionsFigure(unittest.TestCase):
    def test_figure_and_missing_method(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            _write_pet_case(root)
            args = [str(root / "eval"), "--data-dir", str(root / "data"), "-o", str(root / "fig.png"), "--zoom", "32"]
            with contextlib.redirect_stdout(io.StringIO()):
                _load("hot_regions").main(args + ["--methods", "maxabs", "mri"])
            self.assertGreater((root / "fig.png").stat().st_size, 1000)
            with self.assertRaises(SystemExit) as ctx:
                _load("hot_regions").main(args + ["--methods", "laplacian"])
            self.assertIn("missing", str(ctx.exception))

    def test_no_colour_task_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as tmp, self.assertRaises(SystemExit) as ctx:
            _load("hot_regions").main([tmp, "--data-dir", tmp, "-o", str(Path(tmp) / "f.png")])
        self.assertIn("no MRI_PET or MRI_SPECT", str(ctx.exception))


class TestTradeoffFigure(unittest.TestCase):
    def test_points_relative_to_the_reference(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for folder, methods in (("a", {"maxabs": (0.1, 3.0), "laplacian": (0.5, 1.5)}), ("b", {"maxabs": (0.1, 3.0)})):
                summary = {"MRI_PET": {m: {"anatomy": {"mean": an}, "MI": {"mean": mi}, "Qabf": {"mean": 0.7},
                                           "SSIM": {"mean": None}} for m, (an, mi) in methods.items()}}
                (root / folder).mkdir()
                (root / folder / "summary.json").write_text(json.dumps({"summary": summary}))
            module = _load("tradeoff")
            points = module.load_points([root / "a", root / "b"])
            self.assertEqual(set(points["MRI_PET"]), {"maxabs", "laplacian", "maxabs (b)"})
            with contextlib.redirect_stdout(io.StringIO()):
                module.main([str(root / "a"), str(root / "b"), "-o", str(root / "t.png")])
            self.assertGreater((root / "t.png").stat().st_size, 1000)
            with self.assertRaises(SystemExit) as ctx:
                module.main([str(root / "a"), "--reference", "gff", "-o", str(root / "t.png")])
            self.assertIn("gff", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
