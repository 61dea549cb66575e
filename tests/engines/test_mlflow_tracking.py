"""``RegisterTrainedModel``, ``MarkRunFailed`` and the MLflow helpers on a bare Ignite engine with MONAI's
``MLFlowHandler``."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import torch
from ignite.engine import Engine
from monai.handlers import MLFlowHandler, StatsHandler

from mmif.engines.mlflow_tracking import (
    MarkRunFailed,
    RegisterTrainedModel,
    find_mlflow_handler,
    flatten_config,
    log_artifact_to_run,
)


def _engine() -> Engine:
    return Engine(lambda engine, batch: {"loss": torch.tensor(0.5)})


class TestRegisterTrainedModel(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)
        self.uri = f"sqlite:///{self.tmp}/mlflow.db"

    def tearDown(self):
        self._tmp.cleanup()

    def _tracked(self, register: RegisterTrainedModel) -> tuple[Engine, MLFlowHandler]:
        engine = _engine()
        register.attach(engine)  # before the MLflow handler, as in the bundle configs
        tracker = MLFlowHandler(tracking_uri=self.uri, experiment_name="unit", close_on_complete=True,
                                output_transform=lambda out: out["loss"])
        tracker.attach(engine)
        return engine, tracker

    def test_registers_each_training_as_a_new_version(self):
        weights = self.tmp / "head.pt"
        torch.save({"w": torch.ones(2)}, weights)
        versions = []
        for _ in range(2):
            register = RegisterTrainedModel(weights, "unit_model")
            engine, tracker = self._tracked(register)
            engine.run([0, 1], max_epochs=1)
            versions.append(register.version)
            self.assertIsNone(find_mlflow_handler(engine))  # the run was closed after registering
        self.assertEqual(versions, ["1", "2"])
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        runs = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
        self.assertEqual(sorted(r.info.status for r in runs), ["FINISHED", "FINISHED"])
        self.assertEqual(sorted(r.data.tags["mmif.registered_model"] for r in runs), ["unit_model/1", "unit_model/2"])

    def test_without_tracking_or_weights_nothing_breaks(self):
        register = RegisterTrainedModel(self.tmp / "never_written.pt", "unit_model")
        engine = _engine()
        register.attach(engine)
        engine.run([0], max_epochs=1)  # no MLflow handler: a no-op
        self.assertIsNone(register.version)
        self.assertFalse(log_artifact_to_run(engine, self.tmp / "never_written.pt"))
        engine, _ = self._tracked(register)
        with self.assertLogs("mmif.engines.mlflow_tracking", level="WARNING") as logs:
            engine.run([0], max_epochs=1)
        self.assertIn("never_written.pt was not written", "\n".join(logs.output))
        self.assertIsNone(register.version)

    def test_needs_a_name(self):
        with self.assertRaises(ValueError):
            RegisterTrainedModel(self.tmp / "x.pt", " ")


class TestMarkRunFailed(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.uri = f"sqlite:///{self._tmp.name}/mlflow.db"

    def tearDown(self):
        self._tmp.cleanup()

    def _run_failing(self, error: BaseException, tracked: bool = True) -> list[str]:
        """Train with ``error`` raised at iteration 2, a ``StatsHandler`` (which raises first) attached before
        ``MarkRunFailed``; returns the statuses of the experiment's runs."""

        def step(engine, batch):
            if engine.state.iteration == 2:
                raise error
            return {"loss": torch.tensor(0.5)}

        engine = Engine(step)
        StatsHandler(name="unit_stats", output_transform=lambda out: None).attach(engine)
        MarkRunFailed().attach(engine)
        if tracked:
            MLFlowHandler(tracking_uri=self.uri, experiment_name="failing", close_on_complete=True,
                          output_transform=lambda out: out["loss"]).attach(engine)
        with self.assertRaises(type(error)) as raised:
            engine.run([0, 1, 2], max_epochs=1)
        self.assertIs(raised.exception, error)  # the training's own error, not one from the tracking
        if not tracked:
            return []
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        return [r.info.status for r in client.search_runs([client.get_experiment_by_name("failing").experiment_id])]

    def test_a_failed_training_ends_its_run_failed(self):
        self.assertEqual(self._run_failing(ValueError("bad batch")), ["FAILED"])

    def test_an_interrupted_training_ends_its_run_killed(self):
        self.assertEqual(self._run_failing(KeyboardInterrupt()), ["KILLED"])

    def test_without_tracking_the_error_still_propagates(self):
        self._run_failing(RuntimeError("no tracking"), tracked=False)


class TestFlattenConfig(unittest.TestCase):
    def test_dotted_keys_and_json_values(self):
        config = {
            "imports": ["$import torch"],
            "epochs": 4,
            "roi_size": [128, 128],
            "head_def": {"_target_": "Net", "prior": None, "correction": True, "_requires_": "@x"},
            "train": {"handlers": [{"_target_": "StatsHandler"}, {"_target_": "X", "_disabled_": "$True"}]},
        }
        self.assertEqual(
            flatten_config(config),
            {
                "epochs": "4",
                "roi_size": "[128, 128]",
                "head_def._target_": "Net",
                "head_def.prior": "null",
                "head_def.correction": "true",
                "train.handlers.0._target_": "StatsHandler",
                "train.handlers.1._target_": "X",
            },
        )


if __name__ == "__main__":
    unittest.main()
