from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from mmif.cli import main as cli_main
from mmif.inferers import find_fusion_samples


def _grey(path: Path, seed: int, size=(32, 40)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = (rng.random(size) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def _rgb(path: Path, seed: int, size=(32, 40)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = np.zeros((*size, 3), np.uint8)
    arr[..., 0] = (rng.random(size) * 200 + 40).astype(np.uint8)  # a reddish pseudo-colour image
    arr[..., 1] = arr[..., 0] // 3
    arr[..., 2] = 20
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def _nifti(path: Path, seed: int, affine: np.ndarray, shape=(12, 14, 10)) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32) * 1000, affine), str(path))


def run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["fuse", *argv])
    return code, err.getvalue()


class TestFuseCommand(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_single_grey_pair(self):
        mri = _grey(self.tmp / "MRI" / "a.png", 0)
        ct = _grey(self.tmp / "CT" / "a.png", 1)
        out = self.tmp / "out" / "f.png"
        code, err = run("--mri", str(self.tmp / "MRI/a.png"), "--other", str(self.tmp / "CT/a.png"), "-o", str(out),
                        "--method", "average")
        self.assertEqual(code, 0, err)
        fused = np.asarray(Image.open(out))
        self.assertEqual(fused.shape, mri.shape)  # greyscale, same size
        # MR and CT scale by their own rules; the average lies between the sources' extremes
        self.assertLessEqual(fused.max(), max(mri.max(), ct.max()))

    def test_grey_and_colour_gives_colour_keeping_chroma(self):
        _grey(self.tmp / "MRI" / "a.png", 0)
        pet = _rgb(self.tmp / "PET" / "a.png", 1)
        out = self.tmp / "f.png"
        code, err = run("--mri", str(self.tmp / "MRI/a.png"), "--other", str(self.tmp / "PET/a.png"), "-o", str(out),
                        "--method", "average")
        self.assertEqual(code, 0, err)
        fused = np.asarray(Image.open(out)).astype(float)
        self.assertEqual(fused.shape, pet.shape)
        # the functional image's hue is carried over: red dominates where the PET is red
        self.assertGreater((fused[..., 0] - fused[..., 2]).mean(), 20)

    def test_folder_with_three_modalities_and_a_colour_source(self):
        for i, name in enumerate(["1", "2", "10"]):
            _grey(self.tmp / "in" / "MRI" / f"{name}.png", i)
            _grey(self.tmp / "in" / "CT" / f"{name}.png", 10 + i)
            _rgb(self.tmp / "in" / "SPECT" / f"{name}.png", 20 + i)
        samples = find_fusion_samples(self.tmp / "in")
        self.assertEqual([s["name"] for s in samples], ["1", "2", "10"])
        self.assertEqual(samples[0]["modalities"][0], "MRI")
        folders = ["--input-dir", str(self.tmp / "in"), "--output-dir", str(self.tmp / "out")]
        code, err = run(*folders, "--method", "maxabs")
        self.assertEqual(code, 0, err)
        for name in ["1", "2", "10"]:
            self.assertEqual(np.asarray(Image.open(self.tmp / "out" / f"{name}.png")).shape, (32, 40, 3))

    def test_nifti_keeps_geometry(self):
        affine = np.array([[0, 0, 1.5, -20], [0, 2.0, 0, 5], [-1.2, 0, 0, 30], [0, 0, 0, 1]], dtype=float)
        _nifti(self.tmp / "in" / "MRI" / "case1.nii.gz", 0, affine)
        _nifti(self.tmp / "in" / "PET" / "case1.nii.gz", 1, affine)
        code, err = run("--input-dir", str(self.tmp / "in"), "--output-dir", str(self.tmp / "out"),
                        "--method", "average", "--window", "8")
        self.assertEqual(code, 0, err)
        out = nib.load(str(self.tmp / "out" / "case1.nii.gz"))
        self.assertEqual(out.shape, (12, 14, 10))
        np.testing.assert_allclose(out.affine, affine, atol=1e-5)
        data = np.asarray(out.dataobj)
        self.assertTrue(0.0 <= data.min() and data.max() <= 1.0)
        self.assertGreater(data.std(), 0.01)

    def test_refuses_to_overwrite_an_input(self):
        _grey(self.tmp / "MRI" / "a.png", 0)
        _grey(self.tmp / "CT" / "a.png", 1)
        before = (self.tmp / "CT" / "a.png").read_bytes()
        code, err = run("--mri", str(self.tmp / "MRI/a.png"), "--other", str(self.tmp / "CT/a.png"),
                        "-o", str(self.tmp / "CT" / "a.png"), "--method", "average")
        self.assertEqual(code, 2)
        self.assertIn("overwrite", err)
        self.assertEqual((self.tmp / "CT" / "a.png").read_bytes(), before)
        # a folder run whose output folder is a modality folder
        code, err = run("--input-dir", str(self.tmp), "--output-dir", str(self.tmp / "MRI"), "--method", "average")
        self.assertEqual(code, 2)
        self.assertIn("overwrite", err)

    def test_mismatched_pair(self):
        _grey(self.tmp / "in" / "MRI" / "a.png", 0)
        _grey(self.tmp / "in" / "CT" / "b.png", 1)
        folders = ["--input-dir", str(self.tmp / "in"), "--output-dir", str(self.tmp / "out")]
        code, err = run(*folders, "--method", "average")
        self.assertEqual(code, 2)
        self.assertIn("no partner", err)
        # different sizes in a single pair
        _grey(self.tmp / "x" / "MRI" / "a.png", 0, size=(32, 40))
        _grey(self.tmp / "x" / "CT" / "a.png", 1, size=(30, 40))
        code, err = run("--mri", str(self.tmp / "x/MRI/a.png"), "--other", str(self.tmp / "x/CT/a.png"),
                        "-o", str(self.tmp / "f.png"), "--method", "average")
        self.assertEqual(code, 2)
        self.assertIn("differs", err)

    def test_wrong_channel_count_and_unreadable_file(self):
        _grey(self.tmp / "MRI" / "a.png", 0)
        la = np.zeros((32, 40, 2), np.uint8)
        (self.tmp / "CT").mkdir()
        Image.fromarray(la, mode="LA").save(self.tmp / "CT" / "a.png")
        code, err = run("--mri", str(self.tmp / "MRI/a.png"), "--other", str(self.tmp / "CT/a.png"),
                        "-o", str(self.tmp / "f.png"), "--method", "average")
        self.assertEqual(code, 2)
        self.assertIn("channels", err)
        (self.tmp / "CT" / "a.png").write_bytes(b"not an image at all")
        code, err = run("--mri", str(self.tmp / "MRI/a.png"), "--other", str(self.tmp / "CT/a.png"),
                        "-o", str(self.tmp / "f.png"), "--method", "average")
        self.assertEqual(code, 2)
        self.assertIn("cannot read", err)
        self.assertFalse((self.tmp / "f.png").exists())

    def test_unknown_method_and_missing_default_weights(self):
        _grey(self.tmp / "MRI" / "a.png", 0)
        _grey(self.tmp / "CT" / "a.png", 1)
        args = ["--mri", str(self.tmp / "MRI/a.png"), "--other", str(self.tmp / "CT/a.png")]
        args += ["-o", str(self.tmp / "f.png")]
        code, err = run(*args, "--method", "nosuchmethod")
        self.assertEqual(code, 2)
        self.assertIn("unknown fusion method", err)
        code, err = run(*args, "--bundle", str(self.tmp / "nobundle"))
        self.assertEqual(code, 2)
        self.assertIn("laplacian", err)  # says how to proceed without weights

    def test_needs_one_mode(self):
        code, err = run("--method", "average")
        self.assertEqual(code, 2)
        self.assertIn("either", err)


if __name__ == "__main__":
    unittest.main()
