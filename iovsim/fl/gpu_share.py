"""One GPU shared by several runs: each run's process keeps to its share of the GPU's memory.

`iovsim compare` / `sweep --jobs K` start K runs at once, each its own process with its own CUDA
context, model copy and caching allocator; the GPU time-slices between them. Without a bound, each
process's allocator would keep what its largest pass ever needed, and K of them could together ask for
more than the card has. With `fl.gpu_memory_fraction` = f, torch refuses a process more than f of the
card (`torch.cuda.set_per_process_memory_fraction`), and the batched executor plans its passes and
job groups within that share (`budgets`), so that it never asks for what it may not have.
"""
from __future__ import annotations

GPU_PASS_BYTES = 12 * 2**30
"""Activations a GPU pass may keep for its backward, by the cost model's count (fp32): above MiniLM's
65,536 tokens (9.7 GB by the count). At most PASS_SHARE of what the process may use (`budgets`)."""
GPU_TRAINABLE_BYTES = 8 * 2**30
"""Trainable state (adapters, heads, gradients, AdamW moments) of the jobs a GPU trains at once
(`batched.job_groups`). At most TRAINABLE_SHARE of what the process may use (`budgets`)."""
PASS_SHARE = 0.5
TRAINABLE_SHARE = 0.25
"""Together three quarters of the process's share: the rest is for the CUDA context, the frozen
model, the evaluation's batches and the allocator's slack. On an 80 GiB card used whole the fixed
budgets above stay the bounds (12 and 8 GiB, below 40 and 20)."""


def budgets(total_bytes: float, fraction: float) -> tuple[int, int]:
    """(pass bytes, trainable bytes) for a process that may use `fraction` of a GPU of `total_bytes`
    (0: all of it)."""
    share = float(total_bytes) * (fraction if fraction > 0 else 1.0)
    return int(min(GPU_PASS_BYTES, PASS_SHARE * share)), int(min(GPU_TRAINABLE_BYTES, TRAINABLE_SHARE * share))


def device_budgets(device, fraction: float) -> tuple[int, int]:
    """`budgets` for a torch CUDA device (its total memory as the driver reports it)."""
    import torch

    return budgets(torch.cuda.get_device_properties(device).total_memory, fraction)


def limit_process_memory(device, fraction: float) -> None:
    """Keep this process's allocations on `device` to `fraction` of its memory (0: no limit; a CPU: nothing)."""
    if getattr(device, "type", str(device)) != "cuda" or not fraction:
        return
    import torch

    if torch.cuda.is_available():  # else loading the model onto `device` says what is wrong
        torch.cuda.set_per_process_memory_fraction(float(fraction), device)


def runs_share(jobs: int, runs: int) -> float:
    """Each run's share when `jobs` runs at a time (of `runs` in all) share one GPU: 1/K, K = how many
    run at once."""
    return 1.0 / max(1, min(int(jobs), int(runs)))


def peak_allocated_bytes() -> int | None:
    """Most bytes this process's tensors held on the GPU at once (torch.cuda.max_memory_allocated);
    None where CUDA was never used in this process."""
    import sys

    torch = sys.modules.get("torch")  # never imports torch (nor initialises CUDA) just to ask
    if torch is None or not torch.cuda.is_initialized():
        return None
    return int(torch.cuda.max_memory_allocated())
