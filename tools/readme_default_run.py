"""The README's "What the default experiment does" figures, measured on this machine.

Runs the default experiment exactly as `make run` does (`iovsim run` with no config, i.e.
sumo_scenarios/default.yaml and its seed), into a run folder, then reads that folder and writes
tools/results/default_run.md:

- the machine (CPU model, cores, torch version and the CPU capability torch uses, AVX-512 or not) and
  the load average before and after, since other processes on the machine slow the run down;
- the per-round table as `iovsim run` prints it (round, SUMO time, accuracy per task ± its binomial
  standard error, participants, lost updates, round latency, energy), from metrics.csv;
- the figures the README's sentences quote: wall time and peak RSS (summary.json: the run process's
  own peak, ru_maxrss), distinct vehicles that trained, handovers and ping-pongs, lost updates by
  cause, the dwell prediction's median absolute error, the tweet task's participants per round.

    python tools/readme_default_run.py                      # run (a few minutes), then write
    python tools/readme_default_run.py --from-run runs/X    # only write, from a finished run folder
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "runs" / "readme-default"
DEFAULT_WRITE = REPO / "tools" / "results" / "default_run.md"


def machine() -> dict:
    """CPU model, cores, torch version, the CPU capability torch dispatches to, AVX-512 in the CPU flags."""
    import torch

    cpu, flags = None, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu is None:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line
    except OSError:  # not Linux: platform's name, and no flags to read
        pass
    return {"cpu": cpu or platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "avx512": "avx512f" in flags.split(),
            "python": platform.python_version()}


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def round_table(metrics: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The per-round table as `iovsim run` prints it (engine.logs.table_row), from metrics.csv's
    one-row-per-task rows: participants, lost updates and energy summed over tasks; the round latency
    is the round's (the same in every task's row)."""
    tasks = list(dict.fromkeys(r["task"] for r in metrics))
    header = ["round", "SUMO time [s]", *(f"acc {t} ± s.e." for t in tasks), "participants", "lost updates",
              "round latency [s]", "energy [J]"]
    rows = []
    for rnd in dict.fromkeys(int(r["round"]) for r in metrics):
        mine = {r["task"]: r for r in metrics if int(r["round"]) == rnd}
        first = next(iter(mine.values()))
        accs = [_acc_cell(mine.get(t)) for t in tasks]
        rows.append([str(rnd), f"{float(first['time_s']):.0f}", *accs,
                     str(sum(int(r["participants"]) for r in mine.values())),
                     str(sum(int(r["lost_updates"]) for r in mine.values())),
                     f"{float(first['round_latency_s']):.1f}",
                     f"{sum(float(r['energy_j']) for r in mine.values()):.0f}"])
    return header, rows


def _acc_cell(row: dict | None) -> str:
    if row is None or row["accuracy"] == "":
        return "-"  # fl.eval_every: a round that was not evaluated
    se = row.get("accuracy_se", "")
    return f"{float(row['accuracy']):.3f}" + (f" ± {float(se):.3f}" if se not in ("", "nan") else "")


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def figures(run_dir: Path) -> dict:
    """The numbers the README's sentences quote, from summary.json, metrics.csv and vehicles.csv."""
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = _read_csv(run_dir / "metrics.csv")
    vehicles = _read_csv(run_dir / "vehicles.csv")
    dwell = summary.get("dwell_prediction", {})
    first_task = metrics[0]["task"] if metrics else ""
    per_round = [int(r["participants"]) for r in metrics if r["task"] == first_task]
    lost = {k: sum(int(r[k]) for r in metrics) for k in ("lost_updates", "lost_handover", "lost_left", "lost_deadline")}
    return {"seed": summary.get("seed"), "rounds": summary.get("rounds"), "finished": summary.get("finished"),
            "wall_time_s": float(summary["wall_time_s"]), "peak_rss_bytes": int(summary["peak_rss_bytes"]),
            "final_accuracy": summary.get("final_accuracy", {}), "distinct_vehicles": len({r["vehicle"] for r in vehicles}),
            "participations": len(vehicles), "enrolled": summary.get("fl_vehicles_enrolled"),
            "handovers": summary.get("handovers"), "ping_pongs": summary.get("ping_pong_handovers"), **lost,
            "dwell_median_abs_error_s": dwell.get("median_abs_error_s"), "dwell_count": dwell.get("count"),
            "dwell_finite": dwell.get("finite_predictions"), "first_task": first_task,
            "first_task_participants": (min(per_round), max(per_round)) if per_round else (0, 0)}


def minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def markdown(run_dir: Path, context: dict | None = None) -> str:
    """tools/results/default_run.md's text for a finished run folder. `context` (optional): machine
    (machine()), command, load_before / load_after (os.getloadavg()), command_wall_s, child_peak_rss_bytes."""
    ctx = context or {}
    f = figures(run_dir)
    header, rows = round_table(_read_csv(run_dir / "metrics.csv"))
    peak = f["peak_rss_bytes"]
    lines = ["# The default experiment, measured", ""]
    lines += _context_lines(ctx, run_dir, f)
    lines += ["## Per round", "", *md_table(header, rows), "",
              "Accuracy ± its binomial standard error sqrt(p (1 - p) / n) over the n test examples "
              "(metrics.csv `accuracy_se`); participants, lost updates and energy summed over the tasks.", "",
              "## The figures the README quotes", "",
              f"- wall time: {f['wall_time_s']:.0f} s ({minutes(f['wall_time_s'])}; summary.json `wall_time_s`, "
              "from building the experiment (SUMO, model, data) to writing summary.json)",
              f"- peak RSS: {peak / 2**30:.2f} GiB = {peak / 1e9:.2f} GB (summary.json `peak_rss_bytes`, "
              "the run process's own peak, ru_maxrss; SUMO runs inside it through libsumo)"]
    if ctx.get("command_wall_s") is not None:
        lines.append(f"- the whole command: {ctx['command_wall_s']:.0f} s wall time (with Python start-up, imports "
                     f"and the report's figures), peak RSS {ctx['child_peak_rss_bytes'] / 2**30:.2f} GiB "
                     "(RUSAGE_CHILDREN of this tool)")
    lines += _sentence_lines(f)
    return "\n".join(lines) + "\n"


def _context_lines(ctx: dict, run_dir: Path, f: dict) -> list[str]:
    out = []
    if ctx.get("command"):
        out.append(f"Command: `{ctx['command']}`, which runs `{ctx['runs']}`: `make run`'s command (no config, "
                   "so sumo_scenarios/default.yaml) plus --out")
    out.append(f"Run: seed {f['seed']}, {f['rounds']} rounds, finished: {f['finished']}")
    m = ctx.get("machine")
    if m:
        out.append(f"Machine: {m['cores']} cores, {m['cpu']}, AVX-512 {'yes' if m['avx512'] else 'no'} "
                   f"(torch uses {m['torch_cpu_capability']}), torch {m['torch']}, Python {m['python']}, no GPU")
    if ctx.get("load_before"):
        b, a = ctx["load_before"], ctx.get("load_after") or ("-",) * 3
        out.append("Load average (1, 5, 15 min) before the run: " + ", ".join(f"{x:.2f}" for x in b)
                   + "; after: " + ", ".join(f"{x:.2f}" if isinstance(x, float) else x for x in a)
                   + " (the machine is shared: a load above the run's own threads slows it down)")
    return [line + "  " for line in out[:-1]] + out[-1:] + [""]


def _sentence_lines(f: dict) -> list[str]:
    acc = ", ".join(f"{k} {v:.3f}" for k, v in f["final_accuracy"].items())
    lo, hi = f["first_task_participants"]
    mae = f["dwell_median_abs_error_s"]
    return [f"- final accuracy: {acc}",
            f"- vehicles that trained: {f['distinct_vehicles']} distinct ({f['participations']} participations; "
            f"{f['enrolled']} federated vehicles enrolled over the run)",
            f"- handovers: {f['handovers']} ({f['ping_pongs']} ping-pongs)",
            f"- lost updates: {f['lost_updates']} (to a handover {f['lost_handover']}, vehicle left "
            f"{f['lost_left']}, deadline {f['lost_deadline']})",
            f"- dwell prediction: median absolute error {'-' if mae is None else f'{mae:.1f}'} s over the "
            f"{f['dwell_finite']} dwells that ended in a handover and had a finite prediction (of "
            f"{f['dwell_count']} that ended in a handover; summary.json `dwell_prediction`)",
            f"- {f['first_task']} participants per round: {lo} to {hi}"]


def run_default(out: Path) -> tuple[int, float]:
    """`iovsim run --out OUT` with no config, as `make run` runs it (plus --out); returns its exit
    status and wall time."""
    t0 = time.time()
    rc = subprocess.call([sys.executable, "-m", "iovsim.cli", "run", "--out", str(out)], cwd=REPO)
    return rc, time.time() - t0


def finished(run_dir: Path) -> bool:
    """Whether `run_dir` is a finished run folder; says why not in one line."""
    if (run_dir / "summary.json").is_file():
        return True
    print(f"{run_dir}: not a finished run folder (summary.json missing)", file=sys.stderr)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder to create (default {DEFAULT_OUT})")
    ap.add_argument("--from-run", type=Path, help="write from this finished run folder; do not run")
    ap.add_argument("--write", type=Path, default=DEFAULT_WRITE)
    a = ap.parse_args()
    ctx = {"machine": machine()}
    if a.from_run:
        run_dir = a.from_run
        if not finished(run_dir):
            return 2
    else:
        run_dir = a.out.resolve()
        ctx["load_before"] = os.getloadavg()
        rc, ctx["command_wall_s"] = run_default(run_dir)
        ctx["load_after"] = os.getloadavg()
        ctx["child_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if rc != 0:
            return rc  # iovsim has said why in one line
        shown = run_dir.relative_to(REPO) if run_dir.is_relative_to(REPO) else run_dir
        extra = "" if run_dir == DEFAULT_OUT else f" --out {shown}"
        ctx["command"], ctx["runs"] = f"python tools/readme_default_run.py{extra}", f"iovsim run --out {shown}"
    a.write.parent.mkdir(parents=True, exist_ok=True)
    a.write.write_text(markdown(run_dir, ctx))
    print(f"wrote {a.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
