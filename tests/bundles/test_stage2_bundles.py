"""Stage II training bundles (``train_stage2.json``) through ``monai.bundle.ConfigWorkflow``, model-zoo style.

Tiny overrides: a random (8, 8, 8) Stage I UNet written as the bundle's Stage I checkpoint, 32² images / 16³ volumes,
two epochs. The flow is train -> resume (one more epoch from the saved checkpoint).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow
from monai.bundle.utils import DEFAULT_METADATA
from monai.networks.nets import DiffusionModelUNet
from PIL import Image

from tests.utils import REPO_ROOT

TINY_UNET = {
    "_target_": "monai.networks.nets.DiffusionModelUNet",
    "in_channels": 1,
    "out_channels": 1,
    "channels": [8, 8, 8],
    "attention_levels": [False, False, False],
    "num_res_blocks": 1,
    "norm_num_groups": 8,
}
TINY_SCHEDULER = {"_target_": "monai.networks.schedulers.DDPMScheduler", "num_train_timesteps": 1000}


def write_tiny_stage1(path: Path, spatial_dims: int, seed: int = 0) -> dict:
    """Save a random tiny Stage I UNet state dict at ``path``; returns its config dict."""
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in TINY_UNET.items() if k != "_target_"}
    unet = DiffusionModelUNet(spatial_dims=spatial_dims, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(unet.state_dict(), path)
    return {**TINY_UNET, "spatial_dims": spatial_dims}


def write_2d_data(root: Path, size: int = 32, cases=(1, 2, 3, 4), slices: int = 2) -> None:
    """``root/{MRI_CT,MRI_PET}/train/{MRI,CT|PET}/<case><slice:03d>.png``: a bright blob plus texture; PET in RGB."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for task, other, colour in (("MRI_CT", "CT", False), ("MRI_PET", "PET", True)):
        for case in cases:
            for s in range(slices):
                name = f"{case}{s:03d}"
                dy = rng.integers(-4, 4)
                blob = np.exp(-((yy - size / 2 - dy) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 5) ** 2))
                mri = (255 * (0.6 * blob + 0.4 * rng.random((size, size)) * (blob > 0.2))).astype(np.uint8)
                o = (255 * np.clip(blob**2 + 0.1 * rng.random((size, size)), 0, 1)).astype(np.uint8)
                for mod, arr in (("MRI", mri), (other, np.stack([o, o // 2, 255 - o], -1) if colour else o)):
                    d = root / task / "train" / mod
                    d.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr.astype(np.uint8)).save(d / f"{name}.png")


def write_3d_data(root: Path, shape=(20, 20, 16), cases: int = 3) -> None:
    """``root/case<i>/{flair,t1c}.nii.gz`` with one affine per case."""
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    for i in range(cases):
        centre = np.array(shape)[:, None, None, None] / 2
        blob = np.exp(-((grid - centre) ** 2).sum(0) / (2 * 4.0**2))
        affine = np.diag([1.2, 1.0, 2.0, 1.0])
        for mod, k in (("flair", 1.0), ("t1c", 0.5)):
            data = (1000 * (k * blob + 0.2 * rng.random(shape))).astype(np.float32)
            (root / f"case{i}").mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(data, affine), str(root / f"case{i}" / f"{mod}.nii.gz"))


def meta_file(bundle: str, tmp: Path) -> str:
    """The bundle's ``metadata.json`` when it exists, else MONAI's default metadata written to ``tmp``."""
    path = REPO_ROOT / "bundles" / bundle / "configs" / "metadata.json"
    if path.is_file():
        return str(path)
    out = tmp / "metadata.json"
    out.write_text(json.dumps(DEFAULT_METADATA))
    return str(out)


def stage2_overrides(root: Path, data_dir: Path, spatial_dims: int) -> dict:
    roi = [32, 32] if spatial_dims == 2 else [16, 16, 16]
    return {
        "bundle_root": str(root),
        "dataset_dir": str(data_dir),
        "unet_def": write_tiny_stage1(root / "models" / "stage1_unet.pt", spatial_dims),
        "scheduler_def": TINY_SCHEDULER,
        "epochs": 2,
        "batch_size": 4,
        "roi_size": roi,
        "val_roi_size": roi,  # 3D validation windows
        "progress_bar": False,
        "validate#additional_metrics#val_vif#scales": 1,  # tiny images: a single VIF scale
    }


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
        head_before = {k: v.clone() for k, v in wf.network_def.head.state_dict().items()}
        wf.run()
        trainer = wf.trainer
        self.assertEqual(trainer.state.epoch, 2)
        metrics = wf.evaluator.state.metrics
        for key in ("val_qabf", "val_ssim", "val_mi", "val_vif", "val_fusion_score"):
            self.assertTrue(np.isfinite(metrics[key]), key)
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

    @unittest.skipUnless((REPO_ROOT / "bundles/volume_mmif_3d/configs/train_stage2.json").is_file(), "no 3D config")
    def test_volume_3d(self):
        data = self.tmp / "data"
        write_3d_data(data)
        self._train_and_resume("volume_mmif_3d", 3, data)


if __name__ == "__main__":
    unittest.main()
