"""MLflow tracking of an evaluation run.

The default store is embedded: a SQLite file ``<output_dir>/mlflow.db`` with artifacts in ``<output_dir>/mlartifacts``
(MLflow 3 no longer accepts the old ``./mlruns`` folder store). ``MLFLOW_TRACKING_URI`` in the environment, or an
explicit ``tracking_uri``, selects another store or a tracking server. The run ends ``FINISHED``, or ``FAILED`` when the
evaluation raised.

Everything goes through :class:`mlflow.tracking.MlflowClient` on an explicit URI, so no global MLflow state (active run,
tracking URI) is touched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["MLflowTracker", "default_tracking_uri", "resolve_tracking_uri", "DEFAULT_EXPERIMENT"]

DEFAULT_EXPERIMENT = "mmif-evaluate"
_MAX_PARAM_CHARS = 6000


def default_tracking_uri(output_dir: str | os.PathLike) -> str:
    """The embedded store for ``output_dir``: ``sqlite:///<absolute output_dir>/mlflow.db``."""
    return "sqlite:///" + (Path(output_dir).resolve() / "mlflow.db").as_posix()


def resolve_tracking_uri(tracking_uri: str | None, output_dir: str | os.PathLike) -> str:
    """``tracking_uri`` if given, else ``$MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri`."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(output_dir)


def _local_artifact_root(uri: str) -> str | None:
    """Artifacts beside a local SQLite database (``<db dir>/mlartifacts``); ``None`` for servers and other stores."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    db = uri[len("sqlite:///") :]
    if not db or db == ":memory:":
        return None
    db_path = Path(db).resolve()  # "sqlite:////abs/path" -> "/abs/path"; "sqlite:///rel" -> "rel"
    return (db_path.parent / "mlartifacts").as_uri()


class MLflowTracker:
    """One MLflow run, used as a context manager.

    Example::

        with MLflowTracker("sqlite:///out/mlflow.db", "mmif-evaluate", run_name="baselines") as tracker:
            tracker.log_params({"methods": "average,dwt"})
            tracker.log_metrics({"MRI_CT/average/EN": 4.2})
            tracker.log_artifacts(["out/metrics.csv"])

    Args:
        tracking_uri: the MLflow tracking URI.
        experiment: experiment name; created when missing (local SQLite stores keep artifacts beside the database).
        run_name: the run's name (``None``: MLflow picks one).
        tags: run tags.

    Attributes:
        run_id: set on entering the context.
    """

    def __init__(
        self, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if not experiment:
            raise ValueError("MLflowTracker: experiment name must not be empty")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self._client = None

    def __enter__(self) -> MLflowTracker:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        exp = self._client.get_experiment_by_name(self.experiment)
        if exp is None:
            exp_id = self._client.create_experiment(
                self.experiment, artifact_location=_local_artifact_root(self.tracking_uri)
            )
        else:
            exp_id = exp.experiment_id
        run = self._client.create_run(exp_id, run_name=self.run_name, tags=self.tags)
        self.run_id = run.info.run_id
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._client is not None and self.run_id is not None:
            self._client.set_terminated(self.run_id, "FAILED" if exc_type is not None else "FINISHED")

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log parameters (values turned into strings, cut to MLflow's length limit)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:_MAX_PARAM_CHARS]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metrics (one value each, at ``step``)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def log_artifacts(self, paths: Iterable[str | os.PathLike], artifact_path: str | None = None) -> None:
        """Upload files to the run's artifact store."""
        for p in paths:
            self._client.log_artifact(self.run_id, os.fspath(p), artifact_path=artifact_path)
