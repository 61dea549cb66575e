"""``mmif bench fuse``: table, FLOP counting, peak memory, the learned model built for timing (no timing asserts)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import torch
from parameterized import parameterized

from mmif.bench import TARGET_OPTIONS, TARGETS, add_target_options
from mmif.bench_fuse import build_learned, count_flops, fuse_pair, main, parse_overrides, peak_memory
from mmif.cli import main as cli_main
from mmif.errors import InputError
from tests.utils import skip_unless_data

# a tiny Stage I preset (two levels) so that the whole learned model runs in milliseconds at 32x32
TINY_PRESET = {
    "network_def": {
        "_target_": "monai.networks.nets.DiffusionModelUNet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 1,
        "channels": [8, 8],
        "attention_levels": [False, False],
        "num_res_blocks": 1,
        "norm_num_groups": 8,
        "num_head_channels": 8,
    },
    "noise_scheduler": {"_target_": "monai.networks.schedulers.DDPMScheduler", "num_train_timesteps": 1000},
}
TINY_UNET_OVERRIDES = {"unet_def": TINY_PRESET["network_def"], "scheduler_def": TINY_PRESET["noise_scheduler"]}


def _rows(text: str) -> dict[str, list[float]]:
    """method -> [median, min, cpu] seconds of the printed table."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\s*(\S+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+\S+\s+\S+\s*$", line)
        if m:
            rows[m.group(1)] = [float(m.group(i)) for i in (2, 3, 4)]
    return rows


class TestFuseTarget(unittest.TestCase):
    def setUp(self):
        self.threads = torch.get_num_threads()
        self.tmp = tempfile.TemporaryDirectory()
        self.preset = Path(self.tmp.name) / "tiny.json"
        self.preset.write_text(json.dumps(TINY_PRESET), encoding="utf-8")

    def tearDown(self):
        torch.set_num_threads(self.threads)
        self.tmp.cleanup()

    def test_registered_with_options(self):
        self.assertIn("fuse", TARGETS)
        self.assertIn("fuse", TARGET_OPTIONS)
        parser = argparse.ArgumentParser()
        add_target_options(parser)
        add_target_options(parser)  # once per parser: no duplicate-option error
        args = parser.parse_args(["--preset", "p.json", "--timesteps", "5", "10", "--override", "a=1"])
        self.assertEqual((args.preset, args.timesteps, args.override), ("p.json", [5, 10], ["a=1"]))

    def test_cli_default_model(self):
        """``mmif bench fuse`` with the bundle's own config prints the learned rows beside every baseline."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cli_main(["bench", "fuse", "--size", "32", "--repeats", "1", "--warmup", "0", "--threads", "1"])
        self.assertEqual(rc, 0)
        text = out.getvalue()
        rows = _rows(text)
        for name in ("dmfnet", "extractor", "head", "laplacian", "average", "dwt"):
            self.assertIn(name, rows)
            self.assertGreater(rows[name][0], 0.0)
            self.assertGreaterEqual(rows[name][0], rows[name][1])  # median >= min
        config = Path(__file__).resolve().parents[1] / "bundles" / "brain_mmif_2d" / "configs" / "inference.json"
        timesteps = tuple(json.loads(config.read_text(encoding="utf-8"))["timesteps"])
        self.assertIn(f"timesteps {timesteps}", text)  # the bundle's own setting
        self.assertIn("weights", text)
        self.assertIn("the 0.15 s target is for 256x256", text)

    def test_options_preset_timesteps_methods(self):
        out = io.StringIO()
        argv = ["--size", "32", "--repeats", "2", "--warmup", "0", "--threads", "1", "--preset", str(self.preset),
                "--timesteps", "5", "--methods", "laplacian,average", "--override", "head_def#hidden_channels=8"]
        with contextlib.redirect_stdout(out):
            self.assertEqual(main(argv), 0)
        text = out.getvalue()
        self.assertIn("channels (8, 8)", text)
        self.assertIn("timesteps (5,)", text)
        self.assertIn("random weights", text)
        self.assertEqual(set(_rows(text)), {"dmfnet", "extractor", "head", "laplacian", "average"})
        self.assertRegex(text, r"dmfnet: [0-9.]+ s median, [0-9.]+ s min per 32x32 pair.*x laplacian")

    def test_knobs_and_bad_input(self):
        out = io.StringIO()
        argv = ["--size", "32", "--repeats", "1", "--warmup", "0", "--threads", "1", "--preset", str(self.preset),
                "--methods", "laplacian", "--bf16", "--channels-last", "--override", "memory_format=null"]
        with contextlib.redirect_stdout(out):
            self.assertEqual(main(argv), 0)
        self.assertIn("study knobs channels_last, bf16 extractor", out.getvalue())
        for bad in (["--override", "no-equals-sign"], ["--preset", str(Path(self.tmp.name) / "missing.json")]):
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                self.assertEqual(main(["--size", "32", "--repeats", "1", *bad]), 2)
            self.assertIn("error", err.getvalue())
            self.assertNotIn("Traceback", err.getvalue())


class TestPieces(unittest.TestCase):
    def test_count_flops_matches_a_convolution(self):
        conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        x = torch.rand(1, 2, 8, 8)
        # one multiply-add = 2 FLOPs per output element per kernel tap per input channel
        self.assertEqual(count_flops(lambda: conv(x)), 2 * (8 * 8) * 4 * (2 * 9))
        self.assertEqual(count_flops(lambda: x + 1), 0)  # element-wise work is not counted

    def test_learned_flops_split(self):
        learned = build_learned(overrides=TINY_UNET_OVERRIDES, timesteps=[5, 10], load_weights=False)
        image = learned.padded(torch.rand(1, 2, 32, 32))
        feats = learned.extract(image)
        ext, head = count_flops(lambda: learned.extract(image)), count_flops(lambda: learned.head(feats, image))
        total = count_flops(lambda: learned(image))
        self.assertGreater(ext, 0)
        self.assertGreater(head, 0)
        self.assertEqual(total, ext + head)
        # two timesteps run twice the images through the UNet of one timestep
        one = build_learned(overrides=TINY_UNET_OVERRIDES, timesteps=[5], load_weights=False)
        self.assertEqual(ext, 2 * count_flops(lambda: one.extract(image)))

    def test_peak_memory_sees_a_held_tensor(self):
        held = []
        size = 64 * 2**20
        rise, how = peak_memory(lambda: held.append(torch.ones(size // 4)))  # float32: 64 MiB, touched
        self.assertTrue(how)
        if rise is not None and "VmHWM" in how:
            self.assertGreaterEqual(rise, 0.9 * size)
            self.assertLess(rise, 4 * size)

    @parameterized.expand([(32,), (48,)])
    def test_fuse_pair(self, size):
        image, what = fuse_pair(size)
        self.assertEqual(tuple(image.shape), (1, 2, size, size))
        self.assertGreaterEqual(float(image.min()), 0.0)
        self.assertLessEqual(float(image.max()), 1.0)
        self.assertGreater(float(image.std()), 0.01)  # a real picture, not a constant
        self.assertTrue(what)

    def test_fuse_pair_phantom_without_data(self):
        with tempfile.TemporaryDirectory() as empty, mock.patch.dict(os.environ, {"MMIF_DATA": empty}):
            image, what = fuse_pair(32)
        self.assertIn("phantom", what)
        self.assertEqual(tuple(image.shape), (1, 2, 32, 32))
        self.assertFalse(torch.equal(image[:, 0], image[:, 1]))

    @skip_unless_data("harvard/MRI_CT/test")
    def test_fuse_pair_real(self):
        image, what = fuse_pair(256)
        self.assertIn("harvard MRI_CT/test", what)
        self.assertNotIn("resized", what)

    def test_parse_overrides(self):
        self.assertEqual(
            parse_overrides(["head_def#hidden_channels=8", "roi_size=null", "name=abc", "t=[1, 2]"]),
            {"head_def#hidden_channels": 8, "roi_size": None, "name": "abc", "t": [1, 2]},
        )
        self.assertEqual(parse_overrides(None), {})
        for bad in ("novalue", "=3"):
            with self.assertRaises(ValueError):
                parse_overrides([bad])

    def test_weights_loaded_when_present_and_fitting(self):
        with tempfile.TemporaryDirectory() as tmp:
            overrides = {**TINY_UNET_OVERRIDES, "ckpt_dir": tmp}
            trained = build_learned(overrides=overrides, timesteps=[5], seed=1)
            self.assertIn("no trained weights", trained.weights)
            torch.save(trained.model.extractor.unet.state_dict(), Path(tmp) / "stage1_unet.pt")
            trained.model.save_checkpoint(Path(tmp) / "fusion_head.pt")

            loaded = build_learned(overrides=overrides, timesteps=[5], seed=2)
            self.assertIn("trained weights", loaded.weights)
            for a, b in zip(trained.model.state_dict().values(), loaded.model.state_dict().values()):
                self.assertTrue(torch.equal(a, b))
            # another number of timesteps: the saved head no longer fits -> random weights, said so
            other = build_learned(overrides=overrides, timesteps=[5, 10], seed=2)
            self.assertIn("do not fit", other.weights)

    def test_knobs_keep_the_output(self):
        image = torch.rand(1, 2, 32, 32)
        contiguous = {**TINY_UNET_OVERRIDES, "memory_format": None}
        reference = build_learned(overrides=contiguous, timesteps=[5], load_weights=False)
        self.assertEqual(reference.memory_format, "contiguous")
        ref = reference(image)
        # the bundle config's own memory format (channels-last in 2D): the same fusion
        configured = build_learned(overrides=TINY_UNET_OVERRIDES, timesteps=[5], load_weights=False)
        self.assertEqual(configured.memory_format, "channels_last")
        torch.testing.assert_close(configured(image), ref, atol=1e-5, rtol=0)
        fast = build_learned(overrides=contiguous, timesteps=[5], load_weights=False)
        fast.apply_knobs(channels_last=True)
        torch.testing.assert_close(fast(image), ref, atol=1e-5, rtol=0)
        fast.apply_knobs(bf16=True)
        self.assertEqual(fast.knobs, ("channels_last", "bf16 extractor"))
        out = fast(image)
        self.assertEqual(out.dtype, torch.float32)
        # bfloat16 features: close, not equal; a decision-map head may flip a few near-tied pixels to the other source
        changed = (out - ref).abs() > 1e-3
        self.assertLess(float(changed.float().mean()), 0.1)
        self.assertLess(float((out - ref).abs().mean()), 0.02)

    def test_bad_preset(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "p.json"
            path.write_text(json.dumps({"network_def": TINY_PRESET["network_def"]}), encoding="utf-8")
            with self.assertRaises(InputError) as ctx:
                build_learned(preset=path)
            self.assertIn("noise_scheduler", str(ctx.exception))
            with self.assertRaises(InputError):
                build_learned(preset=Path(tmp) / "absent.json")


if __name__ == "__main__":
    unittest.main()
