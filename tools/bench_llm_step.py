"""What a SmolLM2 training step costs on this machine: one job, batch 4 x 64 tokens, LoRA r = 16 on the seven
default targets, through the batched executor (fp32, and bf16 where the CPU or GPU has it natively).

The step time is (job with S steps - job with 0 steps) / S, so the probe passes (the same in both)
cancel; the best of `--reps` repetitions is kept (load from other processes only slows a run down).
Also the machine's fp32 matmul peak, for scale. Prints one JSON object.

    python tools/bench_llm_step.py [--steps 3] [--reps 2] [--threads 0] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BATCH, TOKENS, RANK = 4, 64, 16


def best_time(ex, job, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        ex.train([job])
        best = min(best, time.perf_counter() - t0)
    return best


def step_seconds(model, task, precision: str, steps: int, reps: int) -> float:
    from iovsim.fl.batched import BatchedExecutor
    from iovsim.fl.train import TrainJob

    ex = BatchedExecutor(model, [task], precision=precision)
    init = model.init_state(RANK, 0, torch.Generator().manual_seed(0))

    def job(n):
        return TrainJob("v", 0, init, RANK, n, BATCH, 1e-4, 1e-4, np.arange(40), [0])

    ex.train([job(1)])  # warm-up (allocator, kernels)
    return (best_time(ex, job(steps), reps) - best_time(ex, job(0), reps)) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import load_task
    from iovsim.fl.executors import native_bf16
    from iovsim.fl.families import load_model

    t0 = time.perf_counter()
    model = load_model("smollm2", [], 32.0, device=args.device, threads=args.threads)
    load_s = time.perf_counter() - t0
    data = load_task(TaskConfig(name="tw", dataset="tweet_sentiment", max_samples=60, test_samples=10), seed=0)
    task = model.make_task(data, TOKENS, dynamic_padding=False)  # every batch 64 tokens wide
    out = {"device": str(model.device), "threads": torch.get_num_threads(), "load_s": round(load_s, 1),
           "batch": BATCH, "tokens": TOKENS, "rank": RANK, "loadavg_1min": os.getloadavg()[0],
           "step_s": {"fp32": round(step_seconds(model, task, "fp32", args.steps, args.reps), 2)}}
    if native_bf16(model.device):
        out["step_s"]["bf16"] = round(step_seconds(model, task, "bf16", args.steps, args.reps), 2)
    n = 2048
    a = torch.randn(n, n)
    t0 = time.perf_counter()
    a @ a
    out["fp32_matmul_gflops"] = round(2 * n**3 / (time.perf_counter() - t0) / 1e9, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
