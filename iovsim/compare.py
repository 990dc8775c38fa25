"""`iovsim compare`: several strategies on identical mobility, channel randomness, data split and init.

Common random numbers come from the design: every random stream is derived from the one seed
and from what it serves (SUMO, channel, partition, init, per-vehicle training), never from a
shared global state, so changing the strategy changes nothing else.
"""
from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path

import numpy as np

COLUMNS = ["strategy", "task", "final_accuracy", "mean_accuracy", "mean_round_latency_s", "mean_compute_time_s",
           "mean_upload_time_s", "mean_wait_time_s", "energy_j", "energy_budget_j", "budget_violation_j",
           "lost_updates", "participants", "handovers", "peak_rss_mb", "wall_time_s"]


def summarize_run(run_dir: Path, strategy: str) -> list[dict]:
    """One row per task from a run folder's metrics.csv and summary.json."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((run_dir / "summary.json").read_text())
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        col = lambda k: np.asarray([float(r[k]) for r in mine if r[k] not in ("", None)])  # noqa: E731
        budget = float(mine[0]["energy_budget_j"] or 0)
        energy = col("energy_j")
        violation = float(np.maximum(energy - budget, 0).sum()) if budget > 0 else 0.0
        out.append({
            "strategy": strategy, "task": task, "final_accuracy": col("accuracy")[-1],
            "mean_accuracy": col("accuracy").mean(), "mean_round_latency_s": col("round_latency_s").mean(),
            "mean_compute_time_s": col("compute_time_s").mean(), "mean_upload_time_s": col("upload_time_s").mean(),
            "mean_wait_time_s": col("wait_time_s").mean(), "energy_j": energy.sum(),
            "energy_budget_j": budget * len(mine) if budget > 0 else "", "budget_violation_j": violation,
            "lost_updates": int(col("lost_updates").sum()), "participants": int(col("participants").sum()),
            "handovers": int(col("handovers").sum()), "peak_rss_mb": summary.get("peak_rss_bytes", 0) / 2**20,
            "wall_time_s": summary.get("wall_time_s", 0.0)})
    return out


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def write_table(rows: list[dict], out_dir: Path) -> tuple[Path, Path]:
    csv_path = out_dir / "compare.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(v) for k, v in r.items()})
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    md_path = out_dir / "compare.md"
    md_path.write_text("\n".join(md) + "\n")
    return csv_path, md_path


def strategy_params(cfg, name: str) -> dict:
    """Parameters of strategy `name` in a comparison: `per_strategy[name]`, else `params` if it is the config's strategy."""
    if name in cfg.strategy.per_strategy:
        return dict(cfg.strategy.per_strategy[name])
    return dict(cfg.strategy.params) if name == cfg.strategy.name else {}


def run_compare(cfg, strategies: list[str], out_dir: Path | None = None, progress=None) -> Path:
    """Run each strategy with the same config and seed; write compare.csv/.md and a report. Returns out_dir."""
    from iovsim.experiment import Experiment, RunError
    from iovsim.strategies import create

    from iovsim.config import ConfigError

    for name in strategies:  # fail before anything runs
        params = strategy_params(cfg, name)
        try:
            create(name, params, base_dir=cfg.base_dir)
        except ValueError as e:
            raise ConfigError("--strategies", name, str(e)) from None
    base = Path(cfg.output.runs_dir)
    out_dir = out_dir or base / f"{cfg.name}-compare-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(out_dir)
    if (out_dir / "compare.csv").exists():
        raise RunError(f"{out_dir}: a comparison already exists there")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, run_dirs = [], {}
    for name in strategies:
        c = copy.deepcopy(cfg)
        c.strategy.name, c.strategy.params = name, strategy_params(cfg, name)
        c.output.report = False
        run_dir = out_dir / name
        if progress is not None:
            progress.message(f"strategy {name}: {run_dir}")
        Experiment(c, run_dir, progress=progress).run()
        run_dirs[name] = run_dir
        rows += summarize_run(run_dir, name)
        write_table(rows, out_dir)  # after each strategy, so a long comparison keeps what it has
    csv_path, _ = write_table(rows, out_dir)
    if cfg.output.report:
        try:
            from iovsim.viz.report import write_compare_report, write_report

            for d in run_dirs.values():
                write_report(d)
            write_compare_report(out_dir, run_dirs, csv_path)
        except Exception as e:  # noqa: BLE001 - figures must not lose the table
            if progress is not None:
                progress.message(f"compare report not written: {e}")
    return out_dir
