"""The bundle config ``bundles/brain_mmif_2d/configs/evaluate.json`` through MONAI's bundle machinery."""

from __future__ import annotations

import json
import shutil
import tempfile
import unittest
from pathlib import Path

from monai.bundle import ConfigParser, run

from mmif.evaluation import FusionEvaluator, read_metrics_csv
from tests.evaluation._data import write_2d_layout
from tests.utils import REPO_ROOT

CONFIG = REPO_ROOT / "bundles" / "brain_mmif_2d" / "configs" / "evaluate.json"


class TestEvaluateBundleConfig(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="mmif_eval_bundle_"))
        self.data = self.tmp / "data"
        self.datalist = write_2d_layout(self.data, n=2)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_parse(self):
        parser = ConfigParser()
        parser.read_config(str(CONFIG))
        for key in ("imports", "bundle_root", "dataset_dir", "output_dir", "methods", "dataset", "evaluator", "run"):
            self.assertIn(key, parser.config)
        parser.update({"dataset_dir": str(self.data), "output_dir": str(self.tmp / "out"), "mlflow": False,
                       "bundle_root": str(self.tmp / "untrained_bundle")})
        evaluator = parser.get_parsed_content("evaluator")
        self.assertIsInstance(evaluator, FusionEvaluator)
        # no trained weights under this bundle root: the classical methods only
        self.assertEqual(list(evaluator.methods), ["average", "maxabs", "laplacian", "dwt"])
        self.assertEqual(len(evaluator.entries), 4)  # the test split of both tasks
        self.assertFalse(evaluator.tracking)

    def test_trained_bundle_adds_dmfnet(self):
        from mmif.fusion.learned import weights_available

        bundle = REPO_ROOT / "bundles" / "brain_mmif_2d"
        if not weights_available(bundle):
            self.skipTest("the bundle has no trained weights in models/")
        parser = ConfigParser()
        parser.read_config(str(CONFIG))
        parser.update({"dataset_dir": str(self.data), "output_dir": str(self.tmp / "out"), "mlflow": False,
                       "bundle_root": str(bundle)})
        self.assertEqual(list(parser.get_parsed_content("evaluator").methods),
                         ["dmfnet", "average", "maxabs", "laplacian", "dwt"])

    def test_run_on_folder(self):
        out = self.tmp / "out"
        run(config_file=str(CONFIG), dataset_dir=str(self.data), output_dir=str(out), mlflow=False,
            methods=["average", "dwt"], metrics=["EN", "SD"])
        rows, names = read_metrics_csv(out / "metrics.csv")
        self.assertEqual(names, ["EN", "SD"])
        self.assertEqual(len(rows), 4 * 2)
        for name in ("summary.md", "summary.json", "panel.png"):
            self.assertTrue((out / name).is_file(), name)
        self.assertTrue((out / "fused" / "dwt" / "MRI_PET" / "8001.png").is_file())

    def test_run_on_datalist(self):
        path = self.tmp / "datalist.json"
        path.write_text(json.dumps({"test": self.datalist["test"][:1]}), encoding="utf-8")
        out = self.tmp / "out_dl"
        run(config_file=str(CONFIG), datalist=str(path), output_dir=str(out), methods=["maxabs"], metrics=["EN"],
            panel_rows=0, mlflow=False)
        rows, _ = read_metrics_csv(out / "metrics.csv")
        self.assertEqual([(r["task"], r["method"]) for r in rows], [("MRI_CT", "maxabs")])
        self.assertFalse((out / "mlflow.db").exists())
        self.assertFalse((out / "panel.png").exists())


if __name__ == "__main__":
    unittest.main()
