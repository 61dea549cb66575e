from __future__ import annotations

import csv
import shutil
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from mmif.data import PHANTOM_LABELS, build_datalist, make_phantom, write_phantom_dataset
from mmif.data.phantom import phantom_affine, to_display
from mmif.errors import InputError


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


class TestMakePhantom(unittest.TestCase):
    def test_deterministic(self):
        a = make_phantom((32, 32), seed=(0, 1), z=0.1)
        b = make_phantom((32, 32), seed=(0, 1), z=0.1)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])

    def test_cases_and_slices_differ(self):
        a = make_phantom((48, 48), seed=(0, 1), z=0.1)
        self.assertFalse(np.array_equal(a["label"], make_phantom((48, 48), seed=(0, 2), z=0.1)["label"]))
        self.assertFalse(np.array_equal(a["label"], make_phantom((48, 48), seed=(0, 1), z=0.4)["label"]))

    def test_anatomy_and_contrasts(self):
        out = make_phantom((40, 40, 40), seed=(0, 1))
        labels = out["label"]
        for name in ("scalp", "skull", "csf", "grey_matter", "white_matter", "ventricles", "tumour"):
            self.assertGreater((labels == PHANTOM_LABELS[name]).sum(), 0, name)

        def mean(mod, name):
            return float(out[mod][labels == PHANTOM_LABELS[name]].mean())

        # T1: white matter brighter than grey matter brighter than CSF; CT: bone brightest; PET: grey matter hot
        self.assertGreater(mean("mri", "white_matter"), mean("mri", "grey_matter"))
        self.assertGreater(mean("mri", "grey_matter"), mean("mri", "csf"))
        self.assertGreater(mean("ct", "skull"), 500.0)
        self.assertLess(float(out["ct"][labels == 0].mean()), -900.0)
        self.assertGreater(mean("pet", "grey_matter"), 1.3 * mean("pet", "white_matter"))
        self.assertGreater(mean("pet", "tumour"), mean("pet", "white_matter"))
        self.assertGreater(mean("spect", "grey_matter"), mean("spect", "white_matter"))
        # the modalities are different images of one anatomy (compared inside the skull)
        inside = labels >= PHANTOM_LABELS["csf"]
        for a, b in (("mri", "ct"), ("mri", "pet"), ("ct", "pet"), ("pet", "spect"), ("mri", "spect")):
            self.assertLess(abs(_corr(out[a][inside], out[b][inside])), 0.95, (a, b))

        # PET/SPECT are blurrier than MRI (less high-frequency energy)
        def hf(x):
            u = (x - x.min()) / (x.max() - x.min())
            return float(np.abs(np.diff(u, axis=0)).mean())

        self.assertLess(hf(out["spect"]), hf(out["mri"]))

    def test_display_mapping(self):
        np.testing.assert_allclose(to_display("ct", np.array([-1000.0, -40.0, 60.0, 160.0, 1200.0])),
                                   [0.0, 0.0, 0.5, 1.0, 1.0])

    def test_affine_is_las_and_centred(self):
        aff = phantom_affine((10, 10, 10), 1.5)
        self.assertEqual(nib.aff2axcodes(aff), ("L", "A", "S"))
        np.testing.assert_allclose(aff @ [4.5, 4.5, 4.5, 1], [0, 0, 0, 1])


class TestWritePhantom(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_2d_layout_colour_and_index(self):
        out = write_phantom_dataset(self.root / "p", n_cases=2, slices_per_case=3, size=24, seed=1)
        with open(out / "index.csv") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 3 * 2 * 3)
        for r in rows:
            mods = r["task"].split("_")
            for m in mods:
                img = Image.open(out / r["task"] / r["split"] / m / f"{r['name']}.png")
                self.assertEqual(img.size, (24, 24))
                self.assertEqual(img.mode, "RGB" if m in ("PET", "SPECT") else "L")
            self.assertEqual(r["name"], f"{r['case_id']}{int(r['slice']):03d}")
        self.assertEqual({r["split"] for r in rows if r["case_id"] in ("2", "4", "6")}, {"test"})
        self.assertIn("SYNTHETIC", (out / "README.md").read_text(encoding="utf-8"))
        # the written folder is a valid dataset, and its test split is by case
        datalist, problems = build_datalist(out, val_fraction=0.0)
        self.assertEqual(problems, [])
        self.assertEqual(len(datalist["training"]) + len(datalist["test"]), 18)
        self.assertEqual({e["case_id"] for e in datalist["test"]}, {"2", "4", "6"})

    def test_2d_deterministic(self):
        a = write_phantom_dataset(self.root / "a", n_cases=1, slices_per_case=2, size=20, seed=5, test_cases=0)
        b = write_phantom_dataset(self.root / "b", n_cases=1, slices_per_case=2, size=20, seed=5, test_cases=0)
        files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
        self.assertEqual(files, sorted(p.relative_to(b) for p in b.rglob("*.png")))
        for f in files:
            np.testing.assert_array_equal(np.asarray(Image.open(a / f)), np.asarray(Image.open(b / f)))
        c = write_phantom_dataset(self.root / "c", n_cases=1, slices_per_case=2, size=20, seed=6, test_cases=0)
        self.assertFalse(np.array_equal(np.asarray(Image.open(a / files[0])), np.asarray(Image.open(c / files[0]))))

    def test_3d_shares_a_non_identity_geometry(self):
        out = write_phantom_dataset(self.root / "v", n_cases=2, size=16, spatial_dims=3)
        affines = []
        for m in ("mri", "ct", "pet", "spect", "label"):
            img = nib.load(out / "case001" / f"{m}.nii.gz")
            self.assertEqual(img.shape, (16, 16, 16))
            affines.append(img.affine)
        for a in affines[1:]:
            np.testing.assert_array_equal(a, affines[0])
        self.assertFalse(np.allclose(affines[0], np.eye(4)))
        np.testing.assert_allclose(nib.affines.voxel_sizes(affines[0]), [1.5, 1.5, 1.5])
        datalist, problems = build_datalist(out, split_by="case", val_fraction=0, test_fraction=0.5)
        self.assertEqual(problems, [])
        self.assertEqual(datalist["test"][0]["modalities"], ["mri", "ct", "pet", "spect"])

    def test_refuses_a_foreign_folder_but_rewrites_a_phantom(self):
        (self.root / "mine.txt").write_text("keep me", encoding="utf-8")
        with self.assertRaises(InputError):
            write_phantom_dataset(self.root, n_cases=1, slices_per_case=1, size=16, test_cases=0)
        p = write_phantom_dataset(self.root / "p", n_cases=1, slices_per_case=1, size=16, test_cases=0)
        write_phantom_dataset(p, n_cases=1, slices_per_case=1, size=16, test_cases=0)

    def test_bad_arguments(self):
        for kwargs in ({"spatial_dims": 4}, {"n_cases": 0}, {"size": 4}, {"tasks": ("MRI_XR",)}, {"test_cases": 3}):
            with self.assertRaises(ValueError, msg=str(kwargs)):
                write_phantom_dataset(self.root / "x", **{"n_cases": 2, **kwargs})


if __name__ == "__main__":
    unittest.main()
