"""The UCB-DUAL paper's claims beside what a finished `iovsim compare` of its setting measured.

Reads the comparison folder (`<out>/<strategy>/seed-<s>/`, plan.json) and writes
tools/results/paper_comparison.md:

- the headline table (task `all`, mean [95 % CI], paired differences against HomoLoRA), as compare.md;
- the paper's two claims (arXiv 2508.09532: UCB-DUAL's round latency -24 %, accuracy +2.5 points
  against HomoLoRA and HetLoRA) beside the measured paired differences on the same seeds: latency as
  the per-seed relative change (x / baseline - 1) with its 95 % t-interval, accuracy in points;
- dwell_ucb against ucb_dual (its stated goal: fewer lost updates, lower mean round latency, accuracy
  within ucb_dual's interval or better), paired, with a verdict per goal that reads the intervals;
- final accuracy per task and strategy;
- where the round time goes, from every finished run's vehicles.csv: the participants' mean rank,
  the rounds that ended at the deadline, and the rank and transfer times of each round's slowest
  participant (a synchronous round lasts as long as it);
- the command, the runs' wall time and the machine;

and tools/results/paper_comparison.png: the paired differences against HomoLoRA (final accuracy, round
latency, energy) with their 95 % intervals, the figure `iovsim compare` draws as compare_paired.png.

    python tools/paper_comparison.py runs/compare-paper-5x30
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iovsim.runs.plan import RunSpec  # noqa: E402
from iovsim.runs.process import run_record  # noqa: E402
from iovsim.runs.stats import collect, mean_ci, paired, summarize  # noqa: E402
from iovsim.runs.table import fmt, headline, headline_note, md_table, with_ci  # noqa: E402
from iovsim.viz.plots import fig_seeds_bars  # noqa: E402
from iovsim.viz.report import bar_panels  # noqa: E402

CLAIMS = [("round latency [%]", "mean_round_latency_s", "relative", -24.0),
          ("final accuracy, mean of tasks [points]", "final_accuracy", "points", 2.5),
          ("accuracy over rounds, mean of tasks [points]", "mean_accuracy", "points", 2.5)]
DWELL_GOALS = [("lost updates", "lost_updates", "lower"), ("mean round latency [s]", "mean_round_latency_s", "lower"),
               ("final accuracy, mean of tasks", "final_accuracy", "not worse")]


def records_of(out: Path) -> list[dict]:
    """One record per planned run (status, wall time, ...), read from its folder as compare's tables do."""
    plan = json.loads((out / "plan.json").read_text())
    return [run_record(RunSpec(spec["group"], spec["seed"], out / key)) for key, spec in plan["runs"].items()]


def per_seed(values: pd.DataFrame, group: str, metric: str, task: str = "all") -> pd.Series:
    mine = values[(values.group == group) & (values.task == task) & (values.metric == metric)]
    return mine.set_index("seed")["value"].sort_index()


def on_common_seeds(values: pd.DataFrame, group: str, base: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """`group`'s and `base`'s values (task `all`) on the seeds both finished, in seed order."""
    x, b = per_seed(values, group, metric), per_seed(values, base, metric)
    seeds = x.index.intersection(b.index)
    return x[seeds].to_numpy(float), b[seeds].to_numpy(float)


def p_text(p: float) -> str:
    return f", p {p:.2g}" if np.isfinite(p) else ""


def claim_cell(values: pd.DataFrame, metric: str, kind: str, base: str) -> str:
    """UCB-DUAL minus `base` on the common seeds: relative in % or in accuracy points, with the 95 % CI."""
    x, b = on_common_seeds(values, "ucb_dual", base, metric)
    if len(x) == 0:
        return "-"
    if kind == "relative":
        m, _, lo, hi = mean_ci(100.0 * (x / b - 1.0))
        return with_ci(m, lo, hi, signed=True)
    m, lo, hi, p = paired(100.0 * x, 100.0 * b)
    return with_ci(m, lo, hi, signed=True) + p_text(p)


def dwell_rows(values: pd.DataFrame) -> list[list[str]]:
    rows = []
    for title, metric, want in DWELL_GOALS:
        x, b = on_common_seeds(values, "dwell_ucb", "ucb_dual", metric)
        if len(x) == 0:
            continue
        m, lo, hi, p = paired(x, b)
        bm, _, blo, bhi = mean_ci(b)
        xm = float(x.mean())
        if len(x) < 2:
            verdict = "not shown (one seed: no interval)"
        elif want == "lower":
            verdict = "met" if hi < 0 else ("not met: higher" if lo > 0 else "not shown (the interval includes 0)")
        else:
            verdict = "met" if xm >= blo else "not met: below ucb_dual's interval"
        rows.append([title, with_ci(bm, blo, bhi), fmt(xm), with_ci(m, lo, hi, signed=True) + p_text(p), verdict])
    return rows


ROUND_TIME = [("participants' rank", "rank"), ("rounds ending at the deadline", "deadline_rounds"),
              ("slowest: rank", "slowest_rank"), ("slowest: download [s]", "slowest_download_s"),
              ("slowest: compute [s]", "slowest_compute_s"), ("slowest: upload [s]", "slowest_upload_s"),
              ("migrated", "migrated"), ("early", "early")]


def round_time(run_dir: Path) -> dict:
    """One run's vehicles.csv: mean rank, rounds a `lost_deadline` held to the deadline, and the means over
    rounds of the slowest participant's rank and download, compute and upload times."""
    v = pd.read_csv(run_dir / "vehicles.csv")
    slow = v.loc[v.dropna(subset=["latency_s"]).groupby("round")["latency_s"].idxmax()]
    return {"rank": v["rank"].mean(), "deadline_rounds": v.loc[v.status == "lost_deadline", "round"].nunique(),
            "slowest_rank": slow["rank"].mean(), "slowest_download_s": slow.download_time_s.mean(),
            "slowest_compute_s": slow.compute_time_s.mean(), "slowest_upload_s": slow.upload_time_s.mean(),
            "migrated": int((v.status == "migrated").sum()), "early": int((v.status == "early").sum())}


def round_time_rows(recs: list[dict], groups: list[str]) -> list[list[str]]:
    """Per strategy, each ROUND_TIME column as mean [95 % CI] over its finished runs (those with a vehicles.csv)."""
    rows = []
    for g in groups:
        dirs = [Path(r["run_dir"]) for r in recs if r["group"] == g and r["status"] == "finished"]
        runs = [round_time(d) for d in dirs if (d / "vehicles.csv").is_file()]
        if runs:
            cells = []
            for _, key in ROUND_TIME:
                m, _, lo, hi = mean_ci(np.asarray([x[key] for x in runs], float))
                cells.append(with_ci(m, lo, hi))
            rows.append([g, str(len(runs)), *cells])
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), no GPU, Python {platform.python_version()}"


def report(out: Path) -> str:
    recs = records_of(out)
    groups = list(dict.fromkeys(r["group"] for r in recs))
    values = collect(recs)
    table = summarize(values, groups, "homolora")
    finished = [r for r in recs if r["status"] == "finished"]
    plan = json.loads((out / "plan.json").read_text())["identity"]
    sets = " ".join(f"--set {k}={v}" for k, v in plan["set"].items())
    walls = [r["wall_time_s"] for r in recs if r["wall_time_s"]]
    wall_h = sum(walls) / 3600 if walls else float("nan")
    seeds = sorted({r["seed"] for r in recs})
    config = Path(plan["config"])
    lines = ["# The UCB-DUAL paper's setting, over seeds", "",
             f"`iovsim compare {config.parent.name}/{config.name} --strategies {','.join(groups)} --baseline homolora "
             f"--seeds {len(seeds)} {sets} --jobs 2 --threads 1`: {len(finished)} of {len(recs)} runs finished "
             f"(seeds {', '.join(map(str, seeds))}); "
             + (f"{wall_h:.1f} h of run wall time in all (two runs at a time; the attempts recorded in the runs' "
                "process.json: one cut off by a session's end records none); " if np.isfinite(wall_h) else "")
             + f"{machine()}.", "", "## Across tasks", "", headline_note("homolora"), ""]
    header, rows = headline(table.rename(columns={"group": "strategy"}), "strategy", "homolora")
    lines += md_table(header, rows)
    lines += ["", "## The paper's claims beside the measurement", "",
              "UCB-DUAL minus the baseline on the same seeds: latency as the mean per-seed relative change "
              "(x / baseline − 1), accuracy in points; [95 % t-interval], p of the paired t-test.", ""]
    claim_rows = [[title, f"{claim:+g}",
                   claim_cell(values, metric, kind, "homolora"), claim_cell(values, metric, kind, "hetlora")]
                  for title, metric, kind, claim in CLAIMS]
    lines += md_table(["UCB-DUAL against", "paper", "measured vs HomoLoRA", "measured vs HetLoRA"], claim_rows)
    lines += ["", "## dwell_ucb against ucb_dual", "",
              "Goal: fewer lost updates and lower mean round latency than ucb_dual, accuracy within its 95 % "
              "interval or better. Paired on the same seeds.", ""]
    lines += md_table(["metric", "ucb_dual [95 % CI]", "dwell_ucb", "Δ dwell_ucb − ucb_dual [95 % CI]", "goal"],
                      dwell_rows(values))
    tasks = [t for t in dict.fromkeys(values["task"]) if t != "all"]
    lines += ["", "## Final accuracy per task", "", "mean [95 % CI] over seeds.", ""]
    task_rows = []
    for g in groups:
        cells = []
        for t in tasks:
            m, _, lo, hi = mean_ci(per_seed(values, g, "final_accuracy", t).to_numpy(float))
            cells.append(with_ci(m, lo, hi))
        task_rows.append([g, *cells])
    lines += md_table(["strategy", *tasks], task_rows)
    lines += ["", "## Where the round time goes", "",
              "From each finished run's vehicles.csv, mean [95 % CI] over runs: the participants' mean rank; the "
              "rounds that ended at the deadline (a `lost_deadline` update holds the round until then); each round's "
              "slowest participant (the round lasts as long as it): its rank and its download, compute and upload "
              "times, averaged over the rounds; updates delivered after a migration, or early.", ""]
    lines += md_table(["strategy", "runs", *(t for t, _ in ROUND_TIME)], round_time_rows(recs, groups)) + [""]
    return "\n".join(lines)


def paired_panels(out: Path) -> dict[str, list[tuple]]:
    """The figure's bars: per metric, (strategy, paired difference against HomoLoRA, 95 % CI low, high)."""
    recs = records_of(out)
    table = summarize(collect(recs), list(dict.fromkeys(r["group"] for r in recs)), "homolora")
    return bar_panels(table.to_dict("records"), diff=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the comparison's --out folder")
    ap.add_argument("--write", type=Path, default=REPO / "tools" / "results" / "paper_comparison.md")
    ap.add_argument("--figure", type=Path, default=REPO / "tools" / "results" / "paper_comparison.png")
    a = ap.parse_args()
    a.write.write_text(report(a.out))
    print(f"wrote {a.write}")
    if fig_seeds_bars(paired_panels(a.out), a.figure):
        print(f"wrote {a.figure}")


if __name__ == "__main__":
    main()
