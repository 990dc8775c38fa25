"""The two wireless seed papers' comparisons from one finished (or partial) `iovsim compare` of
sumo_scenarios/wireless_papers.yaml.

Writes tools/results/wireless_comparison.md and two figures of paired differences with 95 % intervals:

- module switching (arXiv 2509.19306): lyapunov_switch against fixed modules (homolora@r2, homolora@r16),
  random selection (random_module) and max power (lyapunov_switch@maxpower), paired against lyapunov_switch;
- split federated LoRA (arXiv 2407.02924): split_lora against split_random (random scheduling, equal
  bandwidth) and unsplit homolora@r16, paired against split_lora;

each with accuracy, energy, both energy-efficiency figures (delivered update bits per joule; accuracy
points above chance per kJ), uplink / downlink MB, lost updates, edge compute time, and the final
accuracy per task. Only seeds every group of a section finished are paired. Delivered update bits are
each delivered update's adapter, split or not (`iovsim.engine.efficiency`): split training's per-step
activations and gradients are uplink traffic, not update. Run folders written before vehicles.csv
had `update_bits` get a split row's update from their config.yaml (`iovsim.runs.update_bits`, which
loads the model and the tasks' data once per run to read their shapes).

    python tools/wireless_comparison.py /work/cmp-runs/wireless
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
from tools.paper_comparison import machine, per_seed, records_of  # noqa: E402

SECTIONS = [
    ("Module switching (arXiv 2509.19306)", "lyapunov_switch",
     ["lyapunov_switch", "homolora@r2", "homolora@r16", "random_module", "lyapunov_switch@maxpower"], "switch"),
    ("Split federated LoRA (arXiv 2407.02924)", "split_lora", ["split_lora", "split_random", "homolora@r16"], "split"),
]
METRICS = [("final accuracy", "final_accuracy"), ("accuracy over rounds", "mean_accuracy"),
           ("device energy [J]", "energy_j"), ("delivered bits / J", "delivered_bits_per_j"),
           ("accuracy points above chance / kJ", "acc_points_per_kj"), ("uplink [MB]", "uplink_mb"),
           ("downlink [MB]", "downlink_mb"), ("lost updates", "lost_updates"), ("edge compute [s]", "edge_compute_s"),
           ("round latency [s]", "mean_round_latency_s")]
# SST-2 and QNLI, the tasks of wireless_papers.yaml, are binary: a head that learned nothing scores 0.5.
CHANCE = 0.5
FIGURE = [("Δ final accuracy", "final_accuracy"), ("Δ device energy [J]", "energy_j"),
          ("Δ delivered bits / J", "delivered_bits_per_j"), ("Δ lost updates", "lost_updates")]


def extra_values(rec: dict) -> list[tuple]:
    """Per finished run, what `runs.stats` does not give: the edge's compute seconds and accuracy points
    above chance per kJ of device energy (task `all`: mean of the tasks' points over the summed energy)."""
    d = Path(rec["run_dir"])
    m = pd.read_csv(d / "metrics.csv").sort_values("round", kind="stable")
    final = m.dropna(subset=["accuracy"]).groupby("task")["accuracy"].last()
    points = 100.0 * float(np.mean(final - CHANCE))
    energy_kj = m["energy_j"].sum() / 1e3
    edge = float(m["edge_compute_s"].sum()) if "edge_compute_s" in m else 0.0
    return [(rec["group"], rec["seed"], "all", "edge_compute_s", edge),
            (rec["group"], rec["seed"], "all", "acc_points_per_kj", points / energy_kj if energy_kj > 0 else np.nan)]


def values_of(recs: list[dict]) -> pd.DataFrame:
    base = collect(recs)
    extra = [row for r in recs if r["status"] == "finished" for row in extra_values(r)]
    return pd.concat([base, pd.DataFrame(extra, columns=base.columns)], ignore_index=True)


def common_seeds(values: pd.DataFrame, groups: list[str]) -> list[int]:
    sets = [set(values.loc[values.group == g, "seed"]) for g in groups]
    return sorted(set.intersection(*sets)) if sets else []


def section(title: str, base: str, groups: list[str], values: pd.DataFrame) -> tuple[list[str], pd.DataFrame | None]:
    present = [g for g in groups if g in set(values.group)]
    seeds = common_seeds(values, present) if base in present else []
    if len(present) < 2 or not seeds:
        return [f"## {title}", "", "Not run yet (no seed finished by every group).", ""], None
    mine = values[values.group.isin(present) & values.seed.isin(seeds)]
    table = summarize(mine, present, base)
    lines = [f"## {title}", "", f"Seeds {', '.join(map(str, seeds))} (every group finished them); task `all`; mean "
             f"[95 % CI]; Δ: paired difference against `{base}` [95 % CI], relative to its mean, p.", ""]
    rows = [[g, str(len(seeds)), *cells] for g, *cells in stat_rows(table, present, [m for _, m in METRICS], base)]
    lines += md_table(["strategy", "seeds", *(t for t, _ in METRICS)], rows)
    tasks = [t for t in dict.fromkeys(mine.task) if t != "all"]
    lines += ["", "Final accuracy per task, mean [95 % CI]:", ""]
    task_rows = []
    for g in present:
        cells = []
        for t in tasks:
            x = per_seed(mine, g, "final_accuracy", t).to_numpy(float)
            m, _, lo, hi = mean_ci(x)
            cells.append(with_ci(m, lo, hi))
        task_rows.append([g, *cells])
    lines += md_table(["strategy", *tasks], task_rows) + [""]
    return lines, table


def figure(table: pd.DataFrame, out: Path) -> Path | None:
    rows = table[(table.task == "all") & table.diff_mean.notna()]
    panels = {label: [(r.group, float(r.diff_mean), float(r.diff_ci95_low), float(r.diff_ci95_high))
                      for r in rows[rows.metric == metric].itertuples()] for label, metric in FIGURE}
    return fig_seeds_bars(panels, out)


def report(out: Path, fig_dir: Path) -> tuple[str, list[Path]]:
    recs = records_of(out)
    values = values_of(recs)
    plan = json.loads((out / "plan.json").read_text())["identity"]
    finished = [r for r in recs if r["status"] == "finished"]
    walls = [r["wall_time_s"] for r in finished if r["wall_time_s"]]
    config = Path(plan["config"])
    lines = ["# The wireless seed papers' comparisons", "",
             f"`iovsim compare {config.parent.name}/{config.name} --strategies {','.join(dict.fromkeys(r['group'] for r in recs))} "
             f"--baseline homolora@r16 --seeds N --jobs 2 --threads 1` (`tools/wireless_comparison.py` pairs each section "
             f"against its own baseline): {len(finished)} of {len(recs)} planned runs finished; "
             f"{sum(walls) / 3600:.1f} h of run wall time; {machine()}.", "",
             "Energy efficiency, two definitions: delivered update bits per joule of device energy (the bits of the "
             "updates that reached aggregation, each its adapter at its rank with its task's head, split or not: "
             "split training's per-step activations and gradients count in uplink MB, not here; over all the "
             "vehicles' energy; what the 2509.19306 abstract's "
             "'energy efficiency' of a transmission scheme can mean) and accuracy points above chance (50 % on these "
             "binary tasks) per kJ of device energy (learning per energy).", ""]
    figs = []
    for title, base, groups, key in SECTIONS:
        text, table = section(title, base, groups, values)
        lines += text
        if table is not None:
            f = figure(table, fig_dir / f"wireless_{key}.png")
            if f is not None:
                figs.append(f)
                lines += [f"![paired differences against {base}]({f.name})", ""]
    return "\n".join(lines), figs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the comparison's --out folder")
    ap.add_argument("--write", type=Path, default=REPO / "tools" / "results" / "wireless_comparison.md")
    a = ap.parse_args()
    text, figs = report(a.out, a.write.parent)
    a.write.write_text(text)
    print(f"wrote {a.write}" + "".join(f", {f}" for f in figs))


if __name__ == "__main__":
    main()
