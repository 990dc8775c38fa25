"""Keep freed host memory for reuse (Linux, glibc): training on a CPU should not page-fault its activations.

A training pass allocates its activations (MiniLM, 2,048 tokens: ~200 MiB in blocks of up to 12 MiB)
and frees them after its backward; the next pass asks for the same sizes again. With glibc's
defaults the freed top of the heap is handed back to the kernel as soon as more than twice the
(dynamic) mmap threshold is free, and blocks above that threshold are mmap'ed and unmapped each
time, so every pass touches fresh pages: the first write of each 4 KiB page is a page fault that
zeroes it. Measured on the 1-thread benchmark workload: ~3.7 million faults (~15 GB of first
touches) per training call of 8 clients x 4 steps, which made memory-bound kernels (GELU,
addmm's bias copy, layer norm) several times slower than on reused memory
(tools/results/bench_train.md, "Achieved FLOP/s").

`retain_freed_memory()` fixes both thresholds (mallopt): blocks up to MMAP_THRESHOLD_BYTES come
from the heap, and up to TRIM_THRESHOLD_BYTES of freed memory stays mapped for the next pass. It
changes where tensors live, never what is computed (torch's CPU allocator aligns its blocks itself).
The process's resident memory then stays near its high-water mark instead of falling back between
passes. Elsewhere (macOS, musl, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD_BYTES = 32 * 2**20
"""glibc's largest allowed mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): a 2,048-token pass's
largest activation (2,048 x 1,536 fp32, 12 MiB) is below it."""
TRIM_THRESHOLD_BYTES = 2**30
"""Freed memory kept mapped at the top of the heap: several passes' activations."""

_applied = False


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process; whether they are in force."""
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    _applied = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
    return _applied
