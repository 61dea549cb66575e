"""The real Harvard data (``$MMIF_DATA/harvard``) against its ``index.csv``; skipped where the data is absent."""

from __future__ import annotations

import csv
import unittest
from collections import Counter

from mmif.data import build_datalist, find_data_root
from tests.utils import skip_unless_data


@skip_unless_data("harvard/index.csv")
class TestHarvardDatalist(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = find_data_root() / "harvard"
        with open(cls.root / "index.csv") as f:
            cls.index = list(csv.DictReader(f))

    def test_upstream_counts_match_index(self):
        datalist, problems = build_datalist(self.root, split_by="upstream", val_fraction=0.0, validate=False)
        self.assertEqual(problems, [])
        expected = Counter((r["task"], "training" if r["split"] == "train" else "test") for r in self.index)
        got = Counter((e["task"], k) for k in ("training", "test") for e in datalist[k])
        self.assertEqual(got, expected)
        case_of = {(r["task"], r["name"]): r["case_id"] for r in self.index}
        for e in datalist["training"] + datalist["test"]:
            self.assertEqual(e["case_id"], case_of[(e["task"], e["name"])])
            self.assertEqual(e["modalities"][0], "MRI")

    def test_case_split_has_no_leak(self):
        datalist, _ = build_datalist(self.root, split_by="case", validate=False)
        self.assertEqual(sum(len(v) for v in datalist.values()), len(self.index))
        cases = {k: {e["case_id"] for e in v} for k, v in datalist.items()}
        self.assertEqual(cases["training"] & cases["test"], set())
        self.assertEqual(cases["training"] & cases["validation"], set())
        self.assertEqual(cases["validation"] & cases["test"], set())


if __name__ == "__main__":
    unittest.main()
