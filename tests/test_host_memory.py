"""retain_freed_memory: repeated passes over the same activation sizes touch no fresh pages (glibc)."""
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's mallopt only")

# Passes of activation-like blocks (MiB; each written, freed last-first as a backward does): the page
# faults of passes 3 to 5. Each mode in a fresh process (the thresholds are process-wide). glibc's own
# thresholds move with the blocks it has seen, so the reference that must fault is its static
# default, fixed (128 KiB mmap and trim thresholds: freed memory goes back to the kernel at once).
PASSES = """
import ctypes, resource, sys, torch
from iovsim.fl.host_memory import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory() and retain_freed_memory()
else:
    libc = ctypes.CDLL("libc.so.6")
    assert libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 and libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1
def one_pass():
    blocks = [torch.empty(mib * 2**20 // 4).fill_(1.0) for mib in [12, 3, 3, 12, 1] * 8]
    while blocks:
        blocks.pop()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
one_pass()
one_pass()
before = faults()
for _ in range(3):
    one_pass()
print(faults() - before)
"""
PAGES = 3 * 31 * 8 * 2**20 // 4096  # 3 passes of 248 MiB in 4 KiB pages: 190,464


def late_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PASSES, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_memory_handed_back_faults_on_every_pass():
    assert late_faults("hand_back") > PAGES * 9 // 10


def test_retained_memory_is_reused_without_page_faults():
    assert late_faults("retain") < PAGES // 100
