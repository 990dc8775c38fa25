"""`python -m iovsim.runs.child run ...`: the `iovsim` command, ending when the process that started it ends.

A comparison killed mid-way must not leave its runs writing on in the background (a re-run would
race them for the same folders), so on Linux the child asks the kernel for SIGTERM when its parent
dies. Checkpoints appear whole or not at all, so a run stopped this way resumes from its last one.
"""
from __future__ import annotations

import os
import signal
import sys


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    expected = os.environ.get("IOVSIM_PARENT_PID")
    if expected and os.getppid() != int(expected):  # the parent died before prctl took effect
        sys.exit(143)


def main() -> int:
    _die_with_parent()
    from iovsim.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
