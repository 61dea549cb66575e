"""Every bundle conforms to the MONAI bundle specification, model-zoo ``ci/verify_bundle.py`` style.

- layout: the files model-zoo requires or prefers, and the README sections;
- ``verify_metadata`` against the offline schema ``configs/schema/bundle_metadata_schema.json`` (a download attempt
  fails the test);
- ``verify_net_in_out`` for the Stage II fusion model of ``inference.json`` (2 channels -> 1) and for the Stage I
  diffusion UNet presets (``timesteps`` as extra forward argument), with random weights;
- ``ConfigWorkflow(...).check_properties()`` for every config of every bundle, the multi-GPU overlays merged in (a
  one-process ``gloo`` group), and overrides the MONAI way (flat ids, several config files, the command line).

Tiny generated data (32² PNG pairs, 20×20×16 NIfTI cases) and tiny network overrides where a workflow is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import torch
from monai.bundle import ConfigWorkflow, verify_metadata, verify_net_in_out
from monai.bundle.properties import InferProperties, MetaProperties
from monai.utils import BundleProperty
from parameterized import parameterized

from tests.bundles._helpers import (
    TINY_SCHEDULER,
    free_ports,
    meta_file,
    stage2_overrides,
    tiny_net,
    write_2d_data,
    write_3d_data,
    write_tiny_stage1,
)
from tests.utils import REPO_ROOT

SCHEMA = REPO_ROOT / "configs" / "schema" / "bundle_metadata_schema.json"
BUNDLES = [("brain_mmif_2d", 2), ("volume_mmif_3d", 3)]
# model-zoo ci/verify_bundle.py: necessary files, plus the preferred inference config and our docs
REQUIRED_FILES = (
    "LICENSE",
    "configs/metadata.json",
    "configs/inference.json",
    "configs/logging.conf",
    "docs/README.md",
    "docs/data_license.txt",
)
README_SECTIONS = (
    "Model Overview",
    "Data",
    "Training configuration",
    "Performance",
    "MONAI Bundle Commands",
    "References",
    "License",
)
# spatial size used for the fake network inputs: "8*n" with n = 4 -> 32² in 2D, n = 2 -> 16³ in 3D
NET_N = {2: 4, 3: 2}


def configs_of(bundle: str) -> Path:
    return REPO_ROOT / "bundles" / bundle / "configs"


@contextlib.contextmanager
def no_download():
    """Fail on any download attempt of MONAI's ``download_url`` (the schema must be read from the repository)."""
    with mock.patch("monai.apps.utils._download_with_progress", side_effect=AssertionError("download attempted")):
        yield


def stage1_overrides(root: Path, data_dir: Path, spatial_dims: int) -> dict:
    """Tiny Stage I overrides (as in ``test_stage1_bundle.py``): tiny UNet, 16-voxel patches, one short epoch."""
    patch = [16] * spatial_dims
    return {
        "bundle_root": str(root),
        "dataset_dir": str(data_dir),
        "device": "$torch.device('cpu')",
        "epochs": 1,
        "val_interval": 1,
        "batch_size": 2,
        "progress_bar": False,
        "cache_rate": 0.0,
        "network_def": tiny_net(spatial_dims),
        "patch_size": patch,
        "val_patch_size": patch if spatial_dims == 3 else [32, 32],
        "val_num_images": 4,
    }


class TestBundleLayout(unittest.TestCase):
    @parameterized.expand(BUNDLES)
    def test_required_files(self, bundle, _):
        root = REPO_ROOT / "bundles" / bundle
        for rel in REQUIRED_FILES:
            path = root / rel
            self.assertTrue(path.is_file() and path.stat().st_size > 0, f"{bundle}: missing or empty {rel}")
        for train in sorted((root / "configs").glob("train_stage*.json")):
            overlay = root / "configs" / f"multi_gpu_{train.name}"
            self.assertTrue(overlay.is_file(), f"{bundle}: no multi-GPU overlay for {train.name}")
        self.assertTrue((root / "models").is_dir(), f"{bundle}: no models/ folder")

    @parameterized.expand(BUNDLES)
    def test_readme_sections_in_model_zoo_order(self, bundle, _):
        text = (REPO_ROOT / "bundles" / bundle / "docs" / "README.md").read_text(encoding="utf-8")
        headings = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("## ")]
        found = [next((i for i, h in enumerate(headings) if h.startswith(s)), -1) for s in README_SECTIONS]
        self.assertNotIn(-1, found, f"{bundle}: README lacks one of {README_SECTIONS}: {headings}")
        self.assertEqual(found, sorted(found), f"{bundle}: README sections out of order: {headings}")


# handlers an overlay may switch off on ranks > 0 (what only rank 0 should do: report, save, validate rank-locally)
RANK0_ONLY_HANDLERS = ("ValidationHandler", "StatsHandler", "ProgressBar", "ProgressBarHandler", "CheckpointSaver",
                       "FusionPanelSaver")


class TestMultiGPUOverlayIds(unittest.TestCase):
    """The overlays address base-config items by list index: each index must still point at the intended handler."""

    @parameterized.expand([(b, s) for b, _ in BUNDLES for s in ("train_stage1", "train_stage2")])
    def test_indexed_ids_point_at_rank0_handlers(self, bundle, stage):
        base = json.loads((configs_of(bundle) / f"{stage}.json").read_text(encoding="utf-8"))
        overlay = json.loads((configs_of(bundle) / f"multi_gpu_{stage}.json").read_text(encoding="utf-8"))
        checked = 0
        for key in overlay:
            parts = key.split("#")
            if len(parts) < 4 or not parts[2].isdigit() or parts[1] not in ("handlers", "checkpoint_handlers"):
                continue
            items = base[parts[0]][parts[1]]
            self.assertIsInstance(items, list, f"{key}: the base item is not a list (a macro cannot be patched)")
            target = items[int(parts[2])]["_target_"]
            if parts[3] == "_disabled_":
                self.assertTrue(target.endswith(RANK0_ONLY_HANDLERS), f"{key} disables {target} on ranks > 0")
            checked += 1
        self.assertGreater(checked, 0)


class TestMetadata(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    @parameterized.expand(BUNDLES)
    def test_verify_metadata_offline(self, bundle, _):
        before = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
        with no_download():
            verify_metadata(meta_file=str(configs_of(bundle) / "metadata.json"), filepath=str(SCHEMA))
        self.assertEqual(hashlib.sha256(SCHEMA.read_bytes()).hexdigest(), before)  # the schema was not replaced

    @parameterized.expand([("version",), ("network_data_format",), ("changelog",)])
    def test_verify_metadata_rejects_missing_field(self, field):
        meta = json.loads((configs_of("brain_mmif_2d") / "metadata.json").read_text(encoding="utf-8"))
        del meta[field]
        bad = self.tmp / "metadata.json"
        bad.write_text(json.dumps(meta), encoding="utf-8")
        with no_download(), self.assertRaisesRegex(ValueError, field):
            verify_metadata(meta_file=str(bad), filepath=str(SCHEMA))

    @parameterized.expand(BUNDLES)
    def test_metadata_agrees_with_configs(self, bundle, spatial_dims):
        meta = json.loads((configs_of(bundle) / "metadata.json").read_text(encoding="utf-8"))
        infer = json.loads((configs_of(bundle) / "inference.json").read_text(encoding="utf-8"))
        self.assertEqual(infer["spatial_dims"], spatial_dims)
        self.assertIn(meta["version"], meta["changelog"])
        for key in ("inputs", "outputs"):
            for name, tensor in meta["network_data_format"][key].items():
                self.assertEqual(len(tensor["spatial_shape"]), spatial_dims, f"{key}#{name}")
                self.assertEqual(tensor["value_range"], [0, 1], f"{key}#{name}")  # docs/conventions.md
        self.assertEqual(meta["network_data_format"]["inputs"]["image"]["num_channels"], 2)
        self.assertEqual(meta["network_data_format"]["outputs"]["pred"]["num_channels"], 1)
        self.assertIn("data_license.txt", meta["data_source"])


class TestNetInOut(unittest.TestCase):
    """``verify_net_in_out`` with the bundles' real network definitions and random weights (nothing is loaded)."""

    def setUp(self):
        self.cwd = os.getcwd()
        os.chdir(REPO_ROOT)  # "%configs/..." macros resolve from the repository root

    def tearDown(self):
        os.chdir(self.cwd)

    @parameterized.expand(BUNDLES)
    def test_fusion_model_of_inference_config(self, bundle, spatial_dims):
        torch.manual_seed(0)
        verify_net_in_out(
            net_id="network_def",
            meta_file=str(configs_of(bundle) / "metadata.json"),
            config_file=str(configs_of(bundle) / "inference.json"),
            device="cpu",
            n=NET_N[spatial_dims],
        )

    def test_fusion_model_wrong_output_channels_fails(self):
        with self.assertRaisesRegex(ValueError, "output channel"):
            verify_net_in_out(
                net_id="network_def",
                meta_file=str(configs_of("brain_mmif_2d") / "metadata.json"),
                config_file=str(configs_of("brain_mmif_2d") / "inference.json"),
                device="cpu",
                n=4,
                **{"_meta_#network_data_format#outputs#pred#num_channels": 2},
            )

    @parameterized.expand(
        [
            ("brain_mmif_2d", 2, None),
            ("brain_mmif_2d", 2, "%configs/stage1_unet_large.json#network_def"),  # the documented preset switch
            ("volume_mmif_3d", 3, None),
        ]
    )
    def test_diffusion_unet_of_stage1_config(self, bundle, spatial_dims, network_def):
        override = {"_meta_#network_data_format#inputs#image#num_channels": 1}  # the UNet sees one source at a time
        if network_def is not None:
            override["network_def"] = network_def
        torch.manual_seed(0)
        verify_net_in_out(
            net_id="network_def",
            meta_file=str(configs_of(bundle) / "metadata.json"),
            config_file=str(configs_of(bundle) / "train_stage1.json"),
            device="cpu",
            n=NET_N[spatial_dims],
            extra_forward_args={"timesteps": torch.tensor([10])},
            **override,
        )


class TestWorkflowProperties(unittest.TestCase):
    """``ConfigWorkflow(...).check_properties()`` reports nothing missing for every config (tiny overrides)."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.cwd = os.getcwd()
        os.chdir(REPO_ROOT)
        self.data = {2: self.tmp / "data2d", 3: self.tmp / "data3d"}
        write_2d_data(self.data[2])
        write_3d_data(self.data[3])

    def tearDown(self):
        os.chdir(self.cwd)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _workflow(self, bundle: str, configs, workflow_type: str, **override) -> ConfigWorkflow:
        files = [str(configs_of(bundle) / c) for c in configs]
        wf = ConfigWorkflow(
            config_file=files if len(files) > 1 else files[0],
            meta_file=meta_file(bundle, self.tmp),
            logging_file=str(configs_of(bundle) / "logging.conf"),
            workflow_type=workflow_type,
            **override,
        )
        wf.initialize()
        return wf

    def _overrides(self, stage: str, bundle: str, spatial_dims: int) -> dict:
        root = self.tmp / "bundle"
        if stage == "train_stage1":
            return stage1_overrides(root, self.data[spatial_dims], spatial_dims)
        if stage == "train_stage2":
            return stage2_overrides(root, self.data[spatial_dims], spatial_dims)
        if stage == "inference":
            folder = self.data[2] / "MRI_PET" / "train" if spatial_dims == 2 else self._volume_folder()
            return {
                "bundle_root": str(root),
                "dataset_dir": str(folder),
                "output_dir": str(self.tmp / "fused"),
                "unet_def": write_tiny_stage1(root / "models" / "stage1_unet.pt", spatial_dims),
                "scheduler_def": TINY_SCHEDULER,
                "load_pretrain": False,  # random weights: nothing trained is needed
                "roi_size": None if spatial_dims == 2 else [16, 16, 16],
                "progress_bar": False,
            }
        raise AssertionError(stage)

    def _volume_folder(self) -> Path:
        """The inference layout ``DIR/{flair,t1c}/NAME.nii.gz`` from the generated 3D cases."""
        folder = self.tmp / "volumes_in"
        for mod in ("flair", "t1c"):
            (folder / mod).mkdir(parents=True, exist_ok=True)
            shutil.copy(self.data[3] / "case0" / f"{mod}.nii.gz", folder / mod / "case0.nii.gz")
        return folder

    @parameterized.expand(
        [
            (bundle, dims, stage, wtype)
            for bundle, dims in BUNDLES
            for stage, wtype in (("train_stage1", "train"), ("train_stage2", "train"), ("inference", "infer"))
        ]
    )
    def test_config_properties(self, bundle, spatial_dims, stage, workflow_type):
        wf = self._workflow(bundle, [f"{stage}.json"], workflow_type, **self._overrides(stage, bundle, spatial_dims))
        self.assertEqual(wf.check_properties(), [])
        self.assertEqual(wf.bundle_root, str(self.tmp / "bundle"))
        if workflow_type == "train":
            self.assertGreater(len(wf.train_dataset), 0)
            self.assertEqual(wf.max_epochs, wf.parser.get_parsed_content("epochs"))
        else:
            self.assertGreater(len(wf.dataset), 0)
        wf.finalize()

    def test_evaluate_config_properties(self):
        """``evaluate.json`` is an evaluation workflow that scores named fusion methods with ``FusionEvaluator`` (not
        an Ignite engine running one network): of MONAI's inference/eval property set only ``network_def`` and
        ``inferer`` do not apply, everything else is there. With a property file of the evaluation properties
        (``properties_path``, MONAI's mechanism for other property sets) nothing is missing."""
        override = {
            "bundle_root": str(self.tmp / "bundle"),
            "dataset_dir": str(self.data[2]),
            "split": "train",
            "output_dir": str(self.tmp / "eval"),
            "methods": ["average"],
            "mlflow": False,
        }
        wf = self._workflow("brain_mmif_2d", ["evaluate.json"], "eval", **override)
        absent = [n for n, p in wf.properties.items() if p.get(BundleProperty.REQUIRED) and p["id"] not in wf.parser]
        self.assertEqual(absent, ["network_def", "inferer"])
        with self.assertRaisesRegex(KeyError, "network_def"):  # MONAI 1.6.1 raises rather than listing them
            wf.check_properties()
        wf.finalize()

        props = {k: v for k, v in InferProperties.items() if k not in ("network_def", "inferer")}
        path = self.tmp / "evaluation_properties.json"
        path.write_text(json.dumps({"infer": props, "meta": MetaProperties}), encoding="utf-8")  # MONAI files "eval" under "infer"
        wf = ConfigWorkflow(
            config_file=str(configs_of("brain_mmif_2d") / "evaluate.json"),
            meta_file=meta_file("brain_mmif_2d", self.tmp),
            workflow_type="eval",
            properties_path=str(path),
            **override,
        )
        wf.initialize()
        self.assertIn("evaluator", wf.properties)  # the property file was read (an empty set would pass vacuously)
        self.assertEqual(wf.check_properties(), [])
        self.assertEqual(len(wf.dataset), 16)  # the 16 generated pairs of the train split
        wf.finalize()

    @parameterized.expand([(b, dims, stage) for b, dims in BUNDLES for stage in ("train_stage1", "train_stage2")])
    def test_multi_gpu_overlay_merged_one_process(self, bundle, spatial_dims, stage):
        """``['train_stageN.json', 'multi_gpu_train_stageN.json']`` on a one-process gloo group: properties, one epoch
        with a DDP network and a distributed sampler, the group destroyed at the end."""
        env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
        env["MASTER_PORT"] = str(free_ports(1)[0])
        override = self._overrides(stage, bundle, spatial_dims)
        override.pop("device", None)  # the overlay's device (from LOCAL_RANK) is under test
        override["train#trainer#max_epochs"] = 1
        with mock.patch.dict(os.environ, env):
            wf = self._workflow(bundle, [f"{stage}.json", f"multi_gpu_{stage}.json"], "train", **override)
            try:
                self.assertTrue(torch.distributed.is_initialized())
                self.assertEqual(wf.check_properties(), [])
                self.assertEqual(wf.device, torch.device("cpu"))
                network, sampler = (wf.parser.get_parsed_content(i) for i in ("network", "train#sampler"))
                self.assertIsInstance(network, torch.nn.parallel.DistributedDataParallel)
                self.assertIsInstance(sampler, torch.utils.data.DistributedSampler)
                wf.run()
                self.assertEqual(wf.trainer.state.epoch, 1)
            finally:
                wf.finalize()
        self.assertFalse(torch.distributed.is_initialized())

    def test_overrides_the_monai_way(self):
        """Flat-id overrides (``dataset_dir``, ``output_dir``, ``train#trainer#max_epochs``) take effect in-process."""
        override = stage1_overrides(self.tmp / "bundle", self.data[2], 2)
        override.update({"epochs": 5, "train#trainer#max_epochs": 1, "output_dir": str(self.tmp / "out")})
        wf = self._workflow("brain_mmif_2d", ["train_stage1.json"], "train", **override)
        self.assertEqual(wf.dataset_dir, str(self.data[2]))
        wf.run()
        self.assertEqual(wf.trainer.state.epoch, 1)  # the flat id beats "epochs"
        self.assertTrue((self.tmp / "out" / "panels" / "stage1_panel_epoch1.png").is_file())
        self.assertTrue(list((self.tmp / "out" / "stage1_checkpoints").glob("stage1_checkpoint_final*.pt")))
        self.assertTrue((self.tmp / "bundle" / "models" / "stage1_unet.pt").is_file())
        wf.finalize()

    def test_command_line_merged_configs(self):
        """The documented command: ``python -m monai.bundle run`` with a list of config files and flat-id overrides."""
        tiny = self.tmp / "tiny.json"
        tiny.write_text(json.dumps({"network_def": tiny_net(2)}), encoding="utf-8")
        configs = [str(configs_of("brain_mmif_2d") / "train_stage1.json"), str(tiny)]
        out = self.tmp / "out"
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs),
               "--meta_file", str(configs_of("brain_mmif_2d") / "metadata.json"),
               "--bundle_root", str(self.tmp / "bundle"), "--dataset_dir", str(self.data[2]), "--output_dir", str(out),
               "--train#trainer#max_epochs", "1", "--val_interval", "1", "--patch_size", "[16,16]",
               "--val_patch_size", "[32,32]", "--val_num_images", "4", "--progress_bar", "False"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertTrue((out / "panels" / "stage1_panel_epoch1.png").is_file())
        self.assertTrue((self.tmp / "bundle" / "models" / "stage1_unet.pt").is_file())
        self.assertIn("Epoch[1] Complete", proc.stdout + proc.stderr)
        self.assertNotIn("Epoch[2]", proc.stdout + proc.stderr)


if __name__ == "__main__":
    unittest.main()
