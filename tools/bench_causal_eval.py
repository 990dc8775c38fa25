"""Likelihood evaluation of a causal LM: one row per label word (K forwards per example) vs tree rows (one).

Workload: the test sets of sumo_scenarios/llm_default.yaml (SmolLM2-135M-Instruct; 30 tweets, 3
label words, max_length 64; 30 BBC News articles, 5 label words, max_length 96), built as a run
builds them (same seed), scored by the configured executor (batched) at eval_batch_size 32, fp32,
with a rank-16 adapter whose B factors are non-zero. The two layouts (`CausalTask.choice_layout`:
"rows", the previous one, kept as the reference; "tree", iovsim's) run interleaved in one process;
the table gives the best and the median of the reps, wall and process CPU time, the tokens the
decoder ran (rows x padded width of each pass), the FLOPs torch counts for one evaluation
(FlopCounterMode: machine-independent) and the largest relative difference of the per-example
per-label log-probability sums, with the accuracy and loss of both.

With `--runs BEFORE AFTER ...` (pairs of run folders of `iovsim run sumo_scenarios/llm_default.yaml
--set fl.rounds=2 --set fl.threads=1`, one made with the previous code, one with this) it adds each
round's wall time (tools/readme_llm_run.py's `round_wall_s`: from config.yaml, written once the run is
built, to each round's checkpoint) and the ratios.

    nice python tools/bench_causal_eval.py [--reps 5] [--threads 1] [--out tools/results/causal_eval.md]
                                           [--runs BEFORE AFTER [BEFORE AFTER ...]]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iovsim.config import load_config  # noqa: E402
from iovsim.engine.build import load_model, load_task_named  # noqa: E402
from iovsim.fl.executors import make_executor  # noqa: E402
from iovsim.fl.train import length_passes  # noqa: E402

CONFIG = REPO / "sumo_scenarios" / "llm_default.yaml"
LAYOUTS = ("rows", "tree")


def adapter(model, rank: int) -> dict:
    g = torch.Generator().manual_seed(0)
    state = model.init_state(rank, 0, g)
    for key in state:
        if key.endswith("lora_B"):
            state[key] = torch.randn(state[key].shape, generator=g) * 0.02
    return state


def evaluate(executor, task, ti: int, layout: str, state, rank: int, batch_size: int):
    """(EvalResult, the per-example per-label log-prob sums, wall s, process CPU s)."""
    task.choice_layout = layout
    seen, score_set = [], task.score_set
    task.score_set = lambda *a: seen.append(score_set(*a)) or seen[-1]
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        res = executor.evaluate(ti, state, rank, batch_size)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        del task.score_set
    return res, seen[0].scores.logp, wall, cpu


def tokens_run(task, layout: str, batch_size: int) -> tuple[int, int]:
    """(rows, rows x padded width summed over the passes) of one evaluation in `layout`."""
    task.choice_layout = layout
    s = task.score_set("test")
    widths = task.row_widths(s.enc, s.rows)
    return len(s.rows), int(sum(len(p) * int(widths[p].max()) for p in length_passes(widths, batch_size)))


def flops(executor, task, ti, layout, state, rank, batch_size) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        evaluate(executor, task, ti, layout, state, rank, batch_size)
    return float(fc.get_total_flops())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "causal_eval.md"))
    ap.add_argument("--runs", nargs="*", default=[], help="pairs of run folders: before after ...")
    args = ap.parse_args(argv)
    if len(args.runs) % 2:
        ap.error("--runs takes pairs of run folders (before after)")
    cfg = load_config(CONFIG, {"fl.threads": args.threads})
    load0 = os.getloadavg()
    model = load_model(cfg)
    tasks = [model.make_task(load_task_named(cfg, i), tc.max_length) for i, tc in enumerate(cfg.fl.tasks)]
    executor = make_executor(cfg.fl, model, tasks)
    rank, bs = 16, cfg.fl.eval_batch_size
    state = adapter(model, rank)
    lines = _header(args, cfg, load0, type(executor).__name__)
    for ti, (tc, task) in enumerate(zip(cfg.fl.tasks, tasks)):
        times = {lay: [] for lay in LAYOUTS}
        got = {}
        for _ in range(args.reps):
            for lay in LAYOUTS:
                res, logp, wall, cpu = evaluate(executor, task, ti, lay, state, rank, bs)
                times[lay].append((wall, cpu))
                got[lay] = (res, logp)
        fl = {lay: flops(executor, task, ti, lay, state, rank, bs) for lay in LAYOUTS}
        lines += _task_rows(tc, task, times, got, fl, bs)
    task_load = os.getloadavg()
    lines += ["", f"Load average (1, 5, 15 min) before: {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}; "
              f"after: {task_load[0]:.1f} {task_load[1]:.1f} {task_load[2]:.1f} (2 cores).", ""]
    lines += _run_rows(args.runs)
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)
    return 0


def _header(args, cfg, load0, executor: str) -> list[str]:
    return ["# Likelihood evaluation: one row per label word vs tree rows", "",
            f"`nice python tools/bench_causal_eval.py --reps {args.reps} --threads {args.threads}` "
            f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"threads {args.threads}; load average before {load0[0]:.1f}).", "",
            f"{cfg.fl.model}, {executor} executor, fp32, eval_batch_size {cfg.fl.eval_batch_size}, a rank-16 "
            f"adapter with non-zero B; the test sets of {CONFIG.relative_to(REPO)} (seed {cfg.seed}). "
            f"Best [median] of {args.reps} interleaved reps.", "",
            "| task (K label words) | layout | rows | decoder tokens | GFLOPs (torch) | wall s | CPU s | "
            "accuracy | loss |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def _task_rows(tc, task, times, got, fl, bs) -> list[str]:
    out = []
    for lay in LAYOUTS:
        rows, toks = tokens_run(task, lay, bs)
        wall = [t[0] for t in times[lay]]
        cpu = [t[1] for t in times[lay]]
        res = got[lay][0]
        out.append(f"| {tc.name} ({len(task.words)}) | {lay} | {rows} | {toks} | {fl[lay] / 1e9:.1f} | "
                   f"{min(wall):.2f} [{statistics.median(wall):.2f}] | {min(cpu):.2f} [{statistics.median(cpu):.2f}] | "
                   f"{res.accuracy:.3f} | {res.loss:.5f} |")
    task.choice_layout = "tree"
    a, b = got["rows"][1], got["tree"][1]
    rel = float(np.max(np.abs(b - a) / np.abs(a)))
    ratio = min(t[0] for t in times["rows"]) / min(t[0] for t in times["tree"])
    med = statistics.median(t[0] for t in times["rows"]) / statistics.median(t[0] for t in times["tree"])
    out.append(f"| | rows / tree | | | {fl['rows'] / fl['tree']:.2f} | {ratio:.2f} [{med:.2f}] | "
               f"{min(t[1] for t in times['rows']) / min(t[1] for t in times['tree']):.2f} | "
               f"log-prob sums: max rel. diff {rel:.1e} | |")
    return out


def _run_rows(runs: list[str]) -> list[str]:
    """Round wall times of (before, after) run folder pairs, and their ratios."""
    if not runs:
        return []
    sys.path.insert(0, str(REPO / "tools"))
    from readme_llm_run import round_wall_s

    out = ["## Whole rounds", "",
           "`iovsim run sumo_scenarios/llm_default.yaml --set fl.rounds=2 --set fl.threads=1` with the previous "
           "code (one row per label word) and with tree rows; wall s from config.yaml to each round's checkpoint.",
           "", "| pair | before: round 1, 2 (sum) | after: round 1, 2 (sum) | before / after |", "| --- | --- | --- | --- |"]
    for i in range(0, len(runs), 2):
        b, a = round_wall_s(Path(runs[i])), round_wall_s(Path(runs[i + 1]))
        sb, sa = sum(b.values()), sum(a.values())
        out.append(f"| {i // 2 + 1} | {', '.join(f'{v:.0f}' for v in b.values())} ({sb:.0f}) | "
                   f"{', '.join(f'{v:.0f}' for v in a.values())} ({sa:.0f}) | {sb / sa:.2f} |")
    return out + [""]


if __name__ == "__main__":
    sys.exit(main())
