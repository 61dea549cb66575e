from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mmif.data import build_datalist, detect_layout, find_cases_3d
from mmif.errors import InputError
from mmif.io import load_image
from tests.data.synthetic import LAS_AFFINE, write_nifti


def write_dicom_series(folder: Path, shape_zyx=(4, 6, 5), spacing=(1.5, 1.5, 2.0), seed: int = 0) -> Path:
    """A tiny CT-like DICOM series written with SimpleITK (one file per slice)."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 1000, size=shape_zyx).astype(np.int16)
    vol = sitk.GetImageFromArray(arr)
    vol.SetSpacing(spacing)
    vol.SetOrigin((-10.0, 5.0, 3.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.4242"
    for k in range(shape_zyx[0]):
        sl = vol[:, :, k]
        origin = vol.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in (
            ("0008|0060", "CT"),
            ("0020|000e", series_uid),
            ("0020|000d", series_uid + ".1"),
            ("0020|0032", "\\".join(f"{v:.4f}" for v in origin)),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0020|0013", str(k + 1)),
            ("0018|0050", f"{spacing[2]}"),
            ("0008|0018", f"{series_uid}.2.{k + 1}"),
        ):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    return folder


class TestCases3D(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.root)

    def make_cases(self):
        for c in ("caseA", "caseB", "caseC"):
            for i, m in enumerate(("t1", "pet", "spect")):
                write_nifti(self.root / c / f"{m}.nii.gz", seed=i)
        (self.root / "caseC/spect.nii.gz").unlink()
        write_nifti(self.root / "caseB/seg.nii.gz")
        (self.root / "caseA/LICENSE.txt").write_text("licence", encoding="utf-8")

    def test_modalities_chosen_and_incomplete_cases_reported(self):
        self.make_cases()
        self.assertEqual(detect_layout(self.root), "3d")
        datalist, problems = build_datalist(self.root, modalities=["spect", "pet", "t1"], split_by="case",
                                            val_fraction=0, test_fraction=0)
        entries = datalist["training"]
        self.assertEqual([e["name"] for e in entries], ["caseA", "caseB"])
        self.assertEqual(entries[0]["modalities"], ["t1", "spect", "pet"])  # MR first, others keep their order
        self.assertEqual(entries[0]["image"][0], str(self.root / "caseA/t1.nii.gz"))
        self.assertEqual(entries[0]["spatial_dims"], 3)
        self.assertEqual(len(problems), 1)
        self.assertEqual(problems[0].path, str(self.root / "caseC"))
        self.assertIn("lacks spect", problems[0].problem)

    def test_default_modalities_are_the_shared_image_ones(self):
        self.make_cases()
        samples, _ = find_cases_3d(self.root)
        self.assertEqual(samples[0].entry["modalities"], ["t1", "pet"])  # spect missing in caseC, seg is a label

    def test_too_few_modalities(self):
        write_nifti(self.root / "c1/t1.nii.gz")
        with self.assertRaises(InputError) as cm:
            find_cases_3d(self.root)
        self.assertIn("modalities", str(cm.exception))
        with self.assertRaises(InputError):
            find_cases_3d(self.root, modalities=["t1"])

    def test_no_complete_case(self):
        self.make_cases()
        with self.assertRaises(InputError) as cm:
            find_cases_3d(self.root, modalities=["t1", "ct"])
        self.assertIn("no case has all of t1, ct", str(cm.exception))

    def test_duplicate_source(self):
        self.make_cases()
        dup = write_nifti(self.root / "caseA/t1.nii")
        with self.assertRaises(InputError) as cm:
            find_cases_3d(self.root, modalities=["t1", "pet"])
        self.assertTrue(str(cm.exception).startswith(str(self.root / "caseA")))
        self.assertIn("two sources", str(cm.exception))
        samples, problems = find_cases_3d(self.root, modalities=["t1", "pet"], skip_bad=True)
        self.assertEqual(len(problems), 1)
        self.assertIn(problems[0].path, (str(dup), str(self.root / "caseA/t1.nii.gz")))

    def test_empty_dicom_folder(self):
        write_nifti(self.root / "c1/t1.nii.gz")
        (self.root / "c1/ct").mkdir()
        with self.assertRaises(InputError) as cm:
            build_datalist(self.root, modalities=["t1", "ct"], validate=False)
        self.assertTrue(str(cm.exception).startswith(str(self.root / "c1/ct")))
        self.assertIn("empty folder", str(cm.exception))

    def test_dicom_files_without_suffix_are_detected(self):
        for m, seed in (("ct", 0), ("mr", 1)):
            folder = write_dicom_series(self.root / "c1" / m, seed=seed)
            for f in folder.iterdir():
                f.rename(f.with_suffix(""))
        self.assertEqual(detect_layout(self.root), "3d")
        datalist, _ = build_datalist(self.root, split_by="case")
        self.assertEqual(datalist["training"][0]["modalities"], ["mr", "ct"])

    def test_dicom_series_folder(self):
        ct = write_dicom_series(self.root / "c1/ct")
        img = load_image(ct)
        self.assertEqual(tuple(img.shape), (1, 5, 6, 4))
        # a NIfTI of the same grid (ITK's LPS geometry, as RAS) passes the geometry check
        write_nifti(self.root / "c1/t1.nii.gz", shape=(5, 6, 4), affine=img.affine.numpy())
        datalist, problems = build_datalist(self.root, modalities=["t1", "ct"], split_by="case")
        self.assertEqual(problems, [])
        self.assertEqual(datalist["training"][0]["image"], [str(self.root / "c1/t1.nii.gz"), str(ct)])
        # and a different grid fails naming the DICOM folder
        write_nifti(self.root / "c1/t1.nii.gz", shape=(5, 6, 4), affine=LAS_AFFINE)
        with self.assertRaises(InputError) as cm:
            build_datalist(self.root, modalities=["t1", "ct"])
        self.assertTrue(str(cm.exception).startswith(str(ct)), str(cm.exception))


if __name__ == "__main__":
    unittest.main()
