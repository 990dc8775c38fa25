"""The README's LLM run: sumo_scenarios/llm_default.yaml (SmolLM2-135M on A10KW) on this machine, measured.

Runs `iovsim run sumo_scenarios/llm_default.yaml --set fl.threads=1 --out runs/readme-llm` (more
`--set KEY=VALUE` are passed on), then reads that run folder and writes tools/results/llm_run.md:

- the machine and the load before and after (tools/readme_default_run.py's pieces);
- per round: accuracy per task ± its binomial s.e., participants, MB sent up and down (every bit
  sent, lost updates' partial uploads included), lost updates by cause (handover / vehicle left /
  deadline), the simulated round latency, and the wall time the round took on this CPU (between
  the run's config.yaml, written once the experiment is built, and each round's checkpoint);
- the figures tools/readme_default_run.py quotes (wall time, peak RSS, final accuracy, handovers,
  lost updates, dwell prediction error) and the traffic summary.json adds up;
- SmolLM2's adapter MB per LoRA rank (the config of tools/adapter_mb.py, checked against the GGUF)
  against the dwell windows of A10KW in this run: dwell.csv's time from a participant's round start
  to the end of its stay in that cell (a handover, or leaving the map; stays that outlast the run
  have no row), its median and 10th / 90th percentiles, and each rank's upload time at the run's
  mean uplink rate (all uplink bits over all upload time in vehicles.csv).

    python tools/readme_llm_run.py                        # run (about 5 min on 2 cores), then write
    python tools/readme_llm_run.py --from-run runs/X      # only write, from a finished run folder
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

import adapter_mb  # noqa: E402  (SmolLM2's config and targets, checked against the GGUF by tests/test_costs_llm.py)
import readme_default_run as default_run  # noqa: E402

CONFIG = "sumo_scenarios/llm_default.yaml"
SETS = ("fl.threads=1",)   # one torch thread: two on a shared 2-core CPU spin waiting for each other
DEFAULT_OUT = REPO / "runs" / "readme-llm"
DEFAULT_WRITE = REPO / "tools" / "results" / "llm_run.md"


def round_wall_s(run_dir: Path) -> dict[int, float]:
    """Wall time of each round: from config.yaml's (written after the build) or the previous round's
    checkpoint's mtime to this round's checkpoint's."""
    ckpts = sorted((run_dir / "checkpoints").glob("round_*/state.json"))
    t = (run_dir / "config.yaml").stat().st_mtime
    out = {}
    for p in ckpts:
        r, m = int(p.parent.name.split("_")[1]), p.stat().st_mtime
        out[r], t = m - t, m
    return out


def round_table(metrics: list[dict], wall: dict[int, float]) -> tuple[list[str], list[list[str]]]:
    """One row per round, tasks' rows of metrics.csv added up (the latency is the round's)."""
    tasks = list(dict.fromkeys(r["task"] for r in metrics))
    header = ["round", "SUMO time [s]", *(f"acc {t} ± s.e." for t in tasks), "participants", "MB up", "MB down",
              "lost (handover / left / deadline)", "round latency [s]", "wall time [s]"]
    rows = []
    for rnd in dict.fromkeys(int(r["round"]) for r in metrics):
        mine = [r for r in metrics if int(r["round"]) == rnd]
        by_task = {r["task"]: r for r in mine}

        def total(key, rows=mine):
            return sum(float(r[key] or 0) for r in rows)

        lost = f"{total('lost_updates'):.0f} ({total('lost_handover'):.0f} / {total('lost_left'):.0f} / " \
               f"{total('lost_deadline'):.0f})"
        rows.append([str(rnd), f"{float(mine[0]['time_s']):.0f}", *(default_run._acc_cell(by_task.get(t)) for t in tasks),
                     f"{total('participants'):.0f}", f"{total('uplink_bits') / 8e6:.1f}",
                     f"{total('downlink_bits') / 8e6:.1f}", lost, f"{float(mine[0]['round_latency_s']):.1f}",
                     f"{wall[rnd]:.0f}" if rnd in wall else "-"])
    return header, rows


def dwell_stats(run_dir: Path) -> dict:
    """Dwell windows of the run's participants (dwell.csv `actual_s`): count, median, 10th and 90th percentiles."""
    rows = default_run._read_csv(run_dir / "dwell.csv")
    s = np.array([float(r["actual_s"]) for r in rows], dtype=float)
    ends = {e: sum(r["end"] == e for r in rows) for e in dict.fromkeys(r["end"] for r in rows)}
    if not len(s):
        return {"n": 0, "ends": ends}
    p10, med, p90 = np.percentile(s, [10, 50, 90])
    return {"n": len(s), "median_s": float(med), "p10_s": float(p10), "p90_s": float(p90), "ends": ends}


def mean_uplink_bps(run_dir: Path) -> float:
    """All uplink bits over all upload time of the run's participations (vehicles.csv)."""
    rows = default_run._read_csv(run_dir / "vehicles.csv")
    bits = sum(float(r["bits_up"] or 0) for r in rows)
    secs = sum(float(r["upload_time_s"] or 0) for r in rows)
    return bits / secs if secs > 0 else float("nan")


def adapter_rows(rate_bps: float, dwell: dict) -> list[list[str]]:
    """SmolLM2's adapter per rank: MB fp32 / bf16, upload time at `rate_bps`, and against the median dwell."""
    from iovsim.costs import decoder_shape
    from iovsim.costs.bits import adapter_bits, with_transfer_dtype

    shape = decoder_shape(adapter_mb.SMOLLM2_CONFIG, adapter_mb.SMOLLM2_TARGETS, 1, 1, head_tokens=1)  # bits only
    out = []
    for r in adapter_mb.RANKS:
        bits = {d: float(adapter_bits(with_transfer_dtype(shape, d), r)) for d in ("fp32", "bf16")}
        up = {d: b / rate_bps for d, b in bits.items()}
        share = " / ".join(f"{up[d] / dwell['median_s']:.2f}" for d in bits) if dwell.get("median_s") else "-"
        out.append([str(r), f"{bits['fp32'] / 8e6:.2f}", f"{bits['bf16'] / 8e6:.2f}",
                    f"{up['fp32']:.1f} / {up['bf16']:.1f}", share])
    return out


def markdown(run_dir: Path, ctx: dict | None = None) -> str:
    ctx = dict(ctx or {})
    f = default_run.figures(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = default_run._read_csv(run_dir / "metrics.csv")
    header, rows = round_table(metrics, round_wall_s(run_dir))
    dwell, rate = dwell_stats(run_dir), mean_uplink_bps(run_dir)
    lines = ["# The LLM experiment, measured", ""]
    if ctx.get("command"):
        lines.append(f"Command: `{ctx.pop('command')}`  ")
    lines += default_run._context_lines(ctx, run_dir, f)
    walls = [float(r[-1]) for r in rows if r[-1] != "-"]
    lines += ["## Per round", "", *default_run.md_table(header, rows), "",
              "Accuracy ± its binomial standard error sqrt(p (1 - p) / n) over the n test prompts (likelihood "
              "choice among the label words); participants, MB and lost updates added up over the tasks; MB up "
              "counts every bit sent, a lost update's partial upload too. Round latency: simulated; wall time: "
              "this CPU's, between config.yaml (written once the experiment is built) and each round's "
              "checkpoint (training, aggregation, evaluation, SUMO's steps).", ""]
    if walls:
        lines += [f"A round costs {np.mean(walls):.0f} s of wall time on this CPU on average "
                  f"({min(walls):.0f} to {max(walls):.0f} s).", ""]
    t = summary.get("traffic", {})
    lines += ["## The figures the README quotes", "",
              f"- wall time: {f['wall_time_s']:.0f} s ({default_run.minutes(f['wall_time_s'])}; summary.json "
              "`wall_time_s`: SUMO, model and data, the rounds)",
              f"- peak RSS: {f['peak_rss_bytes'] / 2**30:.2f} GiB (summary.json `peak_rss_bytes`)"]
    if ctx.get("command_wall_s") is not None:
        lines.append(f"- the whole command: {ctx['command_wall_s']:.0f} s wall time, {ctx['child_cpu_s']:.0f} s of CPU "
                     "time (user + system, RUSAGE_CHILDREN: what the run costs whatever else the CPU runs)")
    lines.append(f"- traffic: {t.get('uplink_mb', 0):.1f} MB up, {t.get('downlink_mb', 0):.1f} MB down, "
                 f"{t.get('delivered_mb', 0):.1f} MB of updates delivered (summary.json `traffic`)")
    lines += default_run._sentence_lines(f)
    lines += ["", *adapter_section(dwell, rate)]
    return "\n".join(lines) + "\n"


def adapter_section(dwell: dict, rate_bps: float) -> list[str]:
    ends = ", ".join(f"{n} {e}" for e, n in dwell["ends"].items()) or "none"
    out = ["## Adapter MB per rank against A10KW's dwell windows", ""]
    if dwell["n"]:
        out.append(f"Dwell windows of this run's participants (dwell.csv, {dwell['n']} stays: {ends}): median "
                   f"{dwell['median_s']:.1f} s, 10th percentile {dwell['p10_s']:.1f} s, 90th percentile "
                   f"{dwell['p90_s']:.1f} s, from the round's start to the end of the stay in that cell. Only stays "
                   "that ended before the run did have a row, so a short run leans to short stays. Mean "
                   f"uplink rate: {rate_bps / 1e6:.2f} Mbit/s (all uplink bits over all upload time, vehicles.csv).")
    else:
        out.append("No participant's stay in a cell ended during this run (dwell.csv is empty).")
    out += ["", *default_run.md_table(["LoRA rank", "MB fp32", "MB bf16", "upload s at the mean rate (fp32 / bf16)",
                                        "upload / median dwell (fp32 / bf16)"], adapter_rows(rate_bps, dwell)),
            "", "SmolLM2-135M, LoRA on q, k, v, o, gate, up and down of its 30 layers: 305,280 values per unit of "
                "rank (tools/adapter_mb.py). A ratio above 1: the upload alone outlasts the median stay in a cell."]
    return out


def run_llm(out: Path, sets: list[str]) -> tuple[int, float, str]:
    """`iovsim run CONFIG --set ... --out OUT`; its exit status, wall time and the command as typed."""
    args = ["run", CONFIG, *(x for s in sets for x in ("--set", s)), "--out", str(out)]
    t0 = time.time()
    rc = subprocess.call([sys.executable, "-m", "iovsim.cli", *args], cwd=REPO)
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    return rc, time.time() - t0, "iovsim " + " ".join(args[:-1] + [str(shown)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder to create (default {DEFAULT_OUT})")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="more config overrides, after fl.threads=1")
    ap.add_argument("--from-run", type=Path, help="write from this finished run folder; do not run")
    ap.add_argument("--write", type=Path, default=DEFAULT_WRITE)
    a = ap.parse_args()
    ctx = {"machine": default_run.machine()}
    if a.from_run:
        run_dir = a.from_run
        if not default_run.finished(run_dir):
            return 2
    else:
        run_dir = a.out.resolve()
        ctx["load_before"] = os.getloadavg()
        rc, ctx["command_wall_s"], ctx["command"] = run_llm(run_dir, [*SETS, *a.sets])
        ctx["load_after"] = os.getloadavg()
        use = resource.getrusage(resource.RUSAGE_CHILDREN)
        ctx["child_peak_rss_bytes"], ctx["child_cpu_s"] = use.ru_maxrss * 1024, use.ru_utime + use.ru_stime
        if rc != 0:
            return rc  # iovsim has said why in one line
    a.write.parent.mkdir(parents=True, exist_ok=True)
    a.write.write_text(markdown(run_dir, ctx))
    print(f"wrote {a.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
