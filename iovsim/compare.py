"""`iovsim compare`: several strategies over several seeds, each (strategy, seed) one run in its own process.

Common random numbers come from the design: every random stream is derived from the one seed
and from what it serves (SUMO, channel, partition, init, per-vehicle training), never from a
shared global state, so within a seed changing the strategy changes nothing else. Across seeds,
iovsim.runs.stats gives means, intervals and paired differences against a baseline strategy.
"""
from __future__ import annotations

import csv
import json
import logging
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


MIN_COMPARE_TEST_SAMPLES = 1000
log = logging.getLogger("iovsim.compare")


def run_compare(config_path: Path, sets: dict, strategies: list[str], seeds: str | None = None,
                out_dir: Path | None = None, baseline: str | None = None, jobs: int = 1, threads: int | None = None,
                backend: str = "local", address: str | None = None, memory_bytes: int | None = None,
                progress=None) -> tuple[Path, list[dict]]:
    """Every (strategy, seed) run in `<out>/<strategy>/seed-<s>/`; compare.csv/.md, runs.csv, report.html.

    `seeds`: a count from the config's seed on, or a comma-separated list. Finished runs in out_dir
    are kept, interrupted ones resumed. Returns out_dir and one record per run (status, error, memory).
    """
    from iovsim.config import ConfigError, load_config
    from iovsim.runs.driver import run_groups
    from iovsim.strategies import create

    cfg = load_config(config_path, sets)
    for tc in cfg.fl.tasks:  # comparisons need a test set whose standard error is below the effects
        if tc.test_samples < MIN_COMPARE_TEST_SAMPLES:
            log.warning("%s: fl.tasks %s: %d test samples give a standard error up to %.1f points; comparisons "
                        "should use >= %d", config_path, tc.name, tc.test_samples, 50 / tc.test_samples ** 0.5,
                        MIN_COMPARE_TEST_SAMPLES)
    groups = []
    for name in strategies:  # fail before anything runs
        params = strategy_params(cfg, name)
        try:
            create(name, params, base_dir=cfg.base_dir)
        except ValueError as e:
            raise ConfigError("--strategies", name, str(e)) from None
        groups.append((name, {"strategy.name": name, "strategy.params": params}))
    return run_groups("compare", "strategy", config_path, cfg, sets, groups, seeds, out_dir, baseline, jobs=jobs,
                      threads=threads, backend=backend, address=address, memory_bytes=memory_bytes,
                      progress=progress)
