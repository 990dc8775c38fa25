"""The paper comparison on the real San Francisco fleet beside A10KW: the same causal LM, strategies and
seeds on two roads, from two finished (or partial) `iovsim compare` folders.

Writes tools/results/fleet_comparison.md and fleet_comparison.png:

- per road, the headline table (task `all`: final accuracy, accuracy over rounds, round latency, device
  energy, lost updates, uplink MB; mean [95 % CI] over seeds, paired differences against HomoLoRA);
- per road and strategy, what the logs say the road did to the rounds (`road_and_radio`): handovers
  per participant job, the share of jobs that crossed a handover (delivered by migration or lost to
  it), the participants' dwell windows (dwell.csv: how long each stayed on its RSU from the round's
  start), the upload time beside the dwell, and lost updates by cause;
- the figure: paired differences against HomoLoRA on both roads, with their 95 % intervals.

Only seeds every strategy of a road finished are paired.

    python tools/fleet_comparison.py --fleet /work/cmp-runs/fleet5/sf_fleet_llm --a10kw /work/cmp-runs/fleet5/llm_default
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iovsim.runs.stats import collect, mean_ci, summarize  # noqa: E402
from iovsim.runs.table import md_table, stat_rows, with_ci  # noqa: E402
from iovsim.viz.plots import fig_seeds_bars  # noqa: E402
from tools.paper_comparison import machine, records_of  # noqa: E402

BASE = "homolora"
HEADLINE = [("final accuracy", "final_accuracy"), ("accuracy over rounds", "mean_accuracy"),
            ("round latency [s]", "mean_round_latency_s"), ("device energy [J]", "energy_j"),
            ("lost updates", "lost_updates"), ("uplink [MB]", "uplink_mb")]
ROAD = [("jobs", "jobs"), ("handovers / job", "handovers_per_job"), ("jobs through a handover", "handover_share"),
        ("delivered by migration", "migrated"),
        ("dwell median [s]", "dwell_median_s"), ("dwell p10 [s]", "dwell_p10_s"), ("upload mean [s]", "upload_mean_s"),
        ("lost: handover", "lost_handover"), ("lost: left", "lost_left"), ("lost: deadline", "lost_deadline")]
FIGURE = [("Δ final accuracy", "final_accuracy"), ("Δ round latency [s]", "mean_round_latency_s"),
          ("Δ lost updates", "lost_updates"), ("Δ device energy [J]", "energy_j")]


def road_and_radio(run_dir: Path) -> dict:
    """One run's logs: participant jobs (vehicles.csv rows), the handovers.csv rows of a participant in its
    own round per job, the share of jobs the engine marked `migrated` or `lost_handover` and the count of
    the former (their state went over the backhaul to the new RSU), the dwell.csv
    windows (median and 10th percentile of `actual_s`), the mean upload time of the jobs that uploaded, and
    metrics.csv's lost updates by cause (summed over tasks and rounds)."""
    v = pd.read_csv(run_dir / "vehicles.csv")
    h = pd.read_csv(run_dir / "handovers.csv")
    m = pd.read_csv(run_dir / "metrics.csv")
    d = pd.read_csv(run_dir / "dwell.csv")
    jobs = len(v)
    keys = set(zip(v["round"], v["vehicle"]))
    in_job = sum((r, veh) in keys for r, veh in zip(h["round"], h["vehicle"]))
    through = int(v["status"].isin(["migrated", "lost_handover"]).sum())
    dwell = d["actual_s"].to_numpy(float)
    dwell = dwell[np.isfinite(dwell)]
    up = v["upload_time_s"].to_numpy(float)
    up = up[np.isfinite(up) & (up > 0)]
    return {"jobs": float(jobs), "handovers_per_job": in_job / jobs if jobs else np.nan,
            "handover_share": through / jobs if jobs else np.nan, "migrated": float((v["status"] == "migrated").sum()),
            "dwell_median_s": float(np.median(dwell)) if dwell.size else np.nan,
            "dwell_p10_s": float(np.percentile(dwell, 10)) if dwell.size else np.nan,
            "upload_mean_s": float(up.mean()) if up.size else np.nan,
            **{k: float(m[k].sum()) for k in ("lost_handover", "lost_left", "lost_deadline")}}


def paired_seeds(recs: list[dict], groups: list[str]) -> list[int]:
    done = [{r["seed"] for r in recs if r["group"] == g and r["status"] == "finished"} for g in groups]
    return sorted(set.intersection(*done)) if done else []


def road_rows(recs: list[dict], groups: list[str], seeds: list[int]) -> list[list[str]]:
    rows = []
    for g in groups:
        runs = [road_and_radio(Path(r["run_dir"])) for r in recs
                if r["group"] == g and r["status"] == "finished" and r["seed"] in seeds]
        if runs:
            cells = [with_ci(*np.take(mean_ci(np.asarray([x[k] for x in runs], float)), [0, 2, 3]))
                     for _, k in ROAD]
            rows.append([g, *cells])
    return rows


def road_section(name: str, out: Path) -> tuple[list[str], pd.DataFrame | None]:
    recs = records_of(out)
    groups = list(dict.fromkeys(r["group"] for r in recs))
    seeds = paired_seeds(recs, groups)
    plan = json.loads((out / "plan.json").read_text())["identity"]
    sets = " ".join(f"--set {k}={v}" for k, v in plan["set"].items())
    finished = [r for r in recs if r["status"] == "finished"]
    walls = [r["wall_time_s"] for r in finished if r["wall_time_s"]]
    config = Path(plan["config"])
    lines = [f"## {name}", "", f"`iovsim compare {config.parent.name}/{config.name} --strategies {','.join(groups)} "
             f"--baseline {BASE} --seeds N {sets} --jobs 2 --threads 1`: {len(finished)} of {len(recs)} planned runs "
             f"finished ({sum(walls) / 3600:.1f} h of run wall time); paired seeds: "
             f"{', '.join(map(str, seeds)) or 'none yet'}.", ""]
    if not seeds or BASE not in groups:
        return lines + ["No seed finished by every strategy yet.", ""], None
    values = collect([r for r in finished if r["seed"] in seeds])
    table = summarize(values, groups, BASE)
    lines += ["Task `all`, mean [95 % CI] over seeds; Δ: paired difference against HomoLoRA [95 % CI], relative "
              "to its mean, p.", ""]
    lines += md_table(["strategy", *(t for t, _ in HEADLINE)], stat_rows(table, groups, [m for _, m in HEADLINE], BASE))
    lines += ["", "What the road did to the rounds, from each run's logs (mean [95 % CI] over seeds): participant "
              "jobs; handovers of a participant during its own round, per job; the share of jobs that crossed a "
              "handover (delivered by migration or lost to it) and the count delivered by migration (the job's "
              "`transfer_mode` in vehicles.csv: a strategy may choose it); the participants' dwell on their RSU from the round's start "
              "(dwell.csv `actual_s`); the mean upload time; lost updates by cause.", ""]
    lines += md_table(["strategy", *(t for t, _ in ROAD)], road_rows(recs, groups, seeds)) + [""]
    return lines, table


def figure(tables: dict[str, pd.DataFrame], out: Path) -> Path | None:
    panels = {}
    for label, metric in FIGURE:
        panels[label] = [(f"{road}: {r.group}", float(r.diff_mean), float(r.diff_ci95_low), float(r.diff_ci95_high))
                         for road, t in tables.items()
                         for r in t[(t.task == "all") & (t.metric == metric) & t.diff_mean.notna()].itertuples()]
    return fig_seeds_bars(panels, out)


def report(roads: dict[str, Path], fig: Path) -> tuple[str, Path | None]:
    lines = ["# The paper comparison on the real San Francisco fleet, beside A10KW", "",
             "The same causal LM (SmolLM2-135M, LoRA on all seven projections; sumo_scenarios/llm_default.yaml's "
             "fl and strategy sections), strategies and seeds on two roads: 403 Cabspotting cabs at their real "
             f"times under 732 RSUs 200 m apart, and the A10KW motorway interchange under 6 RSUs 500 m apart. "
             f"{machine()}.", ""]
    tables = {}
    for name, out in roads.items():
        text, table = road_section(name, out)
        lines += text
        if table is not None:
            tables[name] = table
    made = figure(tables, fig) if tables else None
    if made is not None:
        lines += [f"![paired differences against HomoLoRA on both roads]({made.name})", ""]
    return "\n".join(lines), made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fleet", type=Path, required=True, help="the --out folder of the sf_fleet_llm.yaml comparison")
    ap.add_argument("--a10kw", type=Path, required=True, help="the --out folder of the llm_default.yaml comparison")
    ap.add_argument("--write", type=Path, default=REPO / "tools" / "results" / "fleet_comparison.md")
    a = ap.parse_args()
    for p in (a.fleet, a.a10kw):
        if not (p / "plan.json").is_file():
            sys.exit(print(f"error: {p}: expected an `iovsim compare` --out folder with plan.json", file=sys.stderr) or 2)
    text, fig = report({"San Francisco fleet": a.fleet, "A10KW": a.a10kw}, a.write.with_suffix(".png"))
    a.write.write_text(text)
    print(f"wrote {a.write}" + (f", {fig}" if fig else ""))


if __name__ == "__main__":
    main()
