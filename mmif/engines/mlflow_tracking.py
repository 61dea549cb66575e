"""MLflow additions to MONAI's ``MLFlowHandler`` runs: artifacts logged by other handlers, the executed config as
params, the trained model registered at the end of a training, and the run ended ``FAILED`` when the training fails.

``python -m monai.bundle run ... --tracking mlflow`` attaches a ``monai.handlers.MLFlowHandler`` to the trainer and the
evaluator. The helpers here find that handler on an engine and use its client and open run, so anything they log
lands in the same run as the losses and metrics, and nothing happens when tracking is off.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

__all__ = [
    "find_mlflow_handler",
    "flatten_config",
    "log_artifact_to_run",
    "LogConfigParams",
    "MarkRunFailed",
    "RegisterTrainedModel",
]

logger = logging.getLogger(__name__)


def find_mlflow_handler(engine: Engine):
    """The ``monai.handlers.MLFlowHandler`` attached to ``engine`` with an open run, or ``None``."""
    for handlers in getattr(engine, "_event_handlers", {}).values():
        for entry in handlers:
            owner = getattr(entry[0], "__self__", None)
            if type(owner).__name__ == "MLFlowHandler" and getattr(owner, "cur_run", None) is not None:
                return owner
    return None


def log_artifact_to_run(engine: Engine, path: str | os.PathLike, artifact_path: str | None = None) -> bool:
    """Log the file ``path`` to the open MLflow run of ``engine``'s ``MLFlowHandler`` (under ``artifact_path``).

    Returns whether it was logged: ``False`` without a tracked run, or (with a warning) when MLflow fails; tracking
    never stops a training.
    """
    handler = find_mlflow_handler(engine)
    if handler is None:
        return False
    try:
        handler.client.log_artifact(handler.cur_run.info.run_id, os.fspath(path), artifact_path=artifact_path)
    except Exception as e:  # tracking must never stop training
        logger.warning("could not log %s to MLflow: %s", path, e)
        return False
    return True


class RegisterTrainedModel:
    """At the end of a training, log the trained weights to the MLflow run and register them as a model version.

    Attach it to the trainer after the handler that writes the weights (a ``CheckpointSaver`` with ``save_final``,
    or the evaluator's key-metric saver, which has written the best weights by then) and before the
    ``MLFlowHandler`` that ``--tracking mlflow`` appends, so that the run is still open. On ``Events.COMPLETED`` it
    logs ``model_path`` to the run under ``artifact_path`` and creates a new version of the registered model
    ``registered_model_name`` (created on first use) whose source is that artifact folder; the run gets the tag
    ``mmif.registered_model = <name>/<version>``. Without a tracked run it does nothing; a missing weights file or a
    registry error is a warning, not a failed training.

    Args:
        model_path: the weights file the training wrote.
        registered_model_name: the name in the MLflow Model Registry, e.g. ``"brain_mmif_2d_fusion_head"``.
        artifact_path: the run's artifact folder for the weights.
        description: description of the new model version.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        registered_model_name: str,
        artifact_path: str = "model",
        description: str | None = None,
    ) -> None:
        if not str(registered_model_name).strip():
            raise ValueError(f"{type(self).__name__}: registered_model_name must not be empty.")
        self.model_path = Path(model_path)
        self.registered_model_name = str(registered_model_name)
        self.artifact_path = artifact_path
        self.description = description
        self.version: str | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        handler = find_mlflow_handler(engine)
        if handler is None:
            return
        if not self.model_path.is_file():
            logger.warning("%s: %s was not written; nothing to register", type(self).__name__, self.model_path)
            return
        client, run_id = handler.client, handler.cur_run.info.run_id
        try:
            client.log_artifact(run_id, str(self.model_path), artifact_path=self.artifact_path)
            if not client.search_registered_models(f"name = '{self.registered_model_name}'"):
                client.create_registered_model(self.registered_model_name)
            source = f"{client.get_run(run_id).info.artifact_uri}/{self.artifact_path}"
            version = client.create_model_version(
                self.registered_model_name, source, run_id=run_id, description=self.description
            )
            self.version = str(version.version)
            client.set_tag(run_id, "mmif.registered_model", f"{self.registered_model_name}/{self.version}")
            logger.info("registered %s as %s version %s", self.model_path, self.registered_model_name, self.version)
        except Exception as e:  # tracking must never fail a finished training
            logger.warning("%s: could not register %s in MLflow: %s", type(self).__name__, self.model_path, e)


def flatten_config(config: Any, prefix: str = "") -> dict[str, str]:
    """A bundle config as MLflow params: ``{"head_def.hidden_channels": "8", "roi_size": "[128, 128]", ...}``.

    Nested mappings become dotted keys (MLflow keys cannot hold ``#``); numbers, strings, booleans, ``None`` and lists
    of them become their JSON text; other lists are flattened by index. The ``imports`` list and ``_requires_`` /
    ``_disabled_`` entries are left out.
    """
    flat: dict[str, str] = {}
    if isinstance(config, Mapping):
        for key, value in config.items():
            if key in ("imports", "_requires_", "_disabled_") or str(key).startswith("_meta"):
                continue
            flat.update(flatten_config(value, f"{prefix}{key}."))
    elif isinstance(config, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in config):
        for i, value in enumerate(config):
            flat.update(flatten_config(value, f"{prefix}{i}."))
    else:
        flat[prefix.rstrip(".")] = json.dumps(config) if not isinstance(config, str) else config
    return flat


class LogConfigParams:
    """Log the executed bundle config as the params of the MLflow run (``--tracking mlflow``), and as an artifact.

    MONAI's tracking saves the merged, executed config as ``<output_dir>/config_<time>.json`` and names it to the
    ``MLFlowHandler`` as an artifact (``save_execute_config``); this handler also logs its entries as run params
    (:func:`flatten_config`), so runs can be compared and searched by their settings in the MLflow UI. When the
    handler's artifact path does not name an existing file (MONAI builds it by string concatenation, which breaks when
    ``output_dir`` is overridden with a plain path, e.g. ``--output_dir runs/stage1``), it takes the newest
    ``config_*.json`` in ``output_dir`` and logs that file as an artifact too. It acts once, at the first
    ``EPOCH_STARTED`` (the run is open by then, also when a training resumes), and does nothing without a tracked run.

    Args:
        output_dir: where the executed config is written (the bundle's ``output_dir``).
    """

    def __init__(self, output_dir: str | os.PathLike | None = None) -> None:
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.logged = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def _executed_config(self, handler) -> tuple[Path | None, bool]:
        """-> (the executed config file, whether the ``MLFlowHandler`` will log it itself)."""
        artifacts = handler.artifacts if isinstance(handler.artifacts, (list, tuple)) else [handler.artifacts]
        named = [Path(a) for a in artifacts if a and str(a).endswith(".json") and Path(a).is_file()]
        if named:
            return named[0], True
        found = sorted(self.output_dir.glob("config_*.json"), key=os.path.getmtime) if self.output_dir else []
        return (found[-1] if found else None), False

    def __call__(self, engine: Engine) -> None:
        if self.logged:
            return
        handler = find_mlflow_handler(engine)
        if handler is None:
            return
        from mlflow.entities import Param

        path, logged_by_monai = self._executed_config(handler)
        if path is None:
            return
        params = flatten_config(json.loads(path.read_text(encoding="utf-8")))
        run_id = handler.cur_run.info.run_id
        try:
            known = handler.client.get_run(run_id).data.params
            new = [Param(k, v[:6000]) for k, v in sorted(params.items()) if k not in known]
            for start in range(0, len(new), 100):  # MLflow takes at most 100 params a batch
                handler.client.log_batch(run_id, params=new[start : start + 100])
            if not logged_by_monai:
                handler.client.log_artifact(run_id, str(path))
        except Exception as e:  # tracking must never stop training
            logger.warning("%s: could not log the config %s: %s", type(self).__name__, path, e)
        self.logged = len(params)


class MarkRunFailed:
    """End the MLflow run ``FAILED`` (``KILLED`` on Ctrl-C) when the training stops on an exception, then re-raise it.

    MONAI's ``MLFlowHandler`` closes its run (``FINISHED``) on ``Events.COMPLETED`` only, so a training that fails would
    leave its run ``RUNNING`` for ever. This handler listens to ``Events.EXCEPTION_RAISED`` (which Ignite fires for any
    exception in the engine, also one raised by the validation evaluator) and ends the run through the handler's own
    ``close``, which also releases a SQLite store. Ignite stops at the first ``EXCEPTION_RAISED`` handler that raises
    (MONAI's ``StatsHandler`` logs and raises), so ``attach`` puts this one first, wherever it stands in the config's
    handler list. Without a tracked run it only re-raises.
    """

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EXCEPTION_RAISED, self)
        handlers = engine._event_handlers[Events.EXCEPTION_RAISED]
        handlers.insert(0, handlers.pop())  # Ignite runs them in order and stops at the first that raises

    def __call__(self, engine: Engine, e: BaseException) -> None:
        handler = find_mlflow_handler(engine)
        if handler is not None:
            from mlflow.entities import RunStatus

            status = RunStatus.KILLED if isinstance(e, KeyboardInterrupt) else RunStatus.FAILED
            try:
                handler.run_finish_status = RunStatus.to_string(status)
                handler.close()
            except Exception as err:  # the training's own error is the one to report
                logger.warning("%s: could not end the MLflow run: %s", type(self).__name__, err)
        raise e
