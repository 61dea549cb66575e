"""MLflow additions to MONAI's ``MLFlowHandler`` runs: artifacts logged by other handlers and the trained model
registered at the end of a training.

``python -m monai.bundle run ... --tracking mlflow`` attaches a ``monai.handlers.MLFlowHandler`` to the trainer and the
evaluator. The helpers here find that handler on an engine and use its client and open run, so anything they log
lands in the same run as the losses and metrics, and nothing happens when tracking is off.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ignite.engine import Engine, Events

__all__ = ["find_mlflow_handler", "log_artifact_to_run", "RegisterTrainedModel"]

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
