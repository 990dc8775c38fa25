"""Statistics across seeds (scipy.stats, pandas): per group, task and metric the mean, standard deviation
and 95 % t-interval, and the paired difference against a baseline group on the same seeds.

Per run and task (from metrics.csv): `final_accuracy` (last round), `mean_accuracy` (over evaluated rounds),
`energy_j` and `lost_updates` (summed over rounds). Task `all`: the mean over tasks of the two
accuracies, `mean_round_latency_s` (mean over rounds), and energy and lost updates summed over tasks,
and from vehicles.csv the traffic (`uplink_mb`, `downlink_mb`, `delivered_mb`) and energy efficiency
(`device_energy_j`, `delivered_bits_per_j`: delivered update bits, not split training's activations;
see `iovsim.engine.efficiency`; a split run written before vehicles.csv had `update_bits` has them
recomputed from its config.yaml, `iovsim.runs.update_bits`).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from iovsim.engine.efficiency import traffic
from iovsim.runs.update_bits import with_update_bits

CONFIDENCE = 0.95
ALL_TASKS = "all"
STAT_COLUMNS = ["task", "metric", "n", "mean", "std", "ci95_low", "ci95_high",
                "diff_n", "diff_mean", "diff_ci95_low", "diff_ci95_high", "diff_rel_pct", "p_value"]


def run_values(run_dir: Path) -> pd.DataFrame:
    """One run's numbers as rows (task, metric, value)."""
    m = pd.read_csv(Path(run_dir) / "metrics.csv").sort_values(["round"], kind="stable")
    per_task = m.groupby("task", sort=False).agg(
        final_accuracy=("accuracy", "last"), mean_accuracy=("accuracy", "mean"),
        energy_j=("energy_j", "sum"), lost_updates=("lost_updates", "sum"))
    rounds = m.groupby("round")["round_latency_s"].max()
    overall = {"final_accuracy": per_task["final_accuracy"].mean(), "mean_accuracy": per_task["mean_accuracy"].mean(),
               "mean_round_latency_s": rounds.mean(), "energy_j": per_task["energy_j"].sum(),
               "lost_updates": per_task["lost_updates"].sum()}
    vehicles = Path(run_dir) / "vehicles.csv"
    if vehicles.exists():  # traffic and energy efficiency over all tasks (engine.efficiency)
        rows = pd.read_csv(vehicles, keep_default_na=False, dtype=str).to_dict("records")
        overall.update(traffic(with_update_bits(rows, run_dir)))  # an older split run: from its config
    rows = [(task, metric, float(v)) for task, r in per_task.iterrows() for metric, v in r.items()]
    rows += [(ALL_TASKS, metric, float(v)) for metric, v in overall.items()]
    return pd.DataFrame(rows, columns=["task", "metric", "value"])


def collect(records: list[dict]) -> pd.DataFrame:
    """Every finished run's values: columns group, seed, task, metric, value."""
    frames = [run_values(r["run_dir"]).assign(group=r["group"], seed=r["seed"])
              for r in records if r["status"] == "finished"]
    if not frames:
        return pd.DataFrame(columns=["group", "seed", "task", "metric", "value"])
    return pd.concat(frames, ignore_index=True)[["group", "seed", "task", "metric", "value"]]


def mean_ci(x: np.ndarray) -> tuple[float, float, float, float]:
    """mean, sample std, and the 95 % t-interval of the mean (a point when every value is equal)."""
    n = len(x)
    mean = float(np.mean(x)) if n else float("nan")
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sem = stats.sem(x)
    if sem == 0:
        return mean, 0.0, mean, mean
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem)
    return mean, float(np.std(x, ddof=1)), float(low), float(high)


def paired(x: np.ndarray, base: np.ndarray) -> tuple[float, float, float, float]:
    """Mean of x - base, its 95 % t-interval and the paired t-test's p-value (scipy.stats.ttest_rel)."""
    d = x - base
    if len(d) < 2:
        return (float(d.mean()) if len(d) else float("nan")), float("nan"), float("nan"), float("nan")
    with warnings.catch_warnings():  # equal differences: scipy warns, the answer is still defined
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel(x, base)
        ci = res.confidence_interval(CONFIDENCE)
    low, high = (float(ci.low), float(ci.high)) if np.std(d) > 0 else (float(d.mean()), float(d.mean()))
    return float(d.mean()), low, high, float(res.pvalue)


def summarize(values: pd.DataFrame, groups: list[str], baseline: str | None) -> pd.DataFrame:
    """One row per (task, metric, group) in that order, groups in the given order; `group` first."""
    out = []
    keys = values[["task", "metric"]].drop_duplicates()
    keys = keys.assign(_all=keys["task"] == ALL_TASKS).sort_values("_all", kind="stable")
    for task, metric in zip(keys["task"], keys["metric"]):
        mine = values[(values["task"] == task) & (values["metric"] == metric)]
        by_group = {g: mine[mine["group"] == g].set_index("seed")["value"].sort_index() for g in groups}
        base = by_group.get(baseline) if baseline else None
        for g in groups:
            x = by_group[g]
            row = {"group": g, "task": task, "metric": metric, "n": len(x)}
            row["mean"], row["std"], row["ci95_low"], row["ci95_high"] = mean_ci(x.to_numpy(float))
            if base is not None and g != baseline:
                seeds = x.index.intersection(base.index)
                row["diff_n"] = len(seeds)
                (row["diff_mean"], row["diff_ci95_low"], row["diff_ci95_high"],
                 row["p_value"]) = paired(x[seeds].to_numpy(float), base[seeds].to_numpy(float))
                # relative to the baseline on the same seeds (its mean over all its seeds may differ)
                base_mean = float(base[seeds].mean()) if len(seeds) else float("nan")
                row["diff_rel_pct"] = 100 * row["diff_mean"] / base_mean if base_mean else float("nan")
            out.append(row)
    return pd.DataFrame(out, columns=["group", *STAT_COLUMNS])


def round_bands(records: list[dict]) -> dict[str, dict[str, tuple]]:
    """Accuracy per round across seeds: {group: {task: (rounds, mean, ci_low, ci_high)}} (finished runs)."""
    frames = [pd.read_csv(Path(r["run_dir"]) / "metrics.csv").assign(group=r["group"], seed=r["seed"])
              for r in records if r["status"] == "finished"]
    if not frames:
        return {}
    m = pd.concat(frames, ignore_index=True).dropna(subset=["accuracy"])  # rounds not evaluated (fl.eval_every)
    out: dict[str, dict[str, tuple]] = {}
    for (g, task), rows in m.groupby(["group", "task"], sort=False):
        per_round = rows.groupby("round")["accuracy"]
        rounds = np.asarray(sorted(per_round.groups), dtype=float)
        cis = [mean_ci(per_round.get_group(r).to_numpy(float)) for r in sorted(per_round.groups)]
        mean = np.asarray([c[0] for c in cis])
        low = np.asarray([c[2] if np.isfinite(c[2]) else c[0] for c in cis])  # one seed: no band
        high = np.asarray([c[3] if np.isfinite(c[3]) else c[0] for c in cis])
        out.setdefault(g, {})[task] = (rounds, mean, low, high)
    return out
