"""End-to-end tests of the evaluation runner on tiny generated 2D and 3D samples."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from parameterized import parameterized
from PIL import Image

from mmif.errors import InputError
from mmif.evaluation import EVALUATION_METRICS, FusionEvaluator, evaluate, read_metrics_csv
from mmif.evaluation.report import near_best_counts
from mmif.metrics import ANATOMY_METRICS, DEFAULT_METRICS, HIGHER_IS_BETTER, PAPER_METRICS, compute_metrics, to_gray8
from mmif.transforms import LoadFusionSourcesd
from tests.evaluation._data import AFFINE_3D, write_2d_layout, write_3d_case

METRICS = ["EN", "SD", "SF", "MI", "SSIM", "Qabf"]
METHODS = ["average", "maxabs"]


class _TempDirCase(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="mmif_eval_"))

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _gray_of_file(path: str | Path) -> np.ndarray:
    """The reference reading of an 8-bit file: grey or RGB -> float BT.601 luma, rounded."""
    return np.asarray(to_gray8(np.asarray(Image.open(path))), dtype=np.float64)


class TestEvaluate2D(unittest.TestCase):
    """One evaluation of 2 grey+grey and 2 grey+RGB samples, inspected by every test."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="mmif_eval_"))
        cls.datalist = write_2d_layout(cls.tmp / "data", n=2)
        cls.out = cls.tmp / "out"
        cls.result = evaluate(METHODS, cls.out, datalist=cls.datalist, metrics=METRICS, batch_size=2,
                              tracking=False, progress=False, panel_rows=2)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_outputs_exist(self):
        for name in ("metrics.csv", "summary.md", "summary.csv", "summary.json", "panel.png"):
            self.assertTrue((self.out / name).is_file(), name)
        self.assertFalse((self.out / "mlflow.db").exists())  # tracking off
        with Image.open(self.out / "panel.png") as panel:
            self.assertGreater(panel.width, 100)
        summary = json.loads((self.out / "summary.json").read_text(encoding="utf-8"))["summary"]
        self.assertEqual(sorted(summary), ["MRI_CT", "MRI_PET"])
        self.assertEqual(sorted(summary["MRI_PET"]), sorted(METHODS))
        md = (self.out / "summary.md").read_text(encoding="utf-8")
        self.assertIn("| average |", md)
        self.assertIn("EN ↑", md)

    def test_csv_rows(self):
        rows, names = read_metrics_csv(self.out / "metrics.csv")
        self.assertEqual(names, METRICS)
        self.assertEqual(len(rows), 4 * len(METHODS))
        keys = {(r["task"], r["name"], r["method"]) for r in rows}
        self.assertEqual(len(keys), len(rows))

    def test_fused_png_colour(self):
        for method in METHODS:
            for entry in self.datalist["test"]:
                path = self.out / "fused" / method / entry["task"] / f"{entry['name']}.png"
                with Image.open(path) as im:
                    arr = np.asarray(im)
                    self.assertEqual(arr.shape[:2], (32, 32))
                    if entry["task"] == "MRI_PET":
                        self.assertEqual(im.mode, "RGB")
                        self.assertGreater(np.abs(arr[..., 0].astype(int) - arr[..., 2]).max(), 10)
                    else:
                        self.assertEqual(im.mode, "L")

    def test_scores_match_written_files(self):
        rows, names = read_metrics_csv(self.out / "metrics.csv")
        by_entry = {(e["task"], e["name"]): e for e in self.datalist["test"]}
        for row in rows:
            entry = by_entry[(row["task"], row["name"])]
            fused = _gray_of_file(self.out / "fused" / row["method"] / row["task"] / f"{row['name']}.png")
            sources = [_gray_of_file(p) for p in entry["image"]]
            expected = compute_metrics(fused, sources, names=names)
            for m in names:
                np.testing.assert_allclose(row[m], expected[m], rtol=1e-9, atol=1e-12, err_msg=f"{row} {m}")

    def test_average_is_exact_mean_of_sources(self):
        # independent check of what was written: the grey average is the mean of the 8-bit sources, rounded half to
        # even exactly (no float32 round-off at the half levels)
        for entry in self.datalist["test"]:
            if entry["task"] != "MRI_CT":
                continue
            fused = np.asarray(Image.open(self.out / "fused" / "average" / "MRI_CT" / f"{entry['name']}.png"), float)
            a, b = (np.asarray(Image.open(p), float) for p in entry["image"])
            self.assertTrue(((a + b) % 2 == 1).any())  # the case has half levels to round
            np.testing.assert_array_equal(fused, np.round((a + b) / 2))

    def test_summary_means(self):
        rows, _ = read_metrics_csv(self.out / "metrics.csv")
        for task in ("MRI_CT", "MRI_PET"):
            vals = [r["EN"] for r in rows if r["task"] == task and r["method"] == "maxabs"]
            s = self.result.summary[task]["maxabs"]["EN"]
            self.assertAlmostEqual(s.mean, float(np.mean(vals)), places=10)
            self.assertAlmostEqual(s.std, float(np.std(vals, ddof=1)), places=10)

    def test_never_overwrites_an_input(self):
        # a source that sits exactly where a fused output would go: the run must refuse, leaving the file intact
        entry = self.datalist["test"][0]
        out = self.tmp / "out2"
        clash = out / "fused" / "average" / entry["task"] / f"{entry['name']}.png"
        clash.parent.mkdir(parents=True)
        shutil.copy(entry["image"][0], clash)
        before = clash.read_bytes()
        bad = {"test": [{**entry, "image": [str(clash), entry["image"][1]]}]}
        with self.assertRaises(InputError) as ctx:
            evaluate(["average"], out, datalist=bad, metrics=["EN"], tracking=False, progress=False, panel_rows=0)
        self.assertIn("overwrite", str(ctx.exception))
        self.assertEqual(clash.read_bytes(), before)

    def test_limit(self):
        res = evaluate(["average"], self.tmp / "lim", datalist=self.datalist, limit=1, metrics=["EN"],
                       tracking=False, progress=False, panel_rows=0)
        self.assertEqual(len(res.rows), 2)  # one sample per task
        self.assertNotIn("panel", res.files)


class TestDefaultMetrics(unittest.TestCase):
    """The default columns, with anatomy/function, on 2 grey+grey and 2 grey+RGB samples; one CT is darker than its
    MRI everywhere, so anatomy/function are undefined (NaN) there."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="mmif_eval_default_"))
        cls.datalist = write_2d_layout(cls.tmp / "data", n=2)
        cls.dark = next(e for e in cls.datalist["test"] if e["task"] == "MRI_CT" and e["name"].endswith("1"))
        mri = np.asarray(Image.open(cls.dark["image"][0]), dtype=np.float64)
        Image.fromarray(np.round(0.3 * mri).astype(np.uint8)).save(cls.dark["image"][1])
        cls.out = cls.tmp / "out"
        cls.result = evaluate(METHODS, cls.out, datalist=cls.datalist, batch_size=2, tracking=False, progress=False,
                              panel_rows=0)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_columns(self):
        self.assertEqual(EVALUATION_METRICS, DEFAULT_METRICS + ANATOMY_METRICS)
        self.assertEqual(self.result.metric_names, list(EVALUATION_METRICS))
        _, names = read_metrics_csv(self.out / "metrics.csv")
        self.assertEqual(names, list(EVALUATION_METRICS))
        with open(self.out / "summary.csv", encoding="utf-8", newline="") as f:
            header = next(csv.reader(f))
        for m in ANATOMY_METRICS:
            self.assertTrue({f"{m}_mean", f"{m}_std", f"{m}_n"} <= set(header), header)
        summary = json.loads((self.out / "summary.json").read_text(encoding="utf-8"))
        self.assertEqual(summary["metrics"], list(EVALUATION_METRICS))
        self.assertIn("anatomy", summary["summary"]["MRI_PET"]["maxabs"])

    def test_scores_match_written_files(self):
        rows, _ = read_metrics_csv(self.out / "metrics.csv")
        by_entry = {(e["task"], e["name"]): e for e in self.datalist["test"]}
        for row in rows:
            entry = by_entry[(row["task"], row["name"])]
            fused = _gray_of_file(self.out / "fused" / row["method"] / row["task"] / f"{row['name']}.png")
            expected = compute_metrics(fused, [_gray_of_file(p) for p in entry["image"]], names=list(ANATOMY_METRICS))
            for m in ANATOMY_METRICS:
                np.testing.assert_allclose(row[m], expected[m], rtol=1e-9, atol=1e-12, err_msg=f"{row} {m}")
                self.assertEqual(math.isnan(row[m]), row["name"] == self.dark["name"] and row["task"] == "MRI_CT")

    def test_nan_left_out_of_the_means_and_counted(self):
        rows, _ = read_metrics_csv(self.out / "metrics.csv")
        with open(self.out / "summary.csv", encoding="utf-8", newline="") as f:
            table = {(r["task"], r["method"]): r for r in csv.DictReader(f)}
        summary = json.loads((self.out / "summary.json").read_text(encoding="utf-8"))["summary"]
        for method in METHODS:
            for m in ANATOMY_METRICS:
                with self.subTest(method=method, metric=m):
                    s = self.result.summary["MRI_CT"][method][m]
                    value = [r[m] for r in rows if r["task"] == "MRI_CT" and r["method"] == method
                             and r["name"] != self.dark["name"]]
                    self.assertEqual((s.n, s.n_nan), (1, 1))
                    self.assertAlmostEqual(s.mean, value[0], places=12)
                    self.assertEqual(table[("MRI_CT", method)][f"{m}_n"], "1")
                    self.assertEqual(table[("MRI_CT", method)]["n_images"], "2")
                    self.assertEqual(table[("MRI_PET", method)][f"{m}_n"], "2")
                    self.assertEqual(summary["MRI_CT"][method][m]["n_nan"], 1)
        self.assertIn("(1 nan)", self.result.markdown)

    def test_shown_but_not_in_the_standing(self):
        md = (self.out / "summary.md").read_text(encoding="utf-8")
        self.assertIn("anatomy ↑ | function ↑ |", md)
        for task in ("MRI_CT", "MRI_PET"):
            counts = near_best_counts(self.result.summary[task], PAPER_METRICS, HIGHER_IS_BETTER)
            standing = ", ".join(f"{meth} {counts[meth]}/{len(PAPER_METRICS)}" for meth in METHODS)
            self.assertIn(f"Best or within 1 % of the best on {', '.join(PAPER_METRICS)}: {standing}.", md)
        self.assertNotIn("anatomy:", md.split("Best or within")[1].split("\n")[0])
        # max-abs copies the brighter tracer: low anatomy, high function on the colour pairs
        s = self.result.summary["MRI_PET"]
        self.assertLess(s["maxabs"]["anatomy"].mean, s["average"]["anatomy"].mean)
        self.assertGreater(s["maxabs"]["function"].mean, s["average"]["function"].mean)


class TestEvaluate3D(_TempDirCase):
    def test_nifti_output_keeps_affine(self):
        datalist = write_3d_case(self.tmp / "vol")
        out = self.tmp / "out"
        res = evaluate(["average", "maxabs"], out, datalist=datalist, metrics=["EN", "SD", "MI"],
                       tracking=False, progress=False, panel_rows=1)
        self.assertEqual(len(res.rows), 2)
        self.assertTrue((out / "panel.png").is_file())
        sample = LoadFusionSourcesd(keys="image")(datalist["test"][0])
        lum = sample["image"].numpy()
        for row in res.rows:
            path = out / "fused" / row["method"] / "t1_pet" / "case1.nii.gz"
            nii = nib.load(path)
            np.testing.assert_allclose(nii.affine, AFFINE_3D, atol=1e-5)
            data = np.asarray(nii.dataobj, dtype=np.float64)
            self.assertEqual(data.shape, (16, 14, 12))
            self.assertGreaterEqual(data.min(), 0.0)
            self.assertLessEqual(data.max(), 1.0)
            if row["method"] == "maxabs":
                np.testing.assert_allclose(data, lum.max(axis=0), atol=1e-6)
            expected = compute_metrics(data * 255.0, [lum[0] * 255.0, lum[1] * 255.0], names=["EN", "SD", "MI"])
            for m in ("EN", "SD", "MI"):
                np.testing.assert_allclose(row[m], expected[m], rtol=1e-6, err_msg=m)

    def test_anatomy_function_columns(self):
        datalist = write_3d_case(self.tmp / "vol")
        entry = datalist["test"][0]
        # the generated tracer never outshines the T1 (NaN); with the sources swapped the T1 outshines the "MRI"
        swapped = {**entry, "image": entry["image"][::-1], "modalities": entry["modalities"][::-1], "task": "pet_t1"}
        names = [m for m in EVALUATION_METRICS if m not in ("VIF", "MS_SSIM")]  # their scales need larger volumes
        res = evaluate(["average", "maxabs"], self.tmp / "out", datalist={"test": [entry, swapped]}, metrics=names,
                       tracking=False, progress=False, panel_rows=0)
        rows, csv_names = read_metrics_csv(self.tmp / "out" / "metrics.csv")
        self.assertEqual(csv_names, names)
        self.assertEqual(len(rows), 4)
        for row in rows:
            e = entry if row["task"] == "t1_pet" else swapped
            lum = LoadFusionSourcesd(keys="image")(e)["image"].numpy() * 255.0
            data = np.asarray(nib.load(self.tmp / "out" / "fused" / row["method"] / row["task"] / "case1.nii.gz")
                              .dataobj, dtype=np.float64)
            expected = compute_metrics(data * 255.0, list(lum), names=list(ANATOMY_METRICS))
            for m in ANATOMY_METRICS:
                with self.subTest(task=row["task"], method=row["method"], metric=m):
                    self.assertEqual(math.isnan(row[m]), row["task"] == "t1_pet")
                    np.testing.assert_allclose(row[m], expected[m], rtol=1e-6)
                    self.assertEqual(res.summary[row["task"]][row["method"]][m].n, int(row["task"] == "pet_t1"))


class _Broken(torch.nn.Module):
    def forward(self, image):
        raise RuntimeError("boom")


class TestTracking(unittest.TestCase):
    """One MLflow store (the default one of a first run); a second, failing run logs to it by explicit URI."""

    @classmethod
    def setUpClass(cls) -> None:
        from mlflow.tracking import MlflowClient

        cls.tmp = Path(tempfile.mkdtemp(prefix="mmif_eval_mlflow_"))
        datalist = write_2d_layout(cls.tmp / "data", n=1)
        cls.out = cls.tmp / "out"
        cls.result = evaluate(["average", "maxabs"], cls.out, datalist=datalist, metrics=["EN", "SSIM"],
                              progress=False, experiment="unit-test", run_name="r1")
        cls.client = MlflowClient(tracking_uri=cls.result.tracking_uri)
        cls.failed_out = cls.tmp / "out_failed"
        try:
            evaluate({"broken": _Broken()}, cls.failed_out, datalist=datalist, metrics=["EN"], progress=False,
                     tracking_uri=cls.result.tracking_uri, experiment="fails")
        except RuntimeError as e:
            cls.error = e
        else:
            cls.error = None

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_default_store(self):
        self.assertEqual(self.result.tracking_uri, "sqlite:///" + (self.out / "mlflow.db").resolve().as_posix())
        self.assertTrue((self.out / "mlflow.db").is_file())
        self.assertTrue(any((self.out / "mlartifacts").rglob("metrics.csv")))  # artifacts beside the database

    def test_run_finished_with_metrics(self):
        run = self.client.get_run(self.result.run_id)
        self.assertEqual(run.info.status, "FINISHED")
        self.assertEqual(run.info.run_name, "r1")
        self.assertEqual(run.data.params["methods"], "average,maxabs")
        self.assertEqual(run.data.params["split"], "test")
        self.assertEqual(run.data.params["n_samples"], "2")
        for task in ("MRI_CT", "MRI_PET"):
            for method in ("average", "maxabs"):
                for m in ("EN", "SSIM"):
                    self.assertAlmostEqual(run.data.metrics[f"{task}/{method}/{m}"],
                                           self.result.summary[task][method][m].mean, places=6)
        artifacts = {a.path for a in self.client.list_artifacts(self.result.run_id)}
        self.assertTrue({"metrics.csv", "summary.md", "summary.json", "panel.png"} <= artifacts, artifacts)

    def test_run_failed_on_error(self):
        self.assertIsNotNone(self.error)
        self.assertIn("boom", str(self.error))
        exp = self.client.get_experiment_by_name("fails")
        runs = self.client.search_runs([exp.experiment_id])
        self.assertEqual([r.info.status for r in runs], ["FAILED"])
        self.assertFalse((self.failed_out / "mlflow.db").exists())  # the explicit URI was used


class TestBadInput(_TempDirCase):
    def setUp(self) -> None:
        super().setUp()
        self.datalist = write_2d_layout(self.tmp / "data", n=1)

    def _run(self, **kw):
        args = dict(metrics=["EN"], tracking=False, progress=False, panel_rows=0)
        args.update(kw)
        return evaluate(["average"], self.tmp / "out", **args)

    def test_missing_source_file(self):
        entry = self.datalist["test"][0]
        Path(entry["image"][1]).unlink()
        with self.assertRaises(InputError) as ctx:
            self._run(datalist=self.datalist)
        self.assertIn(entry["image"][1], str(ctx.exception))

    def test_size_mismatch(self):
        entry = self.datalist["test"][0]
        Image.fromarray(np.zeros((20, 24), np.uint8)).save(entry["image"][1])
        with self.assertRaises(InputError) as ctx:
            self._run(datalist=self.datalist)
        self.assertIn(entry["image"][1], str(ctx.exception))

    @parameterized.expand([
        ("missing_split", {"split": "validation"}, "validation"),
        ("empty_split", {"override": {"test": []}}, "no samples"),
        ("one_source", {"override": {"test": [{"image": ["/x/a.png"]}]}}, "at least 2"),
    ])
    def test_bad_datalist(self, _, kw, text):
        datalist = kw.pop("override", self.datalist)
        with self.assertRaises(InputError) as ctx:
            self._run(datalist=datalist, **kw)
        self.assertIn(text, str(ctx.exception))

    def test_missing_datalist_file_and_folder(self):
        with self.assertRaises(InputError):
            self._run(datalist=self.tmp / "nope.json")
        with self.assertRaises(InputError):
            self._run(data_dir=self.tmp / "nope")
        with self.assertRaises(InputError):
            self._run()  # neither

    def test_duplicate_names(self):
        entry = self.datalist["test"][0]
        with self.assertRaises(InputError):
            self._run(datalist={"test": [entry, dict(entry)]})

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            FusionEvaluator(self.datalist["test"], ["average"], self.tmp / "o", batch_size=0)
        with self.assertRaises(ValueError):
            FusionEvaluator(self.datalist["test"], ["no_such_method"], self.tmp / "o")
        with self.assertRaises(ValueError):
            FusionEvaluator(self.datalist["test"], [], self.tmp / "o")


class TestCommand(_TempDirCase):
    def test_cli_datalist(self):
        from mmif.cli import main

        datalist = write_2d_layout(self.tmp / "data", n=1)
        path = self.tmp / "datalist.json"
        path.write_text(json.dumps(datalist), encoding="utf-8")
        out = self.tmp / "out"
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["evaluate", "--datalist", str(path), "--methods", "average", "dwt", "-o", str(out),
                         "--metrics", "EN", "SSIM", "--no-mlflow", "--no-progress", "--panel-rows", "1"])
        self.assertEqual(code, 0)
        self.assertIn("| dwt |", buf.getvalue())
        rows, _ = read_metrics_csv(out / "metrics.csv")
        self.assertEqual(len(rows), 4)
        self.assertTrue((out / "fused" / "dwt" / "MRI_PET").is_dir())

    def test_cli_default_metrics_include_anatomy_function(self):
        from mmif.cli import main

        write_2d_layout(self.tmp / "data", n=1)
        out = self.tmp / "out"
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["evaluate", "--data-dir", str(self.tmp / "data"), "--methods", "maxabs", "-o", str(out),
                         "--no-mlflow", "--no-progress", "--panel-rows", "0", "--limit", "1"])
        self.assertEqual(code, 0)
        self.assertIn("| CC ↑ | anatomy ↑ | function ↑ |", buf.getvalue())
        _, names = read_metrics_csv(out / "metrics.csv")
        self.assertEqual(names, list(EVALUATION_METRICS))

    def test_cli_bad_input_exit_code(self):
        from mmif.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["evaluate", "--datalist", str(self.tmp / "missing.json"), "-o", str(self.tmp / "o"),
                         "--no-mlflow"])
        self.assertEqual(code, 2)
        self.assertIn("missing.json", err.getvalue())
        with contextlib.redirect_stderr(err):
            code = main(["evaluate", "--datalist", str(self.tmp / "missing.json"), "-o", str(self.tmp / "o"),
                         "--methods", "nosuch", "--no-mlflow"])
        self.assertEqual(code, 2)

    def test_cli_dmfnet_weights_options(self):
        from mmif.cli import main

        path = self.tmp / "dl.json"
        path.write_text(json.dumps(write_2d_layout(self.tmp / "data", n=1)), encoding="utf-8")
        missing = self.tmp / "no_head.pt"
        for extra, expected in (
            (["--methods", "average", "--checkpoint", str(missing)], "dmfnet is not in --methods"),
            (["--methods", "dmfnet", "average", "--stage1-ckpt", str(missing)], str(missing)),
        ):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(["evaluate", "--datalist", str(path), "-o", str(self.tmp / "o"), "--no-mlflow", *extra])
            self.assertEqual(code, 2)
            self.assertIn(expected, err.getvalue())
            self.assertFalse((self.tmp / "o" / "metrics.csv").exists())


if __name__ == "__main__":
    unittest.main()
