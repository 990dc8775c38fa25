"""Achieved FLOP/s of training and of evaluation against the machine's fp32 matmul peak, and where the gap is.

Used by `python tools/bench_train.py --efficiency [--threads N]`, which writes the section between the
markers below into tools/results/bench_train.md. In one process, at one thread count:

- the peak: a 2048^3 fp32 torch.mm, best of 5;
- training: the batched executor as `fl.executor: batched` builds it on a CPU (2,048 tokens a pass) on
  8 clients x 4 AdamW steps x batch 16 tweets padded to 64 tokens (bench_train.py's workload), over
  the whole call (the two probe passes included);
- evaluation: the batched executor's evaluate on the workload's test tweets (100) padded to 64 tokens, batch 64;
- FLOPs: torch's FlopCounterMode plus the CPU flash-attention kernel's matmuls (tools/flop_count.py);
- both timed in two memory modes in turns, best of 3: freed memory retained for the next pass (the
  executor's default on a CPU, iovsim/fl/host_memory.py) and handed back at once (glibc's static
  defaults), with the page faults of the timed call: the same numbers, side by side;
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


def _counted(fn) -> tuple[float, dict]:
    from flop_count import counter as flop_counter

    counter = flop_counter()
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


MEMORY = {"retained": "freed memory kept for the next pass (the executor's default on a CPU)",
          "handed back": "freed memory handed back at once (glibc's static defaults: every pass page-faults)"}


def _memory(mode: str):
    """Set the process's glibc thresholds for `mode` (see iovsim/fl/host_memory.py)."""
    import ctypes

    from iovsim.fl import host_memory as hm

    libc = ctypes.CDLL("libc.so.6")
    if mode == "retained":
        libc.mallopt(hm.M_MMAP_THRESHOLD, hm.MMAP_THRESHOLD_BYTES)
        libc.mallopt(hm.M_TRIM_THRESHOLD, hm.TRIM_THRESHOLD_BYTES)
    else:
        libc.mallopt(hm.M_MMAP_THRESHOLD, 128 * 1024)
        libc.mallopt(hm.M_TRIM_THRESHOLD, 128 * 1024)
        libc.malloc_trim(0)


def _faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _measured(fns: dict, reps: int) -> tuple[dict, dict]:
    """Best time and page faults (of that best call) of each memory mode's call, run in turns."""
    best, faults = {k: float("inf") for k in fns}, {}
    for i in range(reps):
        for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            _memory(k)
            fns[k]()  # a pass to settle the heap in this mode
            f0, t0 = _faults(), time.perf_counter()
            fns[k]()
            dt = time.perf_counter() - t0
            if dt < best[k]:
                best[k], faults[k] = dt, _faults() - f0
    _memory("retained")
    return best, faults


def _rows(what: str, flops: float, best: dict, faults: dict, peak: float) -> list[str]:
    return [f"| {what}, {MEMORY[k]} | {flops / 1e9:.0f} | {best[k]:.2f} | {faults[k]:,} | "
            f"{flops / best[k] / 1e9:.1f} | **{flops / best[k] / peak:.0%}** |" for k in MEMORY]


def efficiency_section(threads: int, setup, jobs_for, matmul_peak_flops) -> list[str]:
    from iovsim.fl.batched import BatchedExecutor
    from iovsim.fl.executors import max_tokens_per_pass

    torch.set_num_threads(threads)
    peak_start = matmul_peak_flops(torch.float32)
    model, data, task = setup(8)
    tokens = max_tokens_per_pass(0, model.device)  # as make_executor builds it (2,048 tokens a pass on a CPU)
    ex = BatchedExecutor(model, [task], max_tokens=tokens)
    train_fn = lambda: ex.train(jobs_for(model, 8))  # noqa: E731
    train_fn()  # warm-up
    train_flops, counted_ops = _counted(train_fn)
    attn_flops = sum(v for k, v in counted_ops.items() if "attention" in k)
    train_s, train_faults = _measured({k: train_fn for k in MEMORY}, 3)
    state = jobs_for(model, 1)[0].state
    n_eval = len(task.test_labels)
    eval_fn = lambda: ex.evaluate(0, state, 8, 64)  # noqa: E731
    eval_flops, _ = _counted(eval_fn)
    eval_s, eval_faults = _measured({k: eval_fn for k in MEMORY}, 3)
    peak = max(peak_start, matmul_peak_flops(torch.float32))
    step = lambda: ex.train(jobs_for(model, 8, steps=1))  # noqa: E731
    step()
    wall, by_kind = _profile(step)
    step_flops, step_ops = _counted(step)
    mm_flops = sum(v for k, v in step_ops.items() if k.split(".")[-1] in ("mm", "addmm", "bmm", "baddbmm"))
    mm_s = by_kind[KINDS[0][0]]
    return [BEGIN, "## Achieved FLOP/s against the matmul peak (`python tools/bench_train.py --efficiency "
            f"--threads {threads}`)", "",
            f"One process, {threads} threads, torch {torch.__version__}, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}. fp32 matmul peak (2048^3 torch.mm, best of 5, the better "
            f"of a measurement before and after; {peak_start / 1e9:.1f} before): **{peak / 1e9:.1f} GFLOP/s**. "
            "FLOPs counted by torch's FlopCounterMode plus the matmuls of the CPU flash-attention kernel, which it "
            "does not count (`tools/flop_count.py`: Q K^T and P V forward, dV dP dQ dK backward, the count of "
            f"the math backend's matmuls; {attn_flops / train_flops:.1%} of the training FLOPs). The executor "
            f"as `fl.executor: batched` builds it on a CPU ({tokens:,} tokens a pass). Times best of 3, the two "
            "memory modes in turns (each timed call after one in the same mode); page faults: minor faults of "
            "the timed call. A shared machine: the load slows every figure alike (load average at the end "
            f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}).", "",
            "| workload | GFLOP | s | page faults | GFLOP/s | of the fp32 peak |", "|---|---:|---:|---:|---:|---:|",
            *_rows("training: 8 clients x 4 steps x 16 x 64 tokens, batched (with its 2 probe passes)",
                   train_flops, train_s, train_faults, peak),
            *_rows(f"evaluation: {n_eval} test tweets x 64 tokens, batch 64, inference mode",
                   eval_flops, eval_s, eval_faults, peak), "",
            f"Retained / handed back time: training {train_s['retained'] / train_s['handed back']:.3f}, evaluation "
            f"{eval_s['retained'] / eval_s['handed back']:.3f}.", "",
            f"Where one training step's time goes (8 clients x 1 step, probes included, memory retained; "
            f"torch.profiler self time; wall {wall:.2f} s with the profiler on):", "",
            "| kind of operator | self s | share of wall |", "|---|---:|---:|",
            *[f"| {k} | {v:.2f} | {v / wall:.0%} |" for k, v in by_kind.items()],
            f"| outside any operator (Python, dispatch, profiler) | {max(0.0, wall - sum(by_kind.values())):.2f} | "
            f"{max(0.0, wall - sum(by_kind.values())) / wall:.0%} |", "",
            f"The matmuls alone run at {mm_flops / mm_s / 1e9:.1f} GFLOP/s = {mm_flops / mm_s / peak:.0%} of the peak "
            f"({mm_flops / step_flops:.0%} of the counted FLOPs, the rest is attention's); the other operators "
            "are time without counted FLOPs.",
            END]


def replace_section(path: Path, section: list[str]):
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + "\n".join(section) + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    path.write_text(text)
