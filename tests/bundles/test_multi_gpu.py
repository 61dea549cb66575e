"""The multi-GPU overlays (``multi_gpu_train_stage{1,2}.json``) on CPU: 2 processes, ``gloo``, tiny data, 1 epoch.

Each process is one rank, as under ``torchrun`` (``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_*`` in the
environment), and runs ``ConfigWorkflow`` on ``['train_stageN.json', 'multi_gpu_train_stageN.json']`` for both stages
of both bundles. Every rank writes into its own ``ckpt_dir``/``output_dir`` so the test can see who wrote what:
checkpoints, panels and resumable state only on rank 0; different data shards per rank; identical weights on both
ranks after training (DDP averaged the gradients).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import torch
import torch.multiprocessing as mp

from tests.bundles._helpers import (
    TINY_SCHEDULER,
    TINY_UNET,
    free_ports,
    tiny_net,
    write_2d_data,
    write_3d_data,
    write_tiny_stage1,
)
from tests.utils import REPO_ROOT

WORLD_SIZE = 2
CASES = [
    ("brain_mmif_2d", 2, "train_stage1"),
    ("brain_mmif_2d", 2, "train_stage2"),
    ("volume_mmif_3d", 3, "train_stage1"),
    ("volume_mmif_3d", 3, "train_stage2"),
]


def _overrides(tmp: Path, bundle: str, spatial_dims: int, stage: str, rank: int) -> dict:
    data = tmp / f"data{spatial_dims}d"
    root = tmp / f"{bundle}_{stage}"
    if stage == "train_stage1":
        patch = [16] * spatial_dims
        override = {
            "dataset_dir": str(data),
            "network_def": tiny_net(spatial_dims),
            "batch_size": 2,
            "patch_size": patch,
            "val_patch_size": patch if spatial_dims == 3 else [32, 32],
            "val_num_images": 4,
            "cache_rate": 0.0,
        }
    else:
        roi = [32, 32] if spatial_dims == 2 else [16, 16, 16]
        override = {  # as stage2_overrides(), with the tiny Stage I weights written once by the parent process
            "dataset_dir": str(data),
            "unet_def": {**TINY_UNET, "spatial_dims": spatial_dims},
            "scheduler_def": TINY_SCHEDULER,
            "stage1_ckpt": str(root / "stage1_unet.pt"),
            "batch_size": 2,
            # one cached crop per image (the feature cache is on by default): each item is a different image, so the
            # ranks' shards hold different images (checked by _check_stage2)
            "crops_per_image": 1,
            "roi_size": roi,
            "val_roi_size": roi,
            "validate#additional_metrics#val_vif#scales": 1,
        }
    override.update(
        {
            "bundle_root": str(root),
            "ckpt_dir": str(root / f"models_rank{rank}"),
            "output_dir": str(root / f"eval_rank{rank}"),
            "train#trainer#max_epochs": 1,
            "val_interval": 1,
            "progress_bar": False,
        }
    )
    return override


def _worker(rank: int, tmp: str, ports: list[int]) -> None:
    """One rank: run the four merged configs in turn and write what it saw to ``tmp/result_<case>_rank<r>.json``."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    torch.set_num_threads(1)
    os.chdir(REPO_ROOT)
    tmp_ = Path(tmp)
    for (bundle, spatial_dims, stage), port in zip(CASES, ports):
        os.environ.update(
            RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        override = _overrides(tmp_, bundle, spatial_dims, stage, rank)
        configs = REPO_ROOT / "bundles" / bundle / "configs"
        wf = ConfigWorkflow(
            config_file=[str(configs / f"{stage}.json"), str(configs / f"multi_gpu_{stage}.json")],
            meta_file=str(configs / "metadata.json"),
            workflow_type="train",
            **override,
        )
        wf.initialize()
        seen: dict = {"indices": [], "names": []}
        trainer = wf.trainer

        def record_indices(engine, seen=seen):  # after MONAI's sampler.set_epoch (registered first)
            seen["indices"] = [int(i) for i in engine.data_loader.sampler]

        def record_names(engine, seen=seen):  # MONAI has decollated the batch into one dict per sample
            seen["names"] += [f"{d['task']}/{d['name']}" for d in engine.state.batch if "name" in d]

        trainer.add_event_handler(Events.EPOCH_STARTED, record_indices)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, record_names)
        wf.run()
        net = wf.parser.get_parsed_content("network_def")
        trained = net.head if stage == "train_stage2" else net
        result = {
            "world_size": torch.distributed.get_world_size(),
            "ddp": isinstance(wf.parser.get_parsed_content("network"), torch.nn.parallel.DistributedDataParallel),
            "dataset_len": len(wf.train_dataset),
            "epochs": trainer.state.epoch,
            "val_iterations": wf.parser.get_parsed_content("validate#evaluator").state.iteration,
            "checksum": float(sum(p.double().sum() for p in trained.parameters())),
            **seen,
        }
        wf.finalize()
        result["finalized"] = not torch.distributed.is_initialized()
        (tmp_ / f"result_{bundle}_{stage}_rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")


@unittest.skipUnless(torch.distributed.is_available() and torch.distributed.is_gloo_available(), "needs gloo")
class TestMultiGPUOverlays(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp())
        write_2d_data(cls.tmp / "data2d")
        write_3d_data(cls.tmp / "data3d", cases=4)
        for bundle, spatial_dims, stage in CASES:  # the tiny Stage I weights Stage II loads, written before the ranks
            if stage == "train_stage2":
                write_tiny_stage1(cls.tmp / f"{bundle}_{stage}" / "stage1_unet.pt", spatial_dims)
        mp.start_processes(_worker, args=(str(cls.tmp), free_ports(len(CASES))), nprocs=WORLD_SIZE, join=True,
                           start_method="spawn")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def _results(self, bundle: str, stage: str) -> list[dict]:
        return [json.loads((self.tmp / f"result_{bundle}_{stage}_rank{r}.json").read_text(encoding="utf-8")) for r in range(WORLD_SIZE)]

    def _check(self, bundle: str, stage: str, weights: str) -> tuple[dict, dict]:
        r0, r1 = self._results(bundle, stage)
        for r in (r0, r1):
            self.assertEqual(r["world_size"], WORLD_SIZE)
            self.assertTrue(r["ddp"])
            self.assertEqual(r["epochs"], 1)
            self.assertTrue(r["finalized"])
        # different shards that together cover the training set
        self.assertEqual(len(r0["indices"]), len(r1["indices"]))
        self.assertNotEqual(sorted(r0["indices"]), sorted(r1["indices"]))
        self.assertEqual(set(r0["indices"]) | set(r1["indices"]), set(range(r0["dataset_len"])))
        # DDP kept the replicas identical
        self.assertAlmostEqual(r0["checksum"], r1["checksum"], places=4)
        # files written by rank 0 only
        root = self.tmp / f"{bundle}_{stage}"
        self.assertTrue((root / "models_rank0" / weights).is_file())
        self.assertEqual(list(root.glob("models_rank1/*.pt")) + list(root.glob("eval_rank1/**/*.*")), [])
        checkpoints = list(root.glob(f"eval_rank0/{stage.replace('train_', '')}_checkpoints/*.pt"))
        self.assertTrue(checkpoints)
        return r0, r1

    def test_stage1_2d(self):
        r0, r1 = self._check("brain_mmif_2d", "train_stage1", "stage1_unet.pt")
        self.assertGreater(r0["val_iterations"], 0)  # Stage I validation (rank-local metrics) on rank 0 only
        self.assertEqual(r1["val_iterations"], 0)
        self.assertTrue(list((self.tmp / "brain_mmif_2d_train_stage1" / "eval_rank0" / "panels").glob("*.png")))

    def test_stage1_3d(self):
        r0, r1 = self._check("volume_mmif_3d", "train_stage1", "stage1_unet.pt")
        self.assertEqual(r1["val_iterations"], 0)

    def _check_stage2(self, bundle: str) -> tuple[dict, dict]:
        r0, r1 = self._check(bundle, "train_stage2", "fusion_head.pt")
        # Stage II validation metrics are gathered across ranks, so both ranks validate their shard
        self.assertGreater(r0["val_iterations"], 0)
        self.assertGreater(r1["val_iterations"], 0)
        # the samples themselves (task/name of each batch item) differ between ranks
        self.assertTrue(r0["names"] and r1["names"])
        self.assertNotEqual(set(r0["names"]), set(r1["names"]))
        return r0, r1

    def test_stage2_2d(self):
        self._check_stage2("brain_mmif_2d")

    def test_stage2_3d(self):
        self._check_stage2("volume_mmif_3d")


if __name__ == "__main__":
    unittest.main()
