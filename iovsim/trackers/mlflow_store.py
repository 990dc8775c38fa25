"""MLflow: metrics per round, the config as parameters, figures as artifacts, in a sqlite store in
RUN_DIR/mlflow.db with the artifacts under RUN_DIR/mlartifacts/ (no tracking server)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

DB = "mlflow.db"
ARTIFACTS = "mlartifacts"
RUN_TAG = "iovsim.run_folder"
_BATCH = 100  # MLflow takes at most 100 params or 1000 metrics per log_batch call


def tracking_uri(run_dir: Path) -> str:
    """The store of a run folder, for `MlflowClient(tracking_uri=...)` or `mlflow ui --backend-store-uri`."""
    return f"sqlite:///{(Path(run_dir) / DB).resolve()}"


class MlflowTracker:
    """One MLflow run per run folder, in experiment `experiment_name` of the folder's own store.
    Artifacts are stored by absolute path: figures logged after a run folder was moved go to its old place."""

    def __init__(self, run_dir: Path, experiment_name: str, params: dict | None, resume_round: int | None):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # local stores only: nothing leaves the machine
        from mlflow.tracking import MlflowClient

        for noisy in ("alembic", "mlflow.store.db.utils"):  # schema creation logs at INFO on every new store
            logging.getLogger(noisy).setLevel(logging.WARNING)
        run_dir = Path(run_dir).resolve()
        self.client = MlflowClient(tracking_uri=tracking_uri(run_dir))
        exp = self.client.get_experiment_by_name(experiment_name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(
            experiment_name, artifact_location=(run_dir / ARTIFACTS).as_uri())
        # The store lives in the run folder, so its one run is this folder's (also after a copy or a move).
        runs = self.client.search_runs([exp_id], max_results=1)
        if runs:
            self.run_id = runs[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(exp_id, run_name=run_dir.name, tags={RUN_TAG: run_dir.name}).info.run_id
        self.logged_through = self._last_step() if resume_round is not None else 0
        if params:
            self._log_params(params)

    def _last_step(self) -> int:
        """The last round already in the store (an interrupted run may have logged past its checkpoint)."""
        keys = self.client.get_run(self.run_id).data.metrics
        steps = [m.step for k in keys for m in self.client.get_metric_history(self.run_id, k)]
        return max(steps, default=0)

    def _log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + _BATCH])

    def log_round(self, round_index: int, scalars: dict[str, float]) -> None:
        # A resumed run replays the rounds after its checkpoint to the same values (tested); those the
        # interrupted run had already logged stay as they are instead of appearing twice.
        if round_index <= self.logged_through:
            return
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now_ms, round_index) for k, v in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_figures(self, pngs: list[Path], round_index: int) -> None:
        for p in pngs:
            self.client.log_artifact(self.run_id, str(p), artifact_path="figures")

    def close(self, finished: bool = True) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if finished else "FAILED")
