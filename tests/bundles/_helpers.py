"""Shared helpers of the bundle tests: tiny network overrides, generated data in the bundles' layouts, metadata.

Moved here from ``test_stage1_bundle.py`` / ``test_stage2_bundles.py`` (unchanged) so every bundle test reuses them.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import unittest
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.bundle.utils import DEFAULT_METADATA, DEFAULT_MLFLOW_SETTINGS
from monai.networks.nets import DiffusionModelUNet
from PIL import Image

from tests.utils import REPO_ROOT

__all__ = [
    "TINY_SCHEDULER",
    "TINY_UNET",
    "build_tiny",
    "check_tracked_training",
    "free_ports",
    "meta_file",
    "mlflow_settings",
    "stage2_overrides",
    "tiny_net",
    "write_2d_data",
    "write_2d_dataset",
    "write_3d_data",
    "write_3d_dataset",
    "write_tiny_stage1",
]

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


def tiny_net(spatial_dims: int) -> dict:
    """A whole Stage I ``network_def`` override (the bundle's one is a ``%`` macro, so it is replaced, not patched)."""
    return {
        "_target_": "monai.networks.nets.DiffusionModelUNet",
        "spatial_dims": spatial_dims,
        "in_channels": 1,
        "out_channels": 1,
        "channels": [8, 8, 8],
        "attention_levels": [False, False, True],
        "num_res_blocks": 1,
        "norm_num_groups": 8,
        "num_head_channels": 8,
    }


def build_tiny(spatial_dims: int):
    """The network of :func:`tiny_net`."""
    return ConfigParser({"net": tiny_net(spatial_dims)}).get_parsed_content("net")


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
    import nibabel as nib

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


def write_2d_dataset(root: str, cases: int = 3, slices: int = 2, size: int = 40) -> None:
    """Harvard-like layout: MRI_CT/train/{MRI,CT}/<case><3-digit slice>.png, smooth random blobs."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    for mod in ("MRI", "CT"):
        os.makedirs(os.path.join(root, "MRI_CT", "train", mod), exist_ok=True)
    for c in range(1, cases + 1):
        for s in range(slices):
            name = f"{c}{s:03d}"
            for mod in ("MRI", "CT"):
                cx, cy, r = rng.uniform(0.3, 0.7, 3)
                img = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.1 * r)) * 255
                Image.fromarray(img.astype(np.uint8)).save(os.path.join(root, "MRI_CT", "train", mod, name + ".png"))


def write_3d_dataset(root: str, cases: int = 3, size: int = 20) -> None:
    """``root/case<i>/{t1,pet}.nii.gz``: uniform random volumes."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    for c in range(cases):
        os.makedirs(os.path.join(root, f"case{c}"), exist_ok=True)
        for mod in ("t1", "pet"):
            vol = rng.random((size, size, size)).astype(np.float32)
            nib.save(nib.Nifti1Image(vol, np.eye(4)), os.path.join(root, f"case{c}", f"{mod}.nii.gz"))


def meta_file(bundle: str, tmp: Path) -> str:
    """The bundle's ``metadata.json`` when it exists, else MONAI's default metadata written to ``tmp``."""
    path = REPO_ROOT / "bundles" / bundle / "configs" / "metadata.json"
    if path.is_file():
        return str(path)
    out = Path(tmp) / "metadata.json"
    out.write_text(json.dumps(DEFAULT_METADATA), encoding="utf-8")
    return str(out)


def stage2_overrides(root: Path, data_dir: Path, spatial_dims: int) -> dict:
    """Tiny Stage II overrides: a random tiny Stage I UNet written as ``root/models/stage1_unet.pt``, small crops."""
    roi = [32, 32] if spatial_dims == 2 else [16, 16, 16]
    return {
        "bundle_root": str(root),
        "dataset_dir": str(data_dir),
        "unet_def": write_tiny_stage1(root / "models" / "stage1_unet.pt", spatial_dims),
        "scheduler_def": TINY_SCHEDULER,
        "epochs": 2,
        "batch_size": 4,
        "crops_per_image": 2,  # the feature cache (cache_features, on by default): 2 fixed crops per image
        "roi_size": roi,
        "val_roi_size": roi,  # 3D validation windows
        "progress_bar": False,
        "validate#additional_metrics#val_vif#scales": 1,  # tiny images: a single VIF scale
    }


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (for ``MASTER_PORT`` of process groups)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


EXPERIMENT = "bundle-test"


def mlflow_settings(folder: str | os.PathLike) -> tuple[dict, str]:
    """``--tracking mlflow`` settings (MONAI's defaults) with an embedded SQLite store in ``folder``; -> (settings, uri)."""
    settings = copy.deepcopy(DEFAULT_MLFLOW_SETTINGS)
    uri = f"sqlite:///{Path(folder).resolve()}/mlflow.db"
    settings["configs"].update(tracking_uri=uri, experiment_name=EXPERIMENT)
    return settings, uri


def check_tracked_training(case: unittest.TestCase, uri: str, registered_name: str, weights: Path,
                           metrics: tuple[str, ...], iterations: int) -> None:
    """One FINISHED run holding the loss of each of the ``iterations``, the given metrics, the executed config (as an
    artifact and as params), the trained weights (equal to ``weights``) and version 1 of ``registered_name`` pointing
    at them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    case.assertEqual(len(runs), 1)
    run = runs[0]
    case.assertEqual(run.info.status, "FINISHED")
    case.assertEqual(len(client.get_metric_history(run.info.run_id, "train_loss")), iterations)
    for key in metrics:
        case.assertIn(key, run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    case.assertTrue(any(a.startswith("config_") and a.endswith(".json") for a in artifacts), artifacts)
    logged = client.download_artifacts(run.info.run_id, f"model/{weights.name}")
    case.assertEqual(Path(logged).read_bytes(), weights.read_bytes())
    versions = client.search_model_versions(f"name = '{registered_name}'")
    case.assertEqual([(str(v.version), v.run_id) for v in versions], [("1", run.info.run_id)])
    case.assertTrue(versions[0].source.endswith("/model"))
    case.assertEqual(run.data.tags["mmif.registered_model"], f"{registered_name}/1")
    # the executed config as params: settings to compare runs by
    case.assertIn("bundle_root", run.data.params)
    case.assertTrue(any(k.startswith("train.trainer.") for k in run.data.params), sorted(run.data.params)[:20])
