"""A comparison's time, projected from a short slice of it: per run, the fixed part (start, model, data,
report) and the time of a round with and without evaluation, read from the run folders.

    python tools/gpu_projection.py OUT_DIR [--rounds 30] [--eval-every 10] [--seeds 5] [--jobs 8]

OUT_DIR is an `iovsim compare` folder (`<strategy>/seed-<s>/`). A run's start and wall time come from
its process.json (its last attempt), the end of round k from checkpoints/round_<k>/state.json, and
which rounds were evaluated from its config.yaml (`fl.eval_every`; the last round always is). Round 1
holds the run's start-up, so rounds 2.. give the per-round times. Each strategy's run at `--rounds` is
then fixed + (rounds without evaluation) x their mean + (evaluated rounds) x theirs, and the runs of
`--seeds` seeds are placed on `--jobs` slots, longest first: the projected wall time. It is a
projection: the slice's runs shared the machine as K runs at once, and so would the full comparison.
Prints a markdown section (stdout).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import yaml


def evaluated(r: int, rounds: int, every: int) -> bool:
    return r % every == 0 or r == rounds


def run_times(run_dir: Path) -> dict | None:
    """Wall, fixed and per-round seconds of one run folder (None if it did not finish)."""
    proc, summary = run_dir / "process.json", run_dir / "summary.json"
    if not proc.exists() or not summary.exists() or not json.loads(summary.read_text()).get("finished"):
        return None
    attempt = json.loads(proc.read_text())[-1]
    fl = yaml.safe_load((run_dir / "config.yaml").read_text())["fl"]
    rounds, every = int(fl["rounds"]), int(fl.get("eval_every", 1))
    ends = [(run_dir / "checkpoints" / f"round_{r:04d}" / "state.json").stat().st_mtime for r in range(1, rounds + 1)]
    start, wall = attempt["started"], attempt["wall_time_s"]
    kinds = {True: [], False: []}
    for r in range(2, rounds + 1):
        kinds[evaluated(r, rounds, every)].append(ends[r - 1] - ends[r - 2])
    plain = sum(kinds[False]) / len(kinds[False]) if kinds[False] else math.nan
    scored = sum(kinds[True]) / len(kinds[True]) if kinds[True] else math.nan
    plain, scored = (scored if math.isnan(plain) else plain), (plain if math.isnan(scored) else scored)  # one kind
    # of round only (a slice too short): its time stands for both, an overestimate where it is the evaluated kind
    first = scored if evaluated(1, rounds, every) else plain
    fixed = (ends[0] - start) - first + (start + wall - ends[-1])
    return {"wall_s": wall, "rounds": rounds, "fixed_s": fixed, "round_s": plain, "eval_round_s": scored,
            "peak_gpu_bytes": json.loads(summary.read_text()).get("peak_gpu_allocated_bytes"),
            "peak_rss_bytes": attempt.get("peak_rss_bytes")}


def projected_run_s(t: dict, rounds: int, every: int) -> float:
    n_eval = sum(evaluated(r, rounds, every) for r in range(1, rounds + 1))
    return t["fixed_s"] + (rounds - n_eval) * t["round_s"] + n_eval * t["eval_round_s"]


def makespan(durations: list[float], jobs: int) -> float:
    """Longest-first list scheduling of the runs on `jobs` slots: when the last run ends."""
    slots = [0.0] * max(1, jobs)
    for d in sorted(durations, reverse=True):
        slots[slots.index(min(slots))] += d
    return max(slots)


def section(out_dir: Path, rounds: int, every: int, seeds: int, jobs: int) -> list[str]:
    rows, per_strategy = [], {}
    for run in sorted(out_dir.glob("*/seed-*")):
        t = run_times(run)
        if t is None:
            rows.append(f"| {run.parent.name} | {run.name} | not finished | | | | | |")
            continue
        per_strategy.setdefault(run.parent.name, []).append(projected_run_s(t, rounds, every))
        gpu = f"{t['peak_gpu_bytes'] / 2**20:.0f}" if t["peak_gpu_bytes"] else "-"
        rows.append(f"| {run.parent.name} | {run.name} | {t['rounds']} | {t['wall_s']:.1f} | {t['fixed_s']:.1f} | "
                    f"{t['round_s']:.2f} | {t['eval_round_s']:.2f} | {gpu} |")
    lines = ["| strategy | run | rounds | wall s | fixed s | round s | evaluated round s | peak GPU MiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, ""]
    if not per_strategy:
        return lines + ["No finished run: nothing to project."]
    means = {s: sum(v) / len(v) for s, v in per_strategy.items()}
    total = makespan([m for m in means.values() for _ in range(seeds)], jobs)
    lines += [f"Projection (not a measurement) for {len(means)} strategies x {seeds} seeds x {rounds} rounds, "
              f"`fl.eval_every={every}`, `--jobs {jobs}`: per run "
              + ", ".join(f"{s} {m:.0f} s" for s, m in sorted(means.items()))
              + f"; {len(means) * seeds} runs on {jobs} slots, longest first: **{total / 60:.1f} min** of wall time."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=8)
    a = ap.parse_args()
    print("\n".join(section(a.out_dir, a.rounds, a.eval_every, a.seeds, a.jobs)))


if __name__ == "__main__":
    main()
