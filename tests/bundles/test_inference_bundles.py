"""The bundles' ``inference.json`` through ``ConfigWorkflow`` and the learned method ``dmfnet`` through ``mmif fuse``.

Tiny random Stage I UNet and fusion head (written as the bundle's ``models/`` weights); generated 32² pairs (grey MRI +
RGB PET) and 20×20×16 NIfTI volumes.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from PIL import Image

from mmif.cli import main as cli_main
from tests.bundles._helpers import TINY_SCHEDULER, meta_file, write_2d_data, write_3d_data, write_tiny_stage1
from tests.utils import REPO_ROOT


def make_tiny_bundle(root: Path, bundle: str, spatial_dims: int) -> dict:
    """A bundle folder at ``root`` with the real ``inference.json`` (tiny UNet) and random tiny weights in ``models/``.

    Returns the overrides that make the real config use the tiny network.
    """
    unet = write_tiny_stage1(root / "models" / "stage1_unet.pt", spatial_dims)
    override = {"unet_def": unet, "scheduler_def": TINY_SCHEDULER}
    config = json.loads((REPO_ROOT / "bundles" / bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    config.update(override)
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "configs" / "inference.json").write_text(json.dumps(config, indent=4), encoding="utf-8")
    parser = ConfigParser(config)
    parser["bundle_root"] = str(root)
    torch.manual_seed(1)
    head = parser.get_parsed_content("network_def").head
    torch.save(head.state_dict(), root / "models" / "fusion_head.pt")  # what CheckpointSaver writes
    return override


def run_cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["fuse", *argv])
    return code, err.getvalue()


class TestInferenceBundles(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _infer(self, bundle: str, **override) -> ConfigWorkflow:
        wf = ConfigWorkflow(
            config_file=str(REPO_ROOT / "bundles" / bundle / "configs" / "inference.json"),
            meta_file=meta_file(bundle, self.tmp),
            workflow_type="infer",
            **override,
        )
        wf.initialize()
        self.assertEqual(wf.check_properties(), [])
        wf.run()
        wf.finalize()
        return wf

    def test_brain_2d_bundle_and_dmfnet_fuse(self):
        root = self.tmp / "bundle"
        override = make_tiny_bundle(root, "brain_mmif_2d", 2)
        write_2d_data(self.tmp / "data", cases=(1,), slices=2)
        data = self.tmp / "data" / "MRI_PET" / "train"  # DIR/{MRI,PET}/NAME.png
        out = self.tmp / "out"
        self._infer("brain_mmif_2d", bundle_root=str(root), dataset_dir=str(data), output_dir=str(out),
                    progress_bar=False, **override)
        written = sorted(p.name for p in out.iterdir())
        self.assertEqual(written, ["1000.png", "1001.png"])
        bundle_out = np.asarray(Image.open(out / "1000.png"))
        self.assertEqual(bundle_out.shape, (32, 32, 3))  # PET colour kept

        # the same weights through `mmif fuse` (default method: dmfnet, weights found in the bundle)
        args = ["--bundle", str(root), "--mri", str(data / "MRI" / "1000.png")]
        args += ["--other", str(data / "PET" / "1000.png")]
        code, err = run_cli(*args, "-o", str(self.tmp / "a.png"))
        self.assertEqual(code, 0, err)
        code, err = run_cli(*args, "-o", str(self.tmp / "b.png"))
        self.assertEqual(code, 0, err)
        a = np.asarray(Image.open(self.tmp / "a.png"))
        np.testing.assert_array_equal(a, np.asarray(Image.open(self.tmp / "b.png")))  # deterministic
        np.testing.assert_array_equal(a, bundle_out)  # the bundle and the CLI agree
        code, err = run_cli(*args, "-o", str(self.tmp / "w.png"), "--window", "16")
        self.assertEqual(code, 0, err)
        self.assertEqual(np.asarray(Image.open(self.tmp / "w.png")).shape, (32, 32, 3))
        code, err = run_cli(*args, "-o", str(self.tmp / "bad.png"), "--window", "10")  # not a multiple of 4
        self.assertEqual(code, 2)
        self.assertIn("multiple", err)
        # folder mode
        code, err = run_cli("--bundle", str(root), "--input-dir", str(data), "--output-dir", str(self.tmp / "cli"))
        self.assertEqual(code, 0, err)
        np.testing.assert_array_equal(np.asarray(Image.open(self.tmp / "cli" / "1001.png")),
                                      np.asarray(Image.open(out / "1001.png")))

        # missing weights: a clear message naming the file and how to get it
        (root / "models" / "fusion_head.pt").unlink()
        code, err = run_cli(*args, "-o", str(self.tmp / "c.png"), "--method", "dmfnet")
        self.assertEqual(code, 2)
        self.assertIn("fusion_head.pt", err)
        self.assertIn("train_stage2.json", err)
        code, err = run_cli(*args, "-o", str(self.tmp / "c.png"))  # no default method without weights
        self.assertEqual(code, 2)
        self.assertIn("--method laplacian", err)

    def test_volume_3d_bundle_keeps_geometry(self):
        root = self.tmp / "bundle"
        override = make_tiny_bundle(root, "volume_mmif_3d", 3)
        write_3d_data(self.tmp / "cases", cases=1)
        data = self.tmp / "data"  # DIR/{flair,t1c}/NAME.nii.gz
        for mod in ("flair", "t1c"):
            (data / mod).mkdir(parents=True)
            shutil.copy(self.tmp / "cases" / "case0" / f"{mod}.nii.gz", data / mod / "case0.nii.gz")
        out = self.tmp / "out"
        self._infer("volume_mmif_3d", bundle_root=str(root), dataset_dir=str(data), output_dir=str(out),
                    roi_size=[16, 16, 16], progress_bar=False, **override)
        fused = nib.load(str(out / "case0.nii.gz"))
        source = nib.load(str(data / "flair" / "case0.nii.gz"))
        self.assertEqual(fused.shape, source.shape)
        np.testing.assert_allclose(fused.affine, source.affine, atol=1e-5)
        values = np.asarray(fused.dataobj)
        self.assertTrue(0.0 <= values.min() and values.max() <= 1.0 and values.std() > 0)


if __name__ == "__main__":
    unittest.main()
