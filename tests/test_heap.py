"""fl/heap.py: after a training-like pass, the memory torch freed leaves the process (glibc Linux).

Measured in a fresh process (the mmap threshold is process-wide): 24 frozen linear layers over
4,096 x 384 activations, forward and backward, three times; RSS is compared before and after.
Without `return_freed_memory` glibc keeps ~300 MiB of it in its heap (the threshold rises to the
size of the first freed block); with it, the process returns to within a few MiB.
"""
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys
    from iovsim.fl.heap import return_freed_memory
    tuned = sys.argv[1] == "1" and return_freed_memory()
    import torch
    torch.set_num_threads(1)
    def rss():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))
    lin = torch.nn.Linear(384, 384).requires_grad_(False)
    before = rss()
    for _ in range(3):
        x = torch.randn(4096, 384, requires_grad=True)
        h = x
        for _ in range(24):
            h = torch.nn.functional.gelu(lin(h))
        h.sum().backward()
        del x, h
    print(int(tuned), rss() - before)
""")


def retained_mib(tuned: bool) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if tuned else "0"], capture_output=True, text=True,
                         check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    flag, grown = out.stdout.split()
    return flag == "1", int(grown) / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc and /proc are Linux's")
def test_freed_activations_leave_the_process():
    tuned, grown = retained_mib(True)
    if not tuned:
        pytest.skip("not glibc, or MALLOC_MMAP_THRESHOLD_ set by the user")
    assert grown < 48, f"{grown:.0f} MiB kept after the passes"


def test_nothing_happens_where_the_user_set_the_threshold(monkeypatch):
    from iovsim.fl.heap import return_freed_memory

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert return_freed_memory() is False
