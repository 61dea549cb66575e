"""Stage II training bundles (``train_stage2.json``) through ``monai.bundle.ConfigWorkflow``, model-zoo style.

Tiny overrides: a random (8, 8, 8) Stage I UNet written as the bundle's Stage I checkpoint, 32² images / 16³ volumes,
two epochs. The flow is train -> resume (one more epoch from the saved checkpoint).
"""

from __future__ import annotations

import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigWorkflow

from mmif.engines.feature_cache import CachedFeatureDataset
from tests.bundles._helpers import (
    check_tracked_training,
    meta_file,
    mlflow_settings,
    stage2_overrides,
    write_2d_data,
    write_3d_data,
)
from tests.utils import REPO_ROOT

class TestStage2Bundles(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _workflow(self, bundle: str, **override) -> ConfigWorkflow:
        configs = REPO_ROOT / "bundles" / bundle / "configs"
        logging_file = configs / "logging.conf"
        return ConfigWorkflow(
            config_file=str(configs / "train_stage2.json"),
            meta_file=meta_file(bundle, self.tmp),
            logging_file=str(logging_file) if logging_file.is_file() else None,
            workflow_type="train",
            **override,
        )

    def _train_and_resume(self, bundle: str, spatial_dims: int, data_dir: Path) -> None:
        root = self.tmp / "bundle"
        override = stage2_overrides(root, data_dir, spatial_dims)
        wf = self._workflow(bundle, **override)
        wf.initialize()
        self.assertEqual(wf.check_properties(), [])
        # cache_features (default): the trainer reads fixed crops with cached Stage I features
        self.assertIsInstance(wf.train_dataset, CachedFeatureDataset)
        source = wf.parser.get_parsed_content("train#source_dataset")
        self.assertEqual(len(wf.train_dataset), len(source) * override["crops_per_image"])
        head_before = {k: v.clone() for k, v in wf.network_def.head.state_dict().items()}
        wf.run()
        trainer = wf.trainer
        self.assertEqual(trainer.state.epoch, 2)
        metrics = wf.evaluator.state.metrics
        for key in ("val_qabf", "val_ssim", "val_mi", "val_vif", "val_fusion_score"):
            self.assertTrue(np.isfinite(metrics[key]), key)
        for key in ("val_anatomy", "val_function"):  # NaN when no validation image has a functional-dominant region
            self.assertIsInstance(metrics[key], float, key)
            self.assertFalse(metrics[key] > 1.0, key)
            self.assertEqual(len(wf.evaluator.state.metric_details[key]), len(wf.evaluator.data_loader.dataset))
        self.assertIn("loss_intensity", trainer.state.metrics)
        iterations = trainer.state.iteration
        wf.finalize()
        # best head (model-zoo models/), resumable checkpoint, validation panels
        best = torch.load(root / "models" / "fusion_head.pt", weights_only=True)
        self.assertEqual(set(best), set(head_before))
        self.assertTrue(any(not torch.equal(best[k], head_before[k]) for k in best))
        self.assertTrue(list((root / "eval" / "stage2_checkpoints").glob("checkpoint*.pt")))
        self.assertTrue(list((root / "eval" / "stage2_panels").glob("val_panel_*.png")))
        # resume: a third epoch continues from the saved trainer state
        wf = self._workflow(bundle, **{**override, "epochs": 3})
        wf.initialize()
        wf.run()
        self.assertEqual(wf.trainer.state.epoch, 3)
        self.assertEqual(wf.trainer.state.iteration, iterations * 3 // 2)
        wf.finalize()

    def test_brain_2d(self):
        data = self.tmp / "data"
        write_2d_data(data)
        self._train_and_resume("brain_mmif_2d", 2, data)

    def test_brain_2d_tracked_in_mlflow(self):
        """``--tracking mlflow``: losses, validation metrics, panels, the best head as an artifact and registered."""
        data = self.tmp / "data"
        write_2d_data(data)
        root = self.tmp / "bundle"
        settings, uri = mlflow_settings(self.tmp)
        # a plain-path output_dir (as `--output_dir runs/stage2` gives): MONAI then names the executed config to the
        # MLFlowHandler by a broken path, and LogConfigParams logs the file itself
        override = {**stage2_overrides(root, data, 2), "output_dir": str(self.tmp / "out")}
        wf = self._workflow("brain_mmif_2d", tracking=settings, **override)
        wf.initialize()
        wf.run()
        iterations = wf.trainer.state.iteration
        wf.finalize()
        check_tracked_training(self, uri, "brain_mmif_2d_fusion_head", root / "models" / "fusion_head.pt",
                               ("val_fusion_score", "loss_intensity", "loss_information"), iterations)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        run = client.search_runs([client.get_experiment_by_name("bundle-test").experiment_id])[0]
        panels = [a.path for a in client.list_artifacts(run.info.run_id, "panels")]
        self.assertEqual(len(panels), 2)  # one per validation

    def test_brain_2d_failed_training_ends_its_run_failed(self):
        """An error in the validation of a tracked training: the error reaches the caller, the run ends FAILED."""
        from ignite.engine import Events
        from mlflow.tracking import MlflowClient

        data = self.tmp / "data"
        write_2d_data(data)
        settings, uri = mlflow_settings(self.tmp)
        wf = self._workflow("brain_mmif_2d", tracking=settings, **stage2_overrides(self.tmp / "bundle", data, 2))
        wf.initialize()

        def unreadable(engine):
            raise OSError("validation image unreadable")

        wf.evaluator.add_event_handler(Events.ITERATION_COMPLETED(once=1), unreadable)
        with self.assertRaises(RuntimeError) as raised:  # MONAI's config runner wraps the error ...
            wf.run()
        self.assertIsInstance(raised.exception.__cause__, OSError)  # ... which stays the cause
        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("bundle-test").experiment_id])
        self.assertEqual([r.info.status for r in runs], ["FAILED"])
        self.assertGreater(len(client.get_metric_history(runs[0].info.run_id, "train_loss")), 0)  # it had trained

    @unittest.skipUnless((REPO_ROOT / "bundles/volume_mmif_3d/configs/train_stage2.json").is_file(), "no 3D config")
    def test_volume_3d(self):
        data = self.tmp / "data"
        write_3d_data(data)
        self._train_and_resume("volume_mmif_3d", 3, data)

    def test_brain_2d_without_feature_cache(self):
        """``cache_features: false``: today's training, the UNet runs on fresh random crops every iteration."""
        data = self.tmp / "data"
        write_2d_data(data)
        override = {**stage2_overrides(self.tmp / "bundle", data, 2), "cache_features": False, "epochs": 1}
        wf = self._workflow("brain_mmif_2d", **override)
        wf.initialize()
        self.assertIsNone(wf.parser.get_parsed_content("train#feature_cache"))
        self.assertIs(wf.train_dataset, wf.parser.get_parsed_content("train#source_dataset"))
        calls = []
        wf.network_def.extractor.register_forward_hook(lambda *a: calls.append(1))
        wf.run()
        self.assertEqual(wf.trainer.state.epoch, 1)
        self.assertGreaterEqual(len(calls), wf.trainer.state.iteration)  # the UNet ran in every iteration
        wf.finalize()


if __name__ == "__main__":
    unittest.main()
