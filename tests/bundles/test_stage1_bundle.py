"""The Stage I bundle configs run end to end (tiny overrides) through MONAI's ConfigWorkflow, and resume."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from monai.bundle.utils import DEFAULT_METADATA

from mmif.networks.feature_extractor import load_stage1_weights
from tests.bundles._helpers import build_tiny as _build_tiny
from tests.bundles._helpers import check_tracked_training, mlflow_settings
from tests.bundles._helpers import tiny_net as _tiny_net
from tests.bundles._helpers import write_2d_dataset as _write_2d_dataset
from tests.bundles._helpers import write_3d_dataset as _write_3d_dataset
from tests.utils import REPO_ROOT

BUNDLE_2D = REPO_ROOT / "bundles" / "brain_mmif_2d"
BUNDLE_3D = REPO_ROOT / "bundles" / "volume_mmif_3d"



class TestStage1Bundle(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.cwd = os.getcwd()
        os.chdir(REPO_ROOT)  # shared fragments are referenced as "%configs/...", relative to the repository root

    def tearDown(self):
        os.chdir(self.cwd)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _workflow(self, bundle, data_dir: str, tracking: dict | None = None, **override) -> ConfigWorkflow:
        overrides = {
            "bundle_root": self.tmp,
            "dataset_dir": data_dir,
            "device": "$torch.device('cpu')",
            "epochs": 1,
            "val_interval": 1,
            "batch_size": 2,
            "progress_bar": False,
            "cache_rate": 0.0,
            "network_def": _tiny_net(2 if bundle == BUNDLE_2D else 3),
            **override,
        }
        meta_file = bundle / "configs" / "metadata.json"
        if not meta_file.is_file():  # the bundle metadata is written with issue 5; a stand-in keeps the run quiet
            meta_file = os.path.join(self.tmp, "metadata.json")
            with open(meta_file, "w", encoding="utf-8") as f:
                json.dump(dict(DEFAULT_METADATA), f)
        return ConfigWorkflow(
            workflow_type="train",
            meta_file=str(meta_file),
            config_file=str(bundle / "configs" / "train_stage1.json"),
            logging_file=str(BUNDLE_2D / "configs" / "logging.conf"),
            tracking=tracking,
            **overrides,
        )

    def _run(self, workflow: ConfigWorkflow):
        workflow.initialize()
        self.assertFalse(workflow.check_properties())  # nothing missing
        workflow.run()
        trainer = workflow.trainer
        metrics = dict(workflow.parser.get_parsed_content("validate#evaluator").state.metrics)
        workflow.finalize()
        return trainer, metrics

    def _check_first_epoch(self, trainer, metrics, modalities):
        self.assertEqual(trainer.state.epoch, 1)
        for t in (5, 10, 20, 100, 500):
            for mod in modalities:
                self.assertIn(f"psnr_t{t}_{mod}", metrics)
                self.assertTrue(0.0 <= metrics[f"ssim_t{t}_{mod}"] <= 1.0 + 1e-6)
        # the noisy-input baseline gets worse with the timestep
        self.assertGreater(metrics["psnr_noisy_t5"], metrics["psnr_noisy_t500"])
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, "models", "stage1_unet.pt")))
        self.assertEqual(os.listdir(os.path.join(self.tmp, "eval", "panels")), ["stage1_panel_epoch1.png"])

    def test_2d_train_validate_save_and_resume(self):
        data = os.path.join(self.tmp, "data")
        _write_2d_dataset(data)  # 8 training images -> 4 iterations of 2 per epoch
        sizes = {"patch_size": [16, 16], "val_patch_size": [32, 32], "checkpoint_interval": 3}
        first, metrics = self._run(self._workflow(BUNDLE_2D, data, **sizes))
        self._check_first_epoch(first, metrics, ("MRI", "CT"))
        self.assertEqual(first.state.iteration, 4)

        # simulate a kill after iteration 3: drop the final checkpoint, keep the interval one
        ckpt_dir = os.path.join(self.tmp, "eval", "stage1_checkpoints")
        files = sorted(os.listdir(ckpt_dir))
        self.assertEqual(len(files), 2, files)
        interval = [f for f in files if "final" not in f]
        self.assertEqual(len(interval), 1, files)
        self.assertIn("iteration=3", interval[0])
        for f in files:
            if f not in interval:
                os.remove(os.path.join(ckpt_dir, f))
        saved = load_stage1_weights(_build_tiny(2), os.path.join(ckpt_dir, interval[0])).state_dict()

        # the rerun (same command, more epochs) must continue from iteration 3 with the saved weights
        wf = self._workflow(BUNDLE_2D, data, epochs=2, val_interval=5, **sizes)
        wf.initialize()
        trainer = wf.trainer
        seen = {}

        def on_iteration_started(engine):  # after CheckpointLoader (STARTED) has restored the state
            if not seen:
                net = wf.parser.get_parsed_content("network")
                seen.update(epoch=engine.state.epoch, iteration=engine.state.iteration,
                            weights={k: v.clone() for k, v in net.state_dict().items()})

        trainer.add_event_handler(Events.ITERATION_STARTED, on_iteration_started)
        wf.run()
        self.assertEqual((seen["epoch"], seen["iteration"]), (1, 4))
        for key, value in saved.items():
            torch.testing.assert_close(seen["weights"][key], value)
        self.assertEqual((trainer.state.epoch, trainer.state.iteration), (2, 8))
        wf.finalize()

    def test_3d_train_validate_save(self):
        data = os.path.join(self.tmp, "data")
        _write_3d_dataset(data)
        sizes = {"patch_size": [16, 16, 16], "val_patch_size": [16, 16, 16], "modalities": ["t1", "pet"]}
        settings, uri = mlflow_settings(self.tmp)  # tracked like `--tracking mlflow`: the weights get registered
        trainer, metrics = self._run(self._workflow(BUNDLE_3D, data, tracking=settings, **sizes))
        self._check_first_epoch(trainer, metrics, ("t1", "pet"))
        weights = Path(self.tmp) / "models" / "stage1_unet.pt"
        check_tracked_training(self, uri, "volume_mmif_3d_stage1_unet", weights, ("psnr_t10_t1", "ssim_t10_pet"),
                               trainer.state.iteration)


if __name__ == "__main__":
    unittest.main()
