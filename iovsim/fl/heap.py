"""Freed memory goes back to the operating system (glibc malloc), so a run's RSS follows what it holds.

torch allocates CPU tensors with plain malloc. glibc serves a block larger than its mmap threshold
with its own mmap and unmaps it on free, but it raises that threshold to the size of every such
block freed (up to 32 MiB). After the first training pass, every activation of a pass (3-50 MiB)
is therefore carved out of the heap; once freed it stays in the process, fragmented, and the next
pass adds more: on the default run that is 0.6-1 GiB of RSS the run no longer uses
(tools/bench_memory.py). A fixed threshold stops the adjustment: blocks of a MiB and more are
mapped and returned on free. The tokenizer leaves ~150 MiB of freed small blocks in the heaps of
its threads; `trim_heap` hands those back once the tasks are tokenized.

Both are no-ops where the C library is not glibc (musl, macOS), and `return_freed_memory` leaves a
threshold the user set through `MALLOC_MMAP_THRESHOLD_` alone. Neither changes a computed number.
"""
from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20
"""Blocks at least this large are mmapped and unmapped on free: every activation tensor of a
training pass (>= 1,024 tokens x 384 x 4 bytes = 1.5 MiB), but not the many small ones."""
MIN_MMAP_THRESHOLD_BYTES = 128 << 10
"""The lowest threshold smaller passes set (a causal LM's, `executors.pass_mmap_threshold`)."""


def _glibc():
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def return_freed_memory(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold_bytes` for this process; True when it was set."""
    libc = _glibc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)))


def trim_heap() -> bool:
    """Give the free pages of every malloc heap back to the operating system; True when some were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
