"""OpenMP's wait policy on a shared CPU: how long torch's threads spin at a barrier before they sleep.

torch's CPU build runs its intra-op threads on GNU OpenMP (libgomp). By default a thread that reaches
the end of a parallel region first spins (GOMP_SPINCOUNT, 300,000 turns, ~3 ms) before it sleeps. On a
quiet machine that saves a wake-up; when another process holds a core, the spinning thread keeps the
core from the thread it waits for. iovsim sets GOMP_SPINCOUNT=3000 unless the user set it or
OMP_WAIT_POLICY (iovsim/__init__.py). This tool measures spin counts and OMP_WAIT_POLICY=PASSIVE on the
same training workload, in child processes (libgomp reads them when torch loads it), in turns:

- alone: one process with 2 threads on the 2 cores;
- two at once: two such processes started together (two runs, or `compare --jobs 2 --threads 2`);
- beside a busy process: one process with 2 threads while a 1-thread process computes (a shared machine).

Workload: the batched executor (its CPU default, 2,048 tokens a pass) training 8 clients x 1 AdamW step
x batch 16 tweets padded to 64 tokens, LoRA r=8 on MiniLM (tools/bench_train.py's), `--calls` timed
calls after a warm-up call; wall and CPU seconds of each call, median of the calls.

    python tools/bench_omp_wait.py [--reps 2] [--calls 3] [--policies 300000 passive]   # the defaults
    python tools/bench_omp_wait.py --reps 2 --calls 2 --policies 300000 30000 3000 passive  # results/bench_omp_wait.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPIN = 300_000  # libgomp's GOMP_SPINCOUNT when neither it nor OMP_WAIT_POLICY is set


def label(policy: str) -> str:
    """`passive` (OMP_WAIT_POLICY=PASSIVE, no spinning) or a GOMP_SPINCOUNT (turns spun before sleeping)."""
    if policy == "passive":
        return "OMP_WAIT_POLICY=PASSIVE"
    n = int(policy)
    return f"GOMP_SPINCOUNT={n:,}" + (" (libgomp's default)" if n == DEFAULT_SPIN else "")


SCENARIOS = ["alone", "two at once", "beside a busy process"]


def child(calls: int) -> None:
    """One process: load, warm up, time `calls` training calls; print wall and CPU seconds as JSON."""
    sys.path[:0] = [str(REPO / "tools"), str(REPO)]
    import torch

    torch.set_num_threads(2)
    import bench_train as bt
    from iovsim.fl.batched import BatchedExecutor

    model, _, task = bt.setup(8)
    ex = BatchedExecutor(model, [task], max_tokens=2048)
    ex.train(bt.jobs_for(model, 2, steps=1))
    out = []
    for _ in range(calls):
        c0, t0 = time.process_time(), time.perf_counter()
        ex.train(bt.jobs_for(model, 8, steps=1))
        out.append([time.perf_counter() - t0, time.process_time() - c0])
    print(json.dumps(out))


def busy() -> None:
    """A 1-thread process that computes until killed (the other work on a shared machine)."""
    import numpy as np

    a = np.random.default_rng(0).random((400, 400))
    while True:
        a = np.tanh(a @ a.T / 400)


def env_for(policy: str) -> dict:
    """The child's environment: OMP_WAIT_POLICY=PASSIVE, or a GOMP_SPINCOUNT without OMP_WAIT_POLICY
    (either one set keeps iovsim's own default out)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(REPO)
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env["GOMP_SPINCOUNT"] = str(int(policy))
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "2"
    return env


def measure(scenario: str, policy: str, calls: int) -> list[list[float]]:
    """Per-call [wall, CPU] of the measured process(es) of one scenario under one policy."""
    cmd = [sys.executable, __file__, "--child", str(calls)]
    n = 2 if scenario == "two at once" else 1
    hog = None
    if scenario == "beside a busy process":
        hog = subprocess.Popen([sys.executable, __file__, "--busy"],
                               env={**env_for(str(DEFAULT_SPIN)), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        time.sleep(1.0)
    try:
        procs = [subprocess.Popen(cmd, env=env_for(policy), stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outs = [p.communicate()[0] for p in procs]
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return [c for o in outs for c in json.loads(o.strip().splitlines()[-1])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2, help="runs of each scenario and policy, in turns")
    ap.add_argument("--calls", type=int, default=3, help="timed training calls per process")
    ap.add_argument("--policies", nargs="+", default=[str(DEFAULT_SPIN), "passive"],
                    help="GOMP_SPINCOUNT values and/or `passive`; the first is the baseline of the ratios")
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "bench_omp_wait.md"))
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child)
    if a.busy:
        return busy()
    load0 = os.getloadavg()[0]
    res = {(s, p): [] for s in SCENARIOS for p in a.policies}
    for r in range(a.reps):
        for s in SCENARIOS:
            for p in (a.policies if r % 2 == 0 else a.policies[::-1]):
                res[(s, p)] += measure(s, p, a.calls)
                print(s, p, [f"{w:.1f}" for w, _ in res[(s, p)]], flush=True)
    write(a, res, load0, os.getloadavg()[0])


def write(a, res: dict, load0: float, load1: float) -> None:
    import torch

    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}
    base = a.policies[0]
    lines = ["# OpenMP's wait policy on a shared CPU (tools/bench_omp_wait.py)", "",
             f"Command: `python tools/bench_omp_wait.py --reps {a.reps} --calls {a.calls} --policies {' '.join(a.policies)}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} (libgomp), "
             f"CPU capability {torch.backends.cpu.get_cpu_capability()}; 1-minute load average {load0:.2f} at the "
             f"start, {load1:.2f} at the end (this tool's own processes included).", "",
             "Workload per call: the batched executor training 8 clients x 1 AdamW step x batch 16 tweets x 64 "
             "tokens, LoRA r=8, MiniLM, 2 torch threads per process. Median over every timed call of every "
             f"measured process ({a.reps} runs per line, in turns, {a.calls} calls each).", "",
             f"| scenario | policy | wall s per call | CPU s per call | speed-up against {label(base)} |",
             "| --- | --- | ---: | ---: | ---: |"]
    for s in SCENARIOS:
        for p in a.policies:
            ratio = "" if p == base else f"**{med[(s, base)][0] / med[(s, p)][0]:.2f}x**"
            lines.append(f"| {s} | {label(p)} | {med[(s, p)][0]:.2f} | {med[(s, p)][1]:.2f} | {ratio} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
