"""Update bits of a run whose vehicles.csv predates its `update_bits` column, from the run's config.yaml.

A split participant's `bits_up` counts every step's activations and gradients besides its update, so
`engine.efficiency` cannot read an older split row's update from the row. Here it is recomputed the
way the engine writes it now (`engine.observe.update_bits`): the adapter at the row's rank on its
task's shape (`engine.build.task_shapes`: the config's model, the task's max_length and classes, the
transfer dtype), `costs.bits.adapter_bits`. That needs the model (its config and layers; loaded
once per process and model) and each task's data (its classes). Unsplit rows keep the efficiency
module's own rule (their `bits_up` was the update).
"""
from __future__ import annotations

import warnings
from pathlib import Path

from iovsim.engine.efficiency import lacks_update_bits

_MODELS: dict = {}


def _model(cfg):
    """The config's model on the CPU (only its shape is read), loaded once per (model, family, targets)."""
    from iovsim.engine.build import load_model

    fl = cfg.fl
    key = (fl.model, fl.family, tuple(fl.target_modules), fl.causal_eval)
    if key not in _MODELS:
        fl.device = "cpu"
        _MODELS[key] = load_model(cfg)
    return _MODELS[key]


def run_task_shapes(run_dir: Path) -> dict:
    """Task name -> the cost model's shape the run planned and charged with (`engine.build.task_shapes`)."""
    from iovsim.engine.build import load_task_named, task_shapes
    from iovsim.engine.rundir import run_config

    cfg = run_config(Path(run_dir))
    model = _model(cfg)
    tasks = [load_task_named(cfg, i) for i in range(len(cfg.fl.tasks))]
    return {tc.name: s for tc, s in zip(cfg.fl.tasks, task_shapes(cfg.fl, model, tasks))}


def with_update_bits(rows: list[dict], run_dir: Path) -> list[dict]:
    """`rows` (vehicles.csv of `run_dir`, as strings) with `update_bits` filled in where a split row lacks
    it; the same list when none does. When the config, model or data cannot be read, a warning says
    why and the rows stay as they are (the delivered metrics are then nan)."""
    if not any(lacks_update_bits(r) for r in rows):
        return rows
    from iovsim.costs.bits import adapter_bits
    from iovsim.engine.errors import RunError

    try:
        shapes = run_task_shapes(run_dir)
    except (ValueError, RunError, OSError, ImportError) as e:  # config, model, data (their errors are ValueErrors)
        warnings.warn(f"{run_dir}: split rows without update_bits, and their shapes cannot be recomputed from "
                      f"config.yaml ({type(e).__name__}: {e}); delivered_mb and delivered_bits_per_j are nan",
                      stacklevel=2)
        return rows
    return [{**r, "update_bits": float(adapter_bits(shapes[r["task"]], int(r["rank"])))} if lacks_update_bits(r) else r
            for r in rows]
