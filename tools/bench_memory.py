"""Peak RSS of `iovsim run`, per phase, before and after a change, side by side: tools/results/bench_memory.md.

Each measurement is `iovsim run` in its own process, with the iovsim of one source tree first on
PYTHONPATH ("before": a detached git worktree of `--before`, created and removed here; "after":
this checkout). Inside it the run's phases (SUMO start and warm-up, model load, task data,
tokenization, each round's SUMO steps, training, aggregation, evaluation, the report) are wrapped:
at the start and the end of each, the kernel's RSS high-water mark (VmHWM) is read and reset
(`/proc/self/clear_refs`, Linux), so every phase and every gap between phases has its own peak and
the run's peak is the largest of them. CPU seconds of the training phase are recorded beside it.

Runs: the experiment of `--config` (default: sumo_scenarios/default.yaml) shortened to `--rounds`
rounds and in full, and `--participants` participants per round (`mobility.fl_vehicles` = 2 x
participants, one round, one local step); `--threads` sets `fl.threads`. Before and after run
alternately. Then, for the default config only, a pass-size sweep in one process: the default run's
training workload (8 jobs, 4 per task, 150-row shards, 5 steps, batch 16) through the batched
executor at several `max_tokens_per_pass`, with peak RSS and CPU seconds of each. The results go into
the config's own section of the output file (bench_memory_report.write_section).

    nice python tools/bench_memory.py [--before 107ef91] [--rounds 2] [--full] [--participants 8 64 256]
    nice python tools/bench_memory.py --config sumo_scenarios/llm_default.yaml --threads 1 --participants 8 64

Linux only (VmHWM, clear_refs). The machine may be shared: memory figures do not depend on load,
times do; CPU seconds are steadier than wall time on a loaded machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_memory_report import MiB, markdown, write_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BEFORE = "107ef91"  # main before the memory change (glibc mmap threshold, CPU passes of 2,048 tokens)


# ---------------------------------------------------------------- inside a measured process
def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class PhaseLog:
    """Per phase: count, largest RSS at entry, peak (VmHWM), wall and CPU seconds.

    Phases may nest (a wrapped function called inside another, "model load: ..." inside "model
    load"). Time is exclusive: every stretch between two phase boundaries is charged to the innermost
    phase open then, or to "between phases" when none is, so the phases' seconds add up to the whole
    run. Peaks are inclusive: the RSS high-water mark is read and reset at every boundary, and each
    stretch's mark raises the peak of every phase open around it."""

    GAP = "between phases"

    def __init__(self):
        self.phases: dict[str, dict] = {}
        self.stack: list[list] = []  # per open phase: [name, the largest mark seen inside it so far]
        self.mark = (time.perf_counter(), time.process_time())
        _reset_peak()

    def _stretch(self) -> tuple[float, float, int]:
        """Wall s, CPU s and the RSS high-water mark since the last boundary; a new stretch starts."""
        t, c, hwm = time.perf_counter(), time.process_time(), _status()["VmHWM"]
        out = (t - self.mark[0], c - self.mark[1], hwm)
        for entry in self.stack:
            entry[1] = max(entry[1], hwm)
        self.mark = (time.perf_counter(), time.process_time())
        _reset_peak()
        return out

    def close_gap(self):
        wall, cpu, hwm = self._stretch()
        if self.stack:  # time of the open phase itself; its peak is added when it closes
            self.add(self.stack[-1][0], 0, 0, wall, cpu, count=0)
        else:
            self.add(self.GAP, 0, hwm, wall, cpu, count=0)

    def add(self, name, rss_in, peak, wall_s, cpu_s, count=1):
        p = self.phases.setdefault(name, {"count": 0, "rss_in": 0, "peak": 0, "wall_s": 0.0, "cpu_s": 0.0})
        p["count"] += count
        p["rss_in"], p["peak"] = max(p["rss_in"], rss_in), max(p["peak"], peak)
        p["wall_s"] += wall_s
        p["cpu_s"] += cpu_s

    def wrap(self, owner, attr: str, name: str):
        import functools

        f = getattr(owner, attr, None)
        if f is None:  # a part one of the compared trees does not have
            return

        @functools.wraps(f)
        def measured(*a, **k):
            self.close_gap()
            self.stack.append([name, 0])
            rss_in = _status()["VmRSS"]
            try:
                return f(*a, **k)
            finally:
                wall, cpu, _ = self._stretch()
                _, peak = self.stack.pop()
                self.add(name, rss_in, peak, wall, cpu, count=1)

        setattr(owner, attr, measured)


def run_phases() -> list[tuple]:
    """(owner, attribute, phase name) of the functions a run's phases are: SUMO start, model load, task
    data, tokenization, each round's observation, SUMO steps, training, aggregation, evaluation, the report."""
    import iovsim.engine.build as build
    import iovsim.experiment as experiment
    import iovsim.fl.train as train
    import iovsim.viz.report as report

    return [(experiment.Experiment, "_start_mobility", "SUMO start, warm-up, channel"),
            (build, "load_model", "model load"), (build, "load_task_named", "task data"),
            (train.TokenizedTask, "__init__", "tokenization"),
            (experiment.Experiment, "_observe", "observe"),
            (experiment.Experiment, "_transfer", "round: SUMO steps"),
            (experiment, "train", "round: training"), (experiment, "aggregate_round", "round: aggregation"),
            (experiment, "evaluate", "round: evaluation"), (report, "write_report", "report"),
            *causal_phases()]


def measured_cli(args: list[str], phases: list[tuple]) -> dict:
    """`iovsim ARGS` in this process with `phases` wrapped: the return code, wall seconds, phase table."""
    log = PhaseLog()
    import iovsim.cli

    for owner, attr, name in phases:
        log.wrap(owner, attr, name)
    t0, c0 = time.perf_counter(), time.process_time()
    rc = iovsim.cli.main(args)
    log.close_gap()
    return {"rc": rc, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "phases": log.phases,
            "peak": max(p["peak"] for p in log.phases.values()), "iovsim": iovsim.cli.__file__}


def child_run(args: list[str]) -> dict:
    """`iovsim run ARGS` in this process with its phases measured; the phase table and the peak."""
    return measured_cli(["run", *args], run_phases())


def causal_phases() -> list[tuple]:
    """Parts of the model load (nested in "model load"): the checkpoint read (the causal LM's GGUF
    dequantized) and the LoRA base's set-up (shared by both families); the set-up after it."""
    import iovsim.engine.build as build
    import iovsim.engine.limits as limits
    import iovsim.fl.executors as executors
    from iovsim.fl.families import causal_load, lora

    return [(causal_load, "_load", "model load: read, dequantize, tokenizer"),
            (lora.LoraModel, "__init__", "model load: frozen base set up"),
            (build, "make_task_named", "tokenization (family's task)"), (executors, "make_executor", "executor set up"),
            (build, "initial_global_states", "initial adapters"), (limits, "check_device_memory", "memory check")]


def child_passes(sizes: list[int], reps: int) -> dict:
    """The default round's training workload through the batched executor at each pass size."""
    import numpy as np
    import torch

    from iovsim.fl.batched import BatchedExecutor
    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import load_task
    from iovsim.fl.heap import return_freed_memory
    from iovsim.fl.model import AdapterModel
    from iovsim.fl.train import TokenizedTask, TrainJob

    return_freed_memory()
    model = AdapterModel("minilm", ["query", "value"], 16.0)
    tasks = [TokenizedTask(model, load_task(TaskConfig(name=n, dataset=n, max_length=w, test_samples=300), seed=42), w)
             for n, w in (("tweet_sentiment", 40), ("bbc_news", 64))]
    ex = BatchedExecutor(model, tasks)
    g = torch.Generator().manual_seed(0)
    inits = [model.init_state(8, 3, g), model.init_state(8, 5, g)]
    rng = np.random.default_rng(0)
    jobs = [TrainJob(f"v{k}", k % 2, inits[k % 2], 8, 5, 16, 1e-3, 5e-3,
                     np.sort(rng.choice(len(tasks[k % 2].train_labels), 150, replace=False)), [0, k]) for k in range(8)]
    ex.train(jobs[:2])  # warm-up: first-call costs out of the timings
    out = {s: {"peak": 0, "cpu_s": [], "wall_s": [], "loss_after": None} for s in sizes}
    base = _status()["VmRSS"]
    for r in range(reps):
        for s in (sizes if r % 2 == 0 else sizes[::-1]):
            ex.max_tokens = s
            _reset_peak()
            t0, c0 = time.perf_counter(), time.process_time()
            res = ex.train(jobs)
            out[s]["cpu_s"].append(time.process_time() - c0)
            out[s]["wall_s"].append(time.perf_counter() - t0)
            out[s]["peak"] = max(out[s]["peak"], _status()["VmHWM"])
            out[s]["loss_after"] = [x.loss_after for x in res]
            print(f"  pass {s} tokens rep {r}: peak {out[s]['peak'] / MiB:.0f} MiB, "
                  f"{out[s]['cpu_s'][-1]:.1f} CPU s", file=sys.stderr, flush=True)
    return {"rss_before_train": base, "sizes": out}


# ---------------------------------------------------------------- the parent
def measure(tree: Path, mode: str, payload: list, script: str = __file__) -> dict:
    """`script --child-MODE PAYLOAD` in a fresh interpreter with `tree`'s iovsim first; its JSON answer."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(script).resolve()), f"--child-{mode}", json.dumps(payload)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["command_wall_s"] = time.perf_counter() - t0
    return res


def before_tree(rev: str) -> tuple[Path, bool]:
    """A folder holding iovsim as it was at `rev`: `rev` itself when it is a folder, else a new worktree."""
    if Path(rev).is_dir():
        return Path(rev), False
    d = Path(tempfile.mkdtemp(prefix="iovsim-before-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(d), rev], check=True)
    return d, True


def run_args(kind: str, a, out_dir: Path, tag: str) -> list[str]:
    args = ([str((REPO / a.config).resolve())] if a.config else []) + ["--quiet", "--out", str(out_dir / tag)]
    if a.threads:
        args += ["--set", f"fl.threads={a.threads}"]
    if kind == "short":
        return args + ["--set", f"fl.rounds={a.rounds}"]
    if kind == "full":
        return args
    n = int(kind)
    return args + ["--set", "fl.rounds=1", "--set", "fl.local_steps=1", "--set", f"fl.participants_per_round={n}",
                   "--set", f"mobility.fl_vehicles={2 * n}", "--set", "output.report=false"]


def participants_of(run_dir: Path) -> int:
    import csv

    with open(run_dir / "metrics.csv", newline="") as f:
        return sum(int(r["participants"]) for r in csv.DictReader(f))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=DEFAULT_BEFORE, help="git revision (or folder) of the 'before' iovsim")
    ap.add_argument("--config", help="experiment YAML, relative to the repository (default: the default experiment); "
                    "both sides run this checkout's file")
    ap.add_argument("--threads", type=int, default=0, help="fl.threads of every run (0: the config's)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the shortened run")
    ap.add_argument("--full", action="store_true", help="also the full run (the config's rounds), before and after")
    ap.add_argument("--participants", type=int, nargs="*", default=[8, 64, 256])
    ap.add_argument("--pass-sizes", type=int, nargs="*", default=None,
                    help="tokens per pass of the MiniLM sweep (default 2048 4096 8192; none with --config)")
    ap.add_argument("--pass-reps", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "bench_memory.md"))
    ap.add_argument("--child-run", help=argparse.SUPPRESS)
    ap.add_argument("--child-passes", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child_run:
        print(json.dumps(child_run(json.loads(a.child_run))))
        return
    if a.child_passes:
        sizes, reps = json.loads(a.child_passes)
        print(json.dumps(child_passes(sizes, reps)))
        return
    if a.pass_sizes is None:
        a.pass_sizes = [] if a.config else [2048, 4096, 8192]
    a.name = Path(a.config).stem if a.config else "default"
    load0 = os.getloadavg()
    tree, made = before_tree(a.before)
    trees = {"before": tree, "after": REPO}
    out_dir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    kinds = ["short"] + (["full"] if a.full else []) + [str(n) for n in a.participants]
    results: dict = {}
    passes = None
    a.before_rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip() or a.before

    def write():  # after every measurement: a stopped benchmark keeps what it measured
        done = [k for k in kinds if f"{k}-after" in results and f"{k}-before" in results]
        write_section(Path(a.out), a.name, markdown(a, done, results, passes, load0, os.getloadavg()))

    try:
        for kind in kinds:
            for side in ("before", "after") if len(results) % 4 == 0 else ("after", "before"):
                tag = f"{kind}-{side}"
                r = measure(trees[side], "run", run_args(kind, a, out_dir, tag))
                r["participants"] = participants_of(out_dir / tag)
                r["run_dir"] = str(out_dir / tag)
                results[tag] = r
                print(f"{tag}: peak {r['peak'] / MiB:.0f} MiB, {r['participants']} participations, "
                      f"{r['command_wall_s']:.0f} s", flush=True)
            write()
            if kind == "short" and a.pass_sizes:
                passes = measure(REPO, "passes", [a.pass_sizes, a.pass_reps])
                write()
    finally:
        if made:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    print(markdown(a, [k for k in kinds if f"{k}-after" in results and f"{k}-before" in results], results, passes, load0, os.getloadavg()))


if __name__ == "__main__":
    main()
