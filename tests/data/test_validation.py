from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np

from mmif.data import Problem, build_datalist, check_sample, order_modalities, source_kind
from mmif.errors import InputError
from tests.data.synthetic import LAS_AFFINE, write_nifti, write_pair_folder, write_png


class TestModalityKinds(unittest.TestCase):
    def test_kinds_and_order(self):
        self.assertEqual([source_kind(m) for m in ("MRI", "t1c", "CT", "PET", "spect")],
                         ["mr", "mr", "other", "functional", "functional"])
        self.assertEqual(order_modalities(["pet", "ct", "flair", "spect", "t1"]), ["flair", "t1", "ct", "pet", "spect"])


class TestFolderErrors2D(unittest.TestCase):
    """Each bad input gives one InputError naming the file; skip_bad reports it instead."""

    def setUp(self):
        self.root = Path(tempfile.mkdtemp())
        write_pair_folder(self.root, "MRI_CT", names=("1001", "1002", "2001"))

    def tearDown(self):
        shutil.rmtree(self.root)

    def assert_error_names(self, path, words, **kwargs):
        with self.assertRaises(InputError) as cm:
            build_datalist(self.root, **kwargs)
        msg = str(cm.exception)
        self.assertTrue(msg.startswith(str(path)), msg)
        self.assertEqual(len(msg.splitlines()), 1)
        for w in words:
            self.assertIn(w, msg)
        return msg

    def test_missing_partner(self):
        lone = write_png(self.root / "MRI_CT/MRI/3001.png")
        msg = self.assert_error_names(lone, ["no partner", "3001"], validate=False)
        self.assertIn(str(self.root / "MRI_CT/CT"), msg)

    def test_size_mismatch(self):
        ct = write_png(self.root / "MRI_CT/CT/1002.png", size=(16, 20))
        self.assert_error_names(ct, ["size", "(16, 20)", "(16, 16)"])

    def test_rgb_where_grey_expected(self):
        ct = write_png(self.root / "MRI_CT/CT/1001.png", rgb=True)
        self.assert_error_names(ct, ["colour", "greyscale", "CT"])

    def test_two_colour_sources(self):
        write_pair_folder(self.root, "MRI_PET_SPECT", names=("1001",))
        spect = self.root / "MRI_PET_SPECT/SPECT/1001.png"
        self.assert_error_names(spect, ["at most one source", "PET/1001.png"], tasks=["MRI_PET_SPECT"])

    def test_corrupt_file(self):
        bad = self.root / "MRI_CT/MRI/1002.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
        self.assert_error_names(bad, ["cannot read"])
        # the pairing-only fast path does not read it
        datalist, problems = build_datalist(self.root, validate=False, split_by="case", val_fraction=0, test_fraction=0)
        self.assertEqual(len(datalist["training"]), 3)

    def test_empty_modality_folder(self):
        for p in (self.root / "MRI_CT/CT").iterdir():
            p.unlink()
        self.assert_error_names(self.root / "MRI_CT/CT", ["empty folder"], validate=False)

    def test_empty_root(self):
        empty = self.root / "empty"
        empty.mkdir()
        with self.assertRaises(InputError) as cm:
            build_datalist(empty)
        self.assertIn(str(empty), str(cm.exception))

    def test_same_name_in_two_splits(self):
        write_pair_folder(self.root, "MRI_PET", names=("1001",), split="train")
        write_pair_folder(self.root, "MRI_PET", names=("1001",), split="test")
        self.assert_error_names(self.root / "MRI_PET/train/MRI/1001.png", ["also in", "test/MRI/1001.png"],
                                validate=False)

    def test_not_an_image(self):
        txt = self.root / "MRI_CT/CT/notes.txt"
        txt.write_text("x", encoding="utf-8")
        self.assert_error_names(txt, ["not a 2D image"], validate=False)

    def test_skip_bad_reports_every_bad_sample(self):
        lone = write_png(self.root / "MRI_CT/MRI/3001.png")
        rgb = write_png(self.root / "MRI_CT/CT/1001.png", rgb=True)
        small = write_png(self.root / "MRI_CT/CT/1002.png", size=(8, 8))
        datalist, problems = build_datalist(self.root, skip_bad=True, split_by="case", val_fraction=0, test_fraction=0)
        self.assertEqual([e["name"] for e in datalist["training"]], ["2001"])
        self.assertTrue(all(isinstance(p, Problem) for p in problems))
        self.assertEqual(sorted(p.path for p in problems), sorted(map(str, (lone, rgb, small))))
        self.assertTrue(all(p.problem for p in problems))

    def test_all_bad_is_an_error_even_with_skip_bad(self):
        for name in ("1001", "1002", "2001"):
            write_png(self.root / f"MRI_CT/CT/{name}.png", rgb=True)
        with self.assertRaises(InputError):
            build_datalist(self.root, skip_bad=True)


class TestSampleErrors3D(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.root)

    def entry(self, *paths):
        return {"image": [str(p) for p in paths], "modalities": ["t1", "pet"][: len(paths)], "spatial_dims": 3}

    def check_names(self, bad, words, *paths):
        with self.assertRaises(InputError) as cm:
            check_sample(self.entry(*paths))
        msg = str(cm.exception)
        self.assertTrue(msg.startswith(str(bad)), msg)
        for w in words:
            self.assertIn(w, msg)

    def test_same_geometry_passes(self):
        a = write_nifti(self.root / "a/t1.nii.gz")
        b = write_nifti(self.root / "a/pet.nii.gz", seed=1)
        check_sample(self.entry(a, b))

    def test_spacing_mismatch(self):
        a = write_nifti(self.root / "t1.nii.gz")
        aff = LAS_AFFINE.copy()
        aff[2, 2] = 3.0
        b = write_nifti(self.root / "pet.nii.gz", affine=aff)
        self.check_names(b, ["spacing"], a, b)

    def test_direction_mismatch(self):
        a = write_nifti(self.root / "t1.nii.gz")
        aff = LAS_AFFINE.copy()
        aff[0, 0] = 1.5  # RAS instead of LAS
        b = write_nifti(self.root / "pet.nii.gz", affine=aff)
        self.check_names(b, ["orientation"], a, b)

    def test_origin_mismatch(self):
        a = write_nifti(self.root / "t1.nii.gz")
        aff = LAS_AFFINE.copy()
        aff[:3, 3] += 5.0
        b = write_nifti(self.root / "pet.nii.gz", affine=aff)
        self.check_names(b, ["origin"], a, b)

    def test_size_mismatch(self):
        a = write_nifti(self.root / "t1.nii.gz")
        b = write_nifti(self.root / "pet.nii.gz", shape=(8, 9, 6))
        self.check_names(b, ["size"], a, b)

    def test_nan(self):
        a = write_nifti(self.root / "t1.nii.gz")
        data = np.ones((8, 9, 7), np.float32)
        data[1, 2, 3] = np.nan
        b = write_nifti(self.root / "pet.nii.gz", data=data)
        self.check_names(b, ["NaN"], a, b)

    def test_2d_file_in_3d_sample(self):
        a = write_nifti(self.root / "t1.nii.gz")
        b = write_png(self.root / "pet.png")
        self.check_names(b, ["2D", "3D"], a, b)

    def test_missing_file(self):
        a = write_nifti(self.root / "t1.nii.gz")
        self.check_names(self.root / "pet.nii.gz", ["not found"], a, self.root / "pet.nii.gz")


if __name__ == "__main__":
    unittest.main()
