"""Where a run of the UCB-DUAL paper comparison spends its time, per phase: tools/results/bench_paper_run.md.

One `iovsim run` of sumo_scenarios/ucb_dual_paper.yaml per strategy, exactly as `iovsim compare` starts
it (the strategy's `per_strategy` parameters, `fl.threads`), shortened to `--rounds` rounds evaluated
every `--eval-every`, each in its own process with the phases of tools/bench_memory.py (SUMO start,
model load, task data, tokenization, SUMO steps, training, aggregation, evaluation, report) and finer
ones (the bandit probe inside training, checkpoints, CSV logs, the build's other parts, the rest of a
round) timed. Phases nest; each second is charged to the innermost open phase, the rest to "between
phases", so the rows add up to the run. CPU seconds (`time.process_time`, the process's own) are the
measure: the machine is shared and wall time depends on the load, CPU time much less.

Then the 20-run comparison of the README (30 rounds, `fl.eval_every=10`, 5 seeds x 4 strategies,
`--jobs 2 --threads 1`) is projected from the per-run, per-round and per-evaluation parts (see the report).
With `--before REV` every run is also measured with the iovsim of REV (a detached worktree), alternately.

    nice python tools/bench_paper_run.py [--strategies ucb_dual homolora] [--rounds 4] [--eval-every 2]
                                         [--threads 1] [--before REV]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from bench_memory import before_tree, measure, measured_cli, run_phases

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "sumo_scenarios" / "ucb_dual_paper.yaml"
DEFAULT_OUT = REPO / "tools" / "results" / "bench_paper_run.md"
PAPER = {"rounds": 30, "eval_every": 10, "runs": 20, "jobs": 2}   # the README's comparison


# ---------------------------------------------------------------- inside a measured process
def finer_phases() -> list[tuple]:
    """Phases inside or beside bench_memory's: where "between phases" and a round's rest go."""
    import iovsim.engine.build as build
    import iovsim.engine.rundir as rundir
    import iovsim.experiment as experiment
    from iovsim.fl.batched import BatchedExecutor

    E = experiment.Experiment
    return [(build, "build_mobility", "net load, SUMO session"), (build, "available_tasks", "optional-task check"),
            (build, "build_learning", "build: shards, executor, strategy, init"),
            (E, "_start", "run start: config, RSU files, first step"), (E, "summary", "summary.json"),
            (E, "play_round", "round: plan, feedback, strategy update"),
            (BatchedExecutor, "_probe_scores", "round: training, probe"),
            (rundir, "save_checkpoint", "round: checkpoint"), (E, "_log", "round: logs (CSV)")]


def child(args: list[str]) -> dict:
    res = measured_cli(["run", *args], run_phases() + finer_phases())
    run_dir = Path(args[args.index("--out") + 1])
    res["run_bytes"] = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file())
    res["checkpoint_bytes"] = sum(f.stat().st_size for f in (run_dir / "checkpoints").rglob("*") if f.is_file())
    return res


# ---------------------------------------------------------------- the parent
def run_args(strategy: str, a, out: Path) -> list[str]:
    """What `iovsim compare` gives the run of `strategy` (iovsim.runs.process.child_argv), shortened."""
    from iovsim.compare import base_name, strategy_params
    from iovsim.config import load_config

    params = strategy_params(load_config(CONFIG), strategy)
    sets = {"fl.rounds": a.rounds, "fl.eval_every": a.eval_every, "strategy.name": base_name(strategy),
            "strategy.params": params, "fl.threads": a.threads}
    args = [str(CONFIG)]
    for key, value in sets.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args + ["--out", str(out), "--quiet"]


def classify(name: str) -> str:
    """once per run, per round, or per evaluation."""
    if name == "round: evaluation":
        return "eval"
    return "round" if name.startswith("round:") or name == "observe" else "run"


def evaluations(rounds: int, every: int) -> int:
    return math.ceil(rounds / every)  # rounds r with r % every == 0, and the last one


def project(res: dict, a, rounds: int, every: int) -> dict:
    """CPU s of one run at `rounds`/`every`, from the measured run's parts: F + R x P + n_eval x V."""
    parts = {"run": 0.0, "round": 0.0, "eval": 0.0}
    for name, p in res["phases"].items():
        parts[classify(name)] += p["cpu_s"]
    f, p, v = parts["run"], parts["round"] / a.rounds, parts["eval"] / evaluations(a.rounds, a.eval_every)
    return {"F": f, "P": p, "V": v, "run_s": f + rounds * p + evaluations(rounds, every) * v}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", nargs="*", default=["ucb_dual", "homolora"])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--before", help="git revision (or folder) of an iovsim to measure beside this checkout")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--child-run", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_run:
        print(json.dumps(child(json.loads(a.child_run))))
        return
    from iovsim.fl.data import shared_data_dir

    # the glue tasks of a "before" worktree elsewhere: this checkout's ../shared/data
    os.environ.setdefault("IOVSIM_SHARED_DATA", str(shared_data_dir()))
    load0 = os.getloadavg()
    trees, made = {"after": REPO}, False
    if a.before:
        trees["before"], made = before_tree(a.before)
    out_dir = Path(tempfile.mkdtemp(prefix="bench-paper-run-"))
    results: dict = {}
    try:
        for i, strategy in enumerate(a.strategies):
            for side in sorted(trees, reverse=i % 2 == 1):  # alternate which side runs first
                tag = f"{strategy}-{side}"
                results[tag] = measure(trees[side], "run", run_args(strategy, a, out_dir / tag), script=__file__)
                r = results[tag]
                print(f"{tag}: {r['cpu_s']:.0f} CPU s, {r['wall_s']:.0f} s wall", flush=True)
                Path(a.out).write_text(markdown(a, results, trees, load0, os.getloadavg()))
    finally:
        if made:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(trees["before"])], check=False)
    print(Path(a.out).read_text())


# ---------------------------------------------------------------- the report
def rev(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" + uncommitted changes" if dirty else "")


def phase_table(a, results: dict, strategy: str, sides: list[str]) -> list[str]:
    runs = [results[f"{strategy}-{s}"] for s in sides]
    last = runs[-1]
    head = "| phase | per | calls | wall s | CPU s | share of CPU |"
    rule = "|---|---|---:|---:|---:|---:|"
    if len(runs) == 2:
        head, rule = head + " CPU s before | change |", rule + "---:|---:|"
    lines = [head, rule]
    names = list(dict.fromkeys([n for r in runs for n in r["phases"]]))
    names.sort(key=lambda n: -last["phases"].get(n, {"cpu_s": 0})["cpu_s"])
    zero = {"count": 0, "wall_s": 0.0, "cpu_s": 0.0}
    for n in names:
        p = last["phases"].get(n, zero)
        row = (f"| {n} | {classify(n)} | {p['count']} | {p['wall_s']:.1f} | {p['cpu_s']:.1f} | "
               f"{100 * p['cpu_s'] / last['cpu_s']:.1f} % |")
        if len(runs) == 2:
            b = runs[0]["phases"].get(n, zero)["cpu_s"]
            row += f" {b:.1f} | {p['cpu_s'] - b:+.1f} |"
        lines.append(row)
    total = f"| **whole run** | | | {last['wall_s']:.1f} | {last['cpu_s']:.1f} | 100 % |"
    if len(runs) == 2:
        total += f" {runs[0]['cpu_s']:.1f} | {last['cpu_s'] - runs[0]['cpu_s']:+.1f} |"
    return lines + [total]


def projection_lines(a, results: dict, sides: list[str]) -> list[str]:
    R, E = PAPER["rounds"], PAPER["eval_every"]
    lines = [f"## Projection to the README's comparison ({R} rounds, eval_every {E}, {PAPER['runs']} runs, "
             f"--jobs {PAPER['jobs']} --threads 1)", "",
             f"Per run: CPU s = F + R x P + n_eval x V, with F the once-per-run phases (rows marked `run`), P the "
             f"per-round phases (`round`, measured total / {a.rounds} rounds), V one evaluation of every task's "
             f"test set (`eval`, measured total / {evaluations(a.rounds, a.eval_every)}), and n_eval = ceil(R / "
             f"eval_every) = {evaluations(R, E)}. The comparison: {PAPER['runs']} runs x the mean run over the "
             f"strategies measured / {PAPER['jobs']} jobs, taking one run's CPU seconds as its wall seconds (one "
             "torch thread, SUMO in the same process, a core of its own: the machine's 2 cores, nothing else "
             "running). Rounds are assumed to cost what the measured rounds cost on average.", "",
             "| strategy | iovsim | F [s] | P [s/round] | V [s/eval] | one run [min] | 20 runs at 2 jobs [h] |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for side in sides:
        runs = []
        for s in a.strategies:
            if f"{s}-{side}" not in results:
                continue
            p = project(results[f"{s}-{side}"], a, R, E)
            runs.append(p["run_s"])
            lines.append(f"| {s} | {side} | {p['F']:.0f} | {p['P']:.1f} | {p['V']:.0f} | {p['run_s'] / 60:.1f} | "
                         f"{PAPER['runs'] * p['run_s'] / PAPER['jobs'] / 3600:.2f} |")
        if runs:
            mean = sum(runs) / len(runs)
            lines.append(f"| mean of these | {side} | | | | {mean / 60:.1f} | "
                         f"{PAPER['runs'] * mean / PAPER['jobs'] / 3600:.2f} |")
    return lines + [""]


def markdown(a, results: dict, trees: dict, load0, load1) -> str:
    import torch

    sides = [s for s in ("before", "after") if s in trees]
    lines = ["# Where a run of the UCB-DUAL paper comparison spends its time (tools/bench_paper_run.py)", "",
             f"Command: `nice python tools/bench_paper_run.py --strategies {' '.join(a.strategies)} --rounds "
             f"{a.rounds} --eval-every {a.eval_every} --threads {a.threads}"
             f"{f' --before {a.before}' if a.before else ''}"
             f"{'' if Path(a.out) == DEFAULT_OUT else f' --out {os.path.relpath(a.out, REPO)}'}`  ",
             f"Config: sumo_scenarios/ucb_dual_paper.yaml as `iovsim compare` runs it, `fl.rounds={a.rounds}`, "
             f"`fl.eval_every={a.eval_every}`, `fl.threads={a.threads}`.  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python "
             f"{platform.python_version()}; load average (1, 5, 15 min) before "
             f"{', '.join(f'{x:.2f}' for x in load0)}, after {', '.join(f'{x:.2f}' for x in load1)} (shared: "
             "wall seconds depend on the load, CPU seconds much less).  ",
             "iovsim: " + "; ".join(f"{s} = `{rev(trees[s])}`" for s in sides) + ".", "",
             "Rows: exclusive seconds (a nested phase's time is not in its parent's row); `per` says whether a "
             "phase happens once per run, every round, or every evaluation (the projection below).", ""]
    for s in a.strategies:
        if not all(f"{s}-{side}" in results for side in sides):
            continue
        r = results[f"{s}-{sides[-1]}"]
        lines += [f"## {s}", "", f"Run folder {r['run_bytes'] / 2**20:.1f} MiB, of which checkpoints "
                  f"{r['checkpoint_bytes'] / 2**20:.1f} MiB.", ""] + phase_table(a, results, s, sides) + [""]
    return "\n".join(lines + projection_lines(a, results, sides))


if __name__ == "__main__":
    main()
