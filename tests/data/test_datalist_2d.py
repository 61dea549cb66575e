from __future__ import annotations

import json
import shutil
import tempfile
import unittest
from pathlib import Path

from parameterized import parameterized

from mmif.data import build_datalist, case_id_from_name, find_pairs_2d, load_datalist, split_samples, write_datalist
from mmif.errors import InputError
from tests.data.synthetic import write_pair_folder, write_png


def _cases(datalist, key):
    return {(e["task"], e["case_id"]) for e in datalist[key]}


def _case_ids(datalist, key):
    return {e["case_id"] for e in datalist[key]}


class TestPairs2D(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_entries_follow_the_convention(self):
        write_pair_folder(self.root, "MRI_PET", names=("2004", "2005"), split="test")
        write_pair_folder(self.root, "MRI_PET", names=("2001", "3001"), split="train")
        datalist, problems = build_datalist(self.root, val_fraction=0.0)
        self.assertEqual(problems, [])
        self.assertEqual(len(datalist["training"]), 2)
        entry = datalist["test"][0]
        self.assertEqual(
            entry,
            {
                "image": [str(self.root / "MRI_PET/test/MRI/2004.png"), str(self.root / "MRI_PET/test/PET/2004.png")],
                "modalities": ["MRI", "PET"],
                "task": "MRI_PET",
                "name": "2004",
                "case_id": "2",
                "spatial_dims": 2,
            },
        )

    def test_mri_first_whatever_the_folder_order(self):
        write_pair_folder(self.root, "CT_MRI", names=("1001",))
        samples, _ = find_pairs_2d(self.root)
        self.assertEqual(samples[0].entry["modalities"], ["MRI", "CT"])
        self.assertTrue(samples[0].entry["image"][0].endswith("/MRI/1001.png"))

    def test_three_sources(self):
        write_pair_folder(self.root, "MRI_PET_SPECT", names=("1001", "1002"), colour=("PET",))
        datalist, _ = build_datalist(self.root, split_by="case", val_fraction=0, test_fraction=0)
        self.assertEqual(datalist["training"][0]["modalities"], ["MRI", "PET", "SPECT"])
        self.assertEqual(len(datalist["training"][0]["image"]), 3)

    def test_modalities_filter_picks_folders_and_skips_other_tasks(self):
        write_pair_folder(self.root, "MRI_PET_SPECT", names=("1001",), colour=("PET",))
        write_pair_folder(self.root, "MRI_CT", names=("1001",))
        samples, problems = find_pairs_2d(self.root, modalities=["MRI", "SPECT"])
        self.assertEqual([s.entry["modalities"] for s in samples], [["MRI", "SPECT"]])
        self.assertEqual(len(problems), 1)
        self.assertIn("MRI_CT", problems[0].path)

    def test_root_may_be_one_task_folder(self):
        write_pair_folder(self.root, "MRI_CT", names=("1001", "1002"))
        samples, _ = find_pairs_2d(self.root / "MRI_CT")
        self.assertEqual(len(samples), 2)

    def test_index_csv_gives_case_ids(self):
        write_pair_folder(self.root, "MRI_CT", names=("a1", "a2", "b1"))
        rows = ["task,split,name,case_id,slice", "MRI_CT,,a1,7,1", "MRI_CT,,a2,7,2", "MRI_CT,,b1,8,1"]
        (self.root / "index.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        samples, _ = find_pairs_2d(self.root)
        self.assertEqual([s.entry["case_id"] for s in samples], ["7", "7", "8"])

    @parameterized.expand([("20005", "20"), ("2004", "2"), ("123", "123"), ("scan_7", "scan_7"), ("0012003", "12")])
    def test_case_id_from_name(self, name, case):
        self.assertEqual(case_id_from_name(name), case)

    def test_tasks_selection_and_unknown_task(self):
        write_pair_folder(self.root, "MRI_CT", names=("1001",))
        write_pair_folder(self.root, "MRI_PET", names=("1001",))
        samples, _ = find_pairs_2d(self.root, tasks=["MRI_PET"])
        self.assertEqual({s.entry["task"] for s in samples}, {"MRI_PET"})
        with self.assertRaises(InputError) as cm:
            find_pairs_2d(self.root, tasks=["MRI_XX"])
        self.assertIn("MRI_XX", str(cm.exception))


class TestSplits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = Path(tempfile.mkdtemp())
        # 10 cases x 3 slices in two tasks; cases 1..4 are in both tasks (same subject ids)
        ct = [f"{c}{s:03d}" for c in range(1, 11) for s in range(3)]
        pet = [f"{c}{s:03d}" for c in range(1, 5) for s in range(3)]
        for n in ct[::2]:
            write_png(cls.root / "MRI_CT/train/MRI" / f"{n}.png")
            write_png(cls.root / "MRI_CT/train/CT" / f"{n}.png")
        for n in ct[1::2]:
            write_png(cls.root / "MRI_CT/test/MRI" / f"{n}.png")
            write_png(cls.root / "MRI_CT/test/CT" / f"{n}.png")
        for n in pet:
            write_png(cls.root / "MRI_PET/train/MRI" / f"{n}.png")
            write_png(cls.root / "MRI_PET/train/PET" / f"{n}.png", rgb=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root)

    def test_case_split_puts_no_case_in_two_splits(self):
        datalist, _ = build_datalist(self.root, split_by="case", val_fraction=0.2, test_fraction=0.3, validate=False)
        splits = [_case_ids(datalist, k) for k in ("training", "validation", "test")]
        for i in range(3):
            for j in range(i + 1, 3):
                self.assertEqual(splits[i] & splits[j], set(), "a case id is in two splits (across tasks)")
        self.assertEqual(sum(len(v) for v in datalist.values()), 30 + 12)
        for key in ("training", "validation", "test"):  # every task gets each split
            self.assertEqual({e["task"] for e in datalist[key]}, {"MRI_CT", "MRI_PET"}, key)

    def test_upstream_keeps_folders_and_carves_validation_by_case(self):
        datalist, _ = build_datalist(self.root, split_by="upstream", val_fraction=0.3, validate=False)
        ct = [f"{c}{s:03d}" for c in range(1, 11) for s in range(3)]
        self.assertEqual([e["name"] for e in datalist["test"]], ct[1::2])
        # the upstream test folder is kept whole
        self.assertEqual(len(datalist["test"]), 15)
        self.assertTrue(all("/test/" in e["image"][0] for e in datalist["test"]))
        self.assertTrue(datalist["validation"])
        self.assertEqual(_cases(datalist, "training") & _cases(datalist, "validation"), set())

    def test_deterministic_for_a_seed(self):
        a, _ = build_datalist(self.root, split_by="case", seed=3, validate=False)
        b, _ = build_datalist(self.root, split_by="case", seed=3, validate=False)
        self.assertEqual(a, b)
        others = [build_datalist(self.root, split_by="case", seed=s, validate=False)[0] for s in (4, 5, 6)]
        self.assertTrue(any(o != a for o in others), "the seed does not change the split")

    def test_fixed_case_splits(self):
        samples, _ = find_pairs_2d(self.root)
        datalist = split_samples(samples, "case", 0.1, 0.2, 0, case_splits={"1": "test", "2": "validation"})
        self.assertIn("1", _case_ids(datalist, "test"))
        self.assertIn("2", _case_ids(datalist, "validation"))

    @parameterized.expand([("split_by", "slice"), ("val_fraction", 1.0), ("test_fraction", -0.1)])
    def test_bad_arguments(self, name, value):
        samples, _ = find_pairs_2d(self.root)
        kwargs = {"split_by": "case", "val_fraction": 0.1, "test_fraction": 0.2, name: value}
        with self.assertRaises(ValueError):
            split_samples(samples, **kwargs)


class TestDatalistFile(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_round_trip(self):
        write_pair_folder(self.root, "MRI_CT", names=("1001", "2001", "3001"))
        datalist, _ = build_datalist(self.root, split_by="case", validate=False)
        path = write_datalist(datalist, self.root / "out" / "datalist.json")
        self.assertEqual(load_datalist(path), datalist)
        self.assertEqual([p.name for p in path.parent.iterdir()], ["datalist.json"])  # no temporary left

    def test_relative_paths_resolve_against_the_file(self):
        write_png(self.root / "MRI/1.png")
        (self.root / "d.json").write_text(json.dumps({"training": [{"image": ["MRI/1.png", "CT/1.png"]}]}), encoding="utf-8")
        loaded = load_datalist(self.root / "d.json")
        self.assertEqual(loaded["training"][0]["image"][0], str(self.root / "MRI/1.png"))
        self.assertEqual(loaded["test"], [])
        with self.assertRaises(InputError) as cm:
            load_datalist(self.root / "d.json", check_files=True)
        self.assertIn(str(self.root / "CT/1.png"), str(cm.exception))

    @parameterized.expand(
        [
            ("invalid_json", '{"training": [', "not valid JSON"),
            ("not_object", "[1, 2]", "JSON object"),
            ("no_keys", '{"foo": []}', "none of the keys"),
            ("no_image", '{"training": [{"name": "a"}]}', "'image'"),
            ("modalities", '{"test": [{"image": ["a", "b"], "modalities": ["MRI"]}]}', "modalities"),
        ]
    )
    def test_load_errors_name_the_file(self, _, text, problem):
        path = self.root / "bad.json"
        path.write_text(text, encoding="utf-8")
        with self.assertRaises(InputError) as cm:
            load_datalist(path)
        self.assertIn(str(path), str(cm.exception))
        self.assertIn(problem, str(cm.exception))

    def test_missing_file(self):
        with self.assertRaises(InputError) as cm:
            load_datalist(self.root / "nope.json")
        self.assertIn("nope.json", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
