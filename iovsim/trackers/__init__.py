"""Experiment trackers: each round's metrics, the resolved config and the figures, written into local
stores inside the run folder (TensorBoard event files, an MLflow sqlite store); no server.

`open_trackers(names, run_dir, ...)` returns one object that fans each call out to the configured
trackers. The libraries are optional extras (`pip install 'iovsim[tensorboard]'`, `'iovsim[mlflow]'`);
`missing_extra(name)` says which one a configured tracker still needs, without importing it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

TRACKERS = ("tensorboard", "mlflow")
# The modules each tracker imports: a tracker is usable when all of them are installed.
_MODULES = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow", "sqlalchemy", "alembic")}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules (how tests hide a package)
        return False


def missing_extra(name: str) -> str | None:
    """The pip extra tracker `name` needs when one of its modules is not installed, else None."""
    return None if all(_installed(m) for m in _MODULES[name]) else name


class Trackers:
    """The configured trackers as one: every call goes to each of them."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    def log_round(self, round_index: int, rows: list[dict]) -> None:
        """metrics.csv's rows of one round (one per task)."""
        from iovsim.trackers.values import round_scalars

        scalars = round_scalars(rows)
        for t in self.trackers:
            t.log_round(round_index, scalars)

    def log_figures(self, pngs: list[Path], round_index: int) -> None:
        for t in self.trackers:
            t.log_figures(pngs, round_index)

    def close(self, finished: bool = True) -> None:
        """`finished=False` marks an interrupted run (MLflow status FAILED) so a resume can continue it."""
        for t in self.trackers:
            t.close(finished)

    def __enter__(self) -> "Trackers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_trackers(names: list[str], run_dir: Path, experiment_name: str, params: dict | None = None,
                  resume_round: int | None = None) -> Trackers:
    """The trackers `names` on their stores in `run_dir`. `params` (the resolved config as a nested
    mapping) is logged once, flattened; `resume_round` is the checkpoint a resumed run continues from,
    so that rounds logged after it by the interrupted run are not logged twice."""
    from iovsim.trackers.values import flatten

    flat = flatten(params) if params is not None else None
    out = []
    for name in names:
        if name == "tensorboard":
            from iovsim.trackers.tensorboard_store import TensorboardTracker

            out.append(TensorboardTracker(Path(run_dir), flat, resume_round))
        elif name == "mlflow":
            from iovsim.trackers.mlflow_store import MlflowTracker

            out.append(MlflowTracker(Path(run_dir), experiment_name, flat, resume_round))
        else:
            raise ValueError(f"unknown tracker {name!r}; expected one of {', '.join(TRACKERS)}")
    return Trackers(out)
