"""Achieved FLOP/s of training and of evaluation against the machine's fp32 matmul peak, and where the gap is.

Used by `python tools/bench_train.py --efficiency [--threads N]`, which writes the section between the
markers below into tools/results/bench_train.md. In one process, at one thread count:

- the peak: a 2048^3 fp32 torch.mm, best of 5;
- training: the batched executor as `fl.executor: batched` builds it on a CPU (2,048 tokens a pass), on
  8 clients x 4 AdamW steps x batch 16 tweets padded to 64 tokens (bench_train.py's workload), over
  the whole call (the two probe passes included);
- evaluation: the batched executor's evaluate on the workload's test tweets (100) padded to 64 tokens, batch 64;
- FLOPs: torch's FlopCounterMode plus the CPU flash-attention kernel's matmuls (tools/flop_count.py);
- training also at 8,192 tokens a pass (as this benchmark ran before), in turns with the default:
  best of 3, wall and CPU time (this process's time on a core: the load taken out of the peak and
  the workload alike), with the page faults of the best call;
- a torch.profiler table of one training step (8 clients, 1 step, probes included): self time by kind of
  operator (matmuls, attention, layer norm, GELU, element-wise and copies, optimizer), the matmuls' own
  FLOP/s, and the wall time not spent inside any operator (Python and dispatch).
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
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


def _faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _interleaved(fns: dict, reps: int) -> dict:
    """Per function, run in turns (A B, B A, ...): best wall time, best CPU time (this process's time on
    a CPU), and the minor page faults of the best-wall call."""
    best = {k: [float("inf"), float("inf"), 0] for k in fns}
    for i in range(reps):
        for k in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            f0, c0, t0 = _faults(), time.process_time(), time.perf_counter()
            fns[k]()
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            b = best[k]
            b[1] = min(b[1], cpu)
            if dt < b[0]:
                b[0], b[2] = dt, _faults() - f0
    return best


def cpu_time_peak(n: int = 2048, reps: int = 5) -> float:
    """The fp32 matmul peak per second of this process's CPU time (a 2048^3 torch.mm, best of `reps`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        c0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - c0)
    return 2 * n**3 / best


PREVIOUS_TOKENS = 8192  # the pass size this benchmark used before (BatchedExecutor's own default)


def measure(threads: int, setup, jobs_for, reps: int = 3) -> tuple[dict, dict]:
    """Training and evaluation of the workload at the executor's CPU pass size and at PREVIOUS_TOKENS,
    in turns: {(what, tokens): [wall s, CPU s, faults]}, and the counted FLOPs and default executor."""
    from iovsim.fl.batched import BatchedExecutor
    from iovsim.fl.executors import max_tokens_per_pass

    torch.set_num_threads(threads)
    model, data, task = setup(8)
    tokens = max_tokens_per_pass(0, model.device)  # as make_executor builds it (2,048 tokens a pass on a CPU)
    exs = {t: BatchedExecutor(model, [task], max_tokens=t) for t in (tokens, PREVIOUS_TOKENS)}
    state = jobs_for(model, 1)[0].state
    fns = {}
    for t, ex in exs.items():
        fns[("train", t)] = functools.partial(lambda e: e.train(jobs_for(model, 8)), ex)
    fns[("eval", tokens)] = lambda: exs[tokens].evaluate(0, state, 8, 64)  # cut by batch_size, not tokens
    for fn in fns.values():
        fn()  # warm-up
    info = {"tokens": tokens, "n_eval": len(task.test_labels), "model": model, "ex": exs[tokens]}
    info["train_flops"], info["train_ops"] = _counted(fns[("train", tokens)])
    info["eval_flops"], _ = _counted(fns[("eval", tokens)])
    info["load"] = os.getloadavg()[0]
    times = {**_interleaved({k: f for k, f in fns.items() if k[0] == "train"}, reps),
             **_interleaved({k: f for k, f in fns.items() if k[0] == "eval"}, reps)}
    info["load_end"] = os.getloadavg()[0]
    return times, info


def _rows(times: dict, info: dict, peak: float, cpu_peak: float) -> list[str]:
    work = {"train": "training: 8 clients x 4 steps x 16 x 64 tokens, batched (with its 2 probe passes)",
            "eval": f"evaluation: {info['n_eval']} test tweets x 64 tokens, batch 64, inference mode"}
    rows = []
    for k, what in work.items():
        fl = info[k + "_flops"]
        for t in [t for t in (info["tokens"], PREVIOUS_TOKENS) if (k, t) in times]:
            wall, cpu, faults = times[(k, t)]
            how = "the executor's CPU default" if t == info["tokens"] else "as this benchmark ran before"
            rows.append(f"| {what}; {t:,} tokens a pass ({how}) | {fl / 1e9:.0f} | {wall:.2f} | {cpu:.2f} | "
                        f"{faults:,} | {fl / wall / 1e9:.1f} | **{fl / wall / peak:.0%}** | **{fl / cpu / cpu_peak:.0%}** |")
    return rows


def efficiency_section(threads: int, setup, jobs_for, matmul_peak_flops) -> list[str]:
    torch.set_num_threads(threads)
    peak_start, cpu_peak_start = matmul_peak_flops(torch.float32), cpu_time_peak()
    times, info = measure(threads, setup, jobs_for)
    ex, model = info["ex"], info["model"]
    peak, cpu_peak = max(peak_start, matmul_peak_flops(torch.float32)), max(cpu_peak_start, cpu_time_peak())
    attn = sum(v for k, v in info["train_ops"].items() if "attention" in k)
    step = lambda: ex.train(jobs_for(model, 8, steps=1))  # noqa: E731
    step()
    wall, by_kind = _profile(step)
    step_flops, step_ops = _counted(step)
    mm_flops = sum(v for k, v in step_ops.items() if k.split(".")[-1] in ("mm", "addmm", "bmm", "baddbmm"))
    mm_s = by_kind[KINDS[0][0]]
    rest = max(0.0, wall - sum(by_kind.values()))
    return [BEGIN, "## Achieved FLOP/s against the matmul peak (`python tools/bench_train.py --efficiency "
            f"--threads {threads}`)", "",
            f"{threads} threads, torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}. "
            f"fp32 matmul peak (2048^3 torch.mm, best of 5, the better of a measurement before and after; "
            f"{peak_start / 1e9:.1f} before): **{peak / 1e9:.1f} GFLOP/s**. FLOPs counted by torch's FlopCounterMode "
            "plus the matmuls of the CPU flash-attention kernel, which it does not count (`tools/flop_count.py`: "
            "Q K^T and P V forward, dV dP dQ dK backward, the math backend's count; "
            f"{attn / info['train_flops']:.1%} of the training FLOPs). The executor as `fl.executor: batched` builds "
            f"it on a CPU ({info['tokens']:,} tokens a pass; training also at {PREVIOUS_TOKENS:,}, as this "
            "benchmark ran before, in turns with it; evaluation passes are cut by batch size), best of 3 after a warm-up call; page faults: minor faults of the "
            "best call. A shared machine: the load slows every figure alike (1-minute load average "
            f"{info['load']:.2f} at the start of the timed calls, {info['load_end']:.2f} at their end).", "",
            f"The same peak per second of the process's CPU time: {cpu_peak / 1e9:.1f} GFLOP/s. The last column "
            "divides by CPU time, not wall time: at 1 thread it leaves out the time the process waited for a "
            "core held by another process (the load), in the peak and in the workload alike.", "",
            "| workload | GFLOP | s (wall) | s (CPU) | page faults | GFLOP/s (wall) | of the fp32 peak (wall) "
            "| of the fp32 peak (CPU time) |", "|---|---:|---:|---:|---:|---:|---:|---:|",
            *_rows(times, info, peak, cpu_peak), "",
            f"Where one training step's time goes (8 clients x 1 step, probes included; torch.profiler self "
            f"time; wall {wall:.2f} s with the profiler on):", "",
            "| kind of operator | self s | share of wall |", "|---|---:|---:|",
            *[f"| {k} | {v:.2f} | {v / wall:.0%} |" for k, v in by_kind.items()],
            f"| outside any operator (Python, dispatch, profiler) | {rest:.2f} | {rest / wall:.0%} |", "",
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

