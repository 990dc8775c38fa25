"""Achieved FLOP/s of training and of evaluation against the machine's fp32 matmul peak, and where the gap is.

Used by `python tools/bench_train.py --efficiency [--threads N]`, which writes the section between the
markers below into tools/results/bench_train.md. In one process, at one thread count:

- the peak: a 2048^3 fp32 torch.mm, best of 5;
- training: the batched executor on 8 clients x 4 AdamW steps x batch 16 tweets padded to 64 tokens
  (bench_train.py's workload), FLOPs counted by torch's FlopCounterMode over the whole call (the two
  probe passes included), time best of 3;
- evaluation: the batched executor's evaluate on the workload's test tweets (100) padded to 64 tokens, batch 64;
- both again with the LoRA path computed apart and then added (`BatchedExecutor(fused_lora=False)`,
  the hook before the fused add), timed interleaved with the fused one: the same numbers, side by side;
- a torch.profiler table of one training step (8 clients, 1 step, probes included): self time by kind of
  operator (matmuls, attention, layer norm, GELU, element-wise and copies, optimizer), the matmuls' own
  FLOP/s, and the wall time not spent inside any operator (Python and dispatch).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

BEGIN, END = "<!-- efficiency: begin -->", "<!-- efficiency: end -->"
KINDS = [("matmul (mm, addmm, bmm, baddbmm)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
         ("attention (SDPA, fwd + bwd)", ("scaled_dot_product",)),
         ("layer norm (fwd + bwd)", ("layer_norm",)),
         ("GELU (fwd + bwd)", ("gelu",)),
         ("optimizer (AdamW foreach)", ("_foreach",)),
         ("copies (copy_: addmm's bias broadcast into its output, layout copies)", ("aten::copy_",)),
         ("element-wise, cat, pad, sum", ("",))]


def _best(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _best_interleaved(fns: dict, reps: int) -> dict:
    """Best time of each function, run in turns (A B, B A, ...) so that load from elsewhere hits them alike."""
    best = {k: float("inf") for k in fns}
    for i in range(reps):
        for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            fns[k]()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _counted(fn) -> tuple[float, dict]:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops()), {str(k): float(v) for k, v in counter.get_flop_counts()["Global"].items()}


def _profile(fn) -> tuple[float, dict]:
    """Wall time of one call and self CPU time (s) by kind of operator."""
    from torch.profiler import ProfilerActivity, profile

    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    wall = time.perf_counter() - t0
    by_kind = {k: 0.0 for k, _ in KINDS}
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::"):
            continue
        kind = next(k for k, pats in KINDS if any(p in ev.key for p in pats))
        by_kind[kind] += ev.self_cpu_time_total / 1e6
    return wall, by_kind


LORA_ADD = {"fused": "path added by its second matmul (baddbmm)",
            "apart": "path computed apart, then added (the previous hook)"}


def efficiency_section(threads: int, setup, jobs_for, matmul_peak_flops) -> list[str]:
    from iovsim.fl.batched import BatchedExecutor

    torch.set_num_threads(threads)
    peak_start = matmul_peak_flops(torch.float32)
    model, data, task = setup(8)
    ex = BatchedExecutor(model, [task])
    ref = BatchedExecutor(model, [task], fused_lora=False)  # the LoRA path computed apart, then added
    train = {"fused": lambda: ex.train(jobs_for(model, 8)), "apart": lambda: ref.train(jobs_for(model, 8))}
    train["fused"]()  # warm-up
    train["apart"]()
    train_flops, train_ops = _counted(train["fused"])
    train_s = _best_interleaved(train, 3)
    state = jobs_for(model, 1)[0].state
    n_eval = len(task.test_labels)
    evaluate = {"fused": lambda: ex.evaluate(0, state, 8, 64), "apart": lambda: ref.evaluate(0, state, 8, 64)}
    evaluate["fused"]()
    evaluate["apart"]()
    eval_flops, _ = _counted(evaluate["fused"])
    eval_s = _best_interleaved(evaluate, 3)
    peak = max(peak_start, matmul_peak_flops(torch.float32))
    step = lambda: ex.train(jobs_for(model, 8, steps=1))  # noqa: E731
    wall, by_kind = _profile(step)
    step_flops, step_ops = _counted(step)
    mm_flops = sum(v for k, v in step_ops.items() if k.split(".")[-1] in ("mm", "addmm", "bmm", "baddbmm"))
    mm_s = by_kind[KINDS[0][0]]
    return [BEGIN, "## Achieved FLOP/s against the matmul peak (`python tools/bench_train.py --efficiency "
            f"--threads {threads}`)", "",
            f"One process, {threads} threads, torch {torch.__version__}, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}. fp32 matmul peak (2048^3 torch.mm, best of 5): "
            f"**{peak / 1e9:.1f} GFLOP/s**. FLOPs counted by torch's FlopCounterMode (the matmuls; it does not count the CPU flash-attention kernel, ~3 % of the FLOPs at 64 tokens); "
            "times best of 3 (a shared machine: the load slows every figure alike; load average at the end "
            f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}).", "",
            "| workload | GFLOP | s | GFLOP/s | of the fp32 peak |", "|---|---:|---:|---:|---:|",
            *[f"| training: 8 clients x 4 steps x 16 x 64 tokens, batched (with its 2 probe passes), LoRA {how} | "
              f"{train_flops / 1e9:.0f} | {train_s[k]:.2f} | {train_flops / train_s[k] / 1e9:.1f} | "
              f"**{train_flops / train_s[k] / peak:.0%}** |" for k, how in LORA_ADD.items()],
            *[f"| evaluation: {n_eval} test tweets x 64 tokens, batch 64, inference mode, LoRA {how} | "
              f"{eval_flops / 1e9:.0f} | {eval_s[k]:.2f} | {eval_flops / eval_s[k] / 1e9:.1f} | "
              f"**{eval_flops / eval_s[k] / peak:.0%}** |" for k, how in LORA_ADD.items()], "",
            f"Fused / apart time: training {train_s['fused'] / train_s['apart']:.3f}, evaluation "
            f"{eval_s['fused'] / eval_s['apart']:.3f} (best of 3 each, interleaved). The peak is the better of "
            f"two measurements, before and after ({peak_start / 1e9:.1f} at the start).", "",
            f"Where one training step's time goes (8 clients x 1 step, probes included; torch.profiler self "
            f"time; wall {wall:.2f} s with the profiler on):", "",
            "| kind of operator | self s | share of wall |", "|---|---:|---:|",
            *[f"| {k} | {v:.2f} | {v / wall:.0%} |" for k, v in by_kind.items()],
            f"| outside any operator (Python, dispatch, profiler) | {max(0.0, wall - sum(by_kind.values())):.2f} | "
            f"{max(0.0, wall - sum(by_kind.values())) / wall:.0%} |", "",
            f"The matmuls alone run at {mm_flops / mm_s / 1e9:.1f} GFLOP/s = {mm_flops / mm_s / peak:.0%} of the peak "
            f"({mm_flops / step_flops:.0%} of the counted FLOPs); everything else is time without counted FLOPs.",
            END]


def replace_section(path: Path, section: list[str]):
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + "\n".join(section) + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    path.write_text(text)
