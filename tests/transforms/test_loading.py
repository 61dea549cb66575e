from __future__ import annotations

import pickle
import shutil
import tempfile
import unittest
from pathlib import Path

import cv2
import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset, MetaTensor
from monai.transforms import Compose
from monai.utils import set_determinism
from parameterized import parameterized

from mmif.errors import InputError
from mmif.transforms import LoadFusionSourcesd, PairedAugmentationd, modality_from_path
from tests.transforms._helpers import chroma_np, luma_np, smooth_rgb, to_numpy, write_nifti, write_png
from tests.utils import data_root, skip_unless_data


class _TempDir(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="mmif_load_"))
        self.rng = np.random.default_rng(0)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def grey(self, shape=(32, 40)) -> np.ndarray:
        return self.rng.integers(0, 256, shape).astype(np.uint8)

    def assert_names(self, cm, path) -> None:
        self.assertIsInstance(cm.exception, InputError)
        self.assertIn(str(path), str(cm.exception))


class TestLoad2D(_TempDir):
    def test_grey_and_colour(self):
        mri, pet = self.grey(), smooth_rgb(self.rng)
        entry = {
            "image": [write_png(self.tmp / "MRI" / "1001.png", mri), write_png(self.tmp / "PET" / "1001.png", pet)],
            "modalities": ["MRI", "PET"], "task": "MRI_PET", "name": "1001", "case_id": "1", "spatial_dims": 2,
        }
        d = LoadFusionSourcesd()(entry)
        self.assertIsInstance(d["image"], MetaTensor)
        self.assertEqual(d["image"].dtype, torch.float32)
        self.assertEqual(tuple(d["image"].shape), (2, 32, 40))
        np.testing.assert_allclose(to_numpy(d["image"][0]), mri / 255.0, atol=1e-6)
        np.testing.assert_allclose(to_numpy(d["image"][1]), luma_np(pet) / 255.0, atol=1e-5)
        self.assertIsInstance(d["chroma"], MetaTensor)
        self.assertEqual(d["chroma"].dtype, torch.float32)
        np.testing.assert_allclose(to_numpy(d["chroma"]), chroma_np(pet / 255.0, 0.5), atol=1e-5)
        self.assertIs(d["is_color"], True)
        self.assertEqual(d["image"].meta["filename_or_obj"], entry["image"][0])
        self.assertEqual(d["chroma"].meta["filename_or_obj"], entry["image"][1])
        for k in ("modalities", "task", "name", "case_id"):
            self.assertEqual(d[k], entry[k])
        self.assertEqual(entry["image"][0], str(self.tmp / "MRI" / "1001.png"))  # the input entry is not modified

    def test_grey_and_grey(self):
        mri, ct = self.grey(), self.grey()
        entry = {"image": [write_png(self.tmp / "MRI" / "a.png", mri), write_png(self.tmp / "CT" / "a.png", ct)],
                 "modalities": ["MRI", "CT"]}
        d = LoadFusionSourcesd()(entry)
        np.testing.assert_allclose(to_numpy(d["image"]), np.stack([mri, ct]) / 255.0, atol=1e-6)
        np.testing.assert_array_equal(to_numpy(d["chroma"]), np.full((2, 32, 40), 0.5, np.float32))
        self.assertIs(d["is_color"], False)

    def test_three_sources_and_grey_stored_as_rgb(self):
        mri, spect = self.grey(), smooth_rgb(self.rng)
        ct_rgb = np.repeat(self.grey()[..., None], 3, -1)  # a grey image saved as RGB is not a colour source
        paths = [write_png(self.tmp / "MRI" / "b.png", mri), write_png(self.tmp / "CT" / "b.png", ct_rgb),
                 write_png(self.tmp / "SPECT" / "b.png", spect)]
        d = LoadFusionSourcesd()({"image": paths, "modalities": ["MRI", "CT", "SPECT"]})
        self.assertEqual(tuple(d["image"].shape), (3, 32, 40))
        np.testing.assert_allclose(to_numpy(d["image"][1]), ct_rgb[..., 0] / 255.0, atol=1e-5)
        np.testing.assert_allclose(to_numpy(d["image"][2]), luma_np(spect) / 255.0, atol=1e-5)
        np.testing.assert_allclose(to_numpy(d["chroma"]), chroma_np(spect / 255.0, 0.5), atol=1e-5)
        self.assertIs(d["is_color"], True)

    def test_modalities_from_paths(self):
        paths = [write_png(self.tmp / "MRI" / "c.png", self.grey()), write_png(self.tmp / "CT" / "c.png", self.grey())]
        d = LoadFusionSourcesd()({"image": paths})
        self.assertEqual(d["modalities"], ["MRI", "CT"])
        self.assertEqual(modality_from_path("/x/case3/flair.nii.gz"), "flair")


class TestLoad3D(_TempDir):
    def volumes(self, case: Path, shape=(12, 14, 10)):
        t1 = self.rng.gamma(2.0, 200.0, shape)
        ct = self.rng.uniform(-1024.0, 2500.0, shape)
        pet = self.rng.exponential(3000.0, shape)
        return {"t1": (write_nifti(case / "t1.nii.gz", t1), t1), "ct": (write_nifti(case / "ct.nii.gz", ct), ct),
                "pet": (write_nifti(case / "pet.nii", pet), pet)}

    @parameterized.expand([(["t1", "ct"],), (["t1", "pet"],), (["t1", "ct", "pet"],)])
    def test_nifti(self, modalities):
        vols = self.volumes(self.tmp / "case1")
        entry = {"image": [vols[m][0] for m in modalities], "modalities": modalities, "spatial_dims": 3}
        d = LoadFusionSourcesd()(entry)
        self.assertEqual(tuple(d["image"].shape), (len(modalities), 12, 14, 10))
        ref = {
            "t1": lambda x: np.clip((x - np.percentile(x, 0.5)) / np.ptp(np.percentile(x, (0.5, 99.5))), 0, 1),
            "ct": lambda x: np.clip((x + 1000.0) / 3000.0, 0, 1),
            "pet": lambda x: np.clip(x / np.percentile(x, 99.9), 0, 1),
        }
        for i, m in enumerate(modalities):
            x = vols[m][1].astype(np.float32)
            np.testing.assert_allclose(to_numpy(d["image"][i]), ref[m](x.astype(np.float64)), atol=1e-4, err_msg=m)
        expected_affine = np.diag([2.0, 2.0, 2.0, 1.0])
        expected_affine[:3, 3] = (-90.0, -126.0, -72.0)
        np.testing.assert_allclose(to_numpy(d["image"].affine), expected_affine)
        np.testing.assert_array_equal(to_numpy(d["chroma"]), np.full((2, 12, 14, 10), 0.5, np.float32))
        self.assertIs(d["is_color"], False)


class TestLoadErrors(_TempDir):
    def pair(self, name="e"):
        return [write_png(self.tmp / "MRI" / f"{name}.png", self.grey()), write_png(self.tmp / "PET" / f"{name}.png",
                                                                                     smooth_rgb(self.rng))]

    def load(self, paths, modalities=None, **extra):
        entry = {"image": paths, "modalities": modalities or ["MRI", "PET", "SPECT"][: len(paths)], **extra}
        return LoadFusionSourcesd()(entry)

    def test_two_colour_sources(self):
        paths = self.pair() + [write_png(self.tmp / "SPECT" / "e.png", smooth_rgb(self.rng))]
        with self.assertRaises(InputError) as cm:
            self.load(paths)
        self.assert_names(cm, paths[2])
        self.assertIn("colour", str(cm.exception))

    def test_size_mismatch(self):
        paths = [write_png(self.tmp / "MRI" / "s.png", self.grey()), write_png(self.tmp / "PET" / "s.png",
                                                                               smooth_rgb(self.rng, (32, 41)))]
        with self.assertRaises(InputError) as cm:
            self.load(paths)
        self.assert_names(cm, paths[1])

    def test_spacing_mismatch(self):
        a = write_nifti(self.tmp / "c" / "t1.nii.gz", self.rng.uniform(size=(6, 6, 6)))
        b = write_nifti(self.tmp / "c" / "ct.nii.gz", self.rng.uniform(size=(6, 6, 6)), spacing=(1.0, 1.0, 1.0))
        with self.assertRaises(InputError) as cm:
            self.load([a, b], ["t1", "ct"])
        self.assert_names(cm, b)

    def test_wrong_channel_count(self):
        la = np.stack([self.grey(), self.grey()], -1)  # grey + alpha: 2 channels
        paths = [write_png(self.tmp / "MRI" / "w.png", self.grey()), write_png(self.tmp / "PET" / "w.png", la)]
        with self.assertRaises(InputError) as cm:
            self.load(paths)
        self.assert_names(cm, paths[1])
        self.assertIn("channels", str(cm.exception))

    def test_nan(self):
        vol = self.rng.uniform(size=(6, 6, 6))
        vol[2, 2, 2] = np.nan
        a = write_nifti(self.tmp / "n" / "t1.nii.gz", self.rng.uniform(size=(6, 6, 6)))
        b = write_nifti(self.tmp / "n" / "pet.nii.gz", vol)
        with self.assertRaises(InputError) as cm:
            self.load([a, b], ["t1", "pet"])
        self.assert_names(cm, b)

    def test_unreadable_and_missing(self):
        good = write_png(self.tmp / "MRI" / "u.png", self.grey())
        bad = self.tmp / "PET" / "u.png"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(b"this is not a png")
        with self.assertRaises(InputError) as cm:
            self.load([good, str(bad)])
        self.assert_names(cm, bad)
        missing = self.tmp / "PET" / "missing.png"
        with self.assertRaises(InputError) as cm:
            self.load([good, str(missing)])
        self.assert_names(cm, missing)

    def test_modality_count_and_dims(self):
        paths = self.pair("m")
        with self.assertRaises(InputError) as cm:
            self.load(paths, ["MRI"])
        self.assert_names(cm, paths[0])
        with self.assertRaises(InputError) as cm:
            self.load(paths, spatial_dims=3)
        self.assert_names(cm, paths[0])
        with self.assertRaises(InputError):
            self.load([])

    def test_bad_argument(self):
        with self.assertRaisesRegex(ValueError, "LoadFusionSourcesd"):
            LoadFusionSourcesd(color_atol=-1)


class TestDatasets(_TempDir):
    def entries_2d(self):
        out = []
        for i, colour in enumerate((True, False, True)):
            other = smooth_rgb(self.rng) if colour else self.grey()
            mod = "PET" if colour else "CT"
            out.append({"image": [write_png(self.tmp / "MRI" / f"{i}.png", self.grey()),
                                  write_png(self.tmp / mod / f"{i}.png", other)],
                        "modalities": ["MRI", mod], "task": f"MRI_{mod}", "name": str(i), "case_id": str(i)})
        return out

    def test_dataloader_2d(self):
        entries = self.entries_2d()
        ds = Dataset(entries, transform=LoadFusionSourcesd())
        batch = next(iter(DataLoader(ds, batch_size=3, num_workers=0)))
        self.assertIsInstance(batch["image"], MetaTensor)
        self.assertEqual(tuple(batch["image"].shape), (3, 2, 32, 40))
        self.assertEqual(tuple(batch["chroma"].shape), (3, 2, 32, 40))
        self.assertEqual(batch["is_color"].tolist(), [True, False, True])
        self.assertEqual(batch["name"], ["0", "1", "2"])
        self.assertEqual(batch["task"], ["MRI_PET", "MRI_CT", "MRI_PET"])
        self.assertEqual(len(batch["modalities"]), 2)  # PyTorch collation: one tuple per source position
        for i, e in enumerate(entries):
            np.testing.assert_array_equal(to_numpy(batch["image"][i]), to_numpy(LoadFusionSourcesd()(e)["image"]))

    def test_picklable_for_worker_processes(self):
        entry = self.entries_2d()[0]
        t = pickle.loads(pickle.dumps(Compose([LoadFusionSourcesd(), PairedAugmentationd(2, 16)])))
        self.assertEqual(tuple(t(entry)["image"].shape), (2, 16, 16))

    def test_cache_dataset_with_augmentation_3d(self):
        entries = []
        for c in range(2):
            case = self.tmp / f"case{c}"
            entries.append({"image": [write_nifti(case / f"{m}.nii.gz", self.rng.uniform(size=(12, 14, 10)))
                                      for m in ("t1", "pet", "spect")],
                            "modalities": ["t1", "pet", "spect"], "name": f"case{c}", "spatial_dims": 3})
        set_determinism(seed=0)
        try:
            ds = CacheDataset(entries, transform=Compose([LoadFusionSourcesd(), PairedAugmentationd(3, 8, rotate=0.3)]),
                              cache_rate=1.0, num_workers=0, progress=False)
            batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
        finally:
            set_determinism(seed=None)
        self.assertEqual(tuple(batch["image"].shape), (2, 3, 8, 8, 8))
        self.assertEqual(tuple(batch["chroma"].shape), (2, 2, 8, 8, 8))
        self.assertEqual(batch["is_color"].tolist(), [False, False])


@skip_unless_data("harvard")
class TestHarvard(unittest.TestCase):
    @parameterized.expand([("MRI_CT", "CT"), ("MRI_PET", "PET"), ("MRI_SPECT", "SPECT")])
    def test_real_pairs(self, task, modality):
        folder = data_root() / "harvard" / task / "test"
        names = sorted(p.name for p in (folder / modality).glob("*.png"))[:3]
        entries = [{"image": [str(folder / "MRI" / n), str(folder / modality / n)], "modalities": ["MRI", modality],
                    "task": task, "name": n[:-4], "case_id": n[:-7], "spatial_dims": 2} for n in names]
        batch = next(iter(DataLoader(Dataset(entries, LoadFusionSourcesd()), batch_size=len(entries))))
        self.assertEqual(tuple(batch["image"].shape), (len(entries), 2, 256, 256))
        self.assertEqual(batch["is_color"].tolist(), [modality != "CT"] * len(entries))
        for i, n in enumerate(names):
            bgr = cv2.imread(str(folder / modality / n), cv2.IMREAD_COLOR)
            grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float64)
            self.assertLessEqual(np.abs(to_numpy(batch["image"][i, 1]) * 255.0 - grey).max(), 1.0)
            if modality != "CT":
                ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb).astype(np.float64)
                # [0, 1] chroma (neutral 0.5) -> 8-bit convention (neutral 128)
                chroma8 = (to_numpy(batch["chroma"][i]) - 0.5) * 255.0 + 128.0
                self.assertLessEqual(np.abs(chroma8[0] - ycrcb[..., 2]).max(), 1.0)
                self.assertLessEqual(np.abs(chroma8[1] - ycrcb[..., 1]).max(), 1.0)
            mri = cv2.imread(str(folder / "MRI" / n), cv2.IMREAD_GRAYSCALE).astype(np.float64)
            np.testing.assert_allclose(to_numpy(batch["image"][i, 0]) * 255.0, mri, atol=1e-3)

    @skip_unless_data("volumes/spm_oldnorm_templates")
    def test_real_volumes_three_sources(self):
        case = data_root() / "volumes" / "spm_oldnorm_templates"
        d = LoadFusionSourcesd()({"image": [str(case / f"{m}.nii.gz") for m in ("t1", "pet", "spect")],
                                  "modalities": ["t1", "pet", "spect"], "spatial_dims": 3})
        self.assertEqual(tuple(d["image"].shape), (3, 91, 109, 91))
        self.assertEqual(float(d["image"].min()), 0.0)
        self.assertEqual(float(d["image"].max()), 1.0)
        np.testing.assert_allclose(to_numpy(d["image"].pixdim), [2.0, 2.0, 2.0], atol=1e-4)


if __name__ == "__main__":
    unittest.main()
