"""iovsim shortens libgomp's spinning at barriers to 3,000 turns before torch loads, unless the user chose.

libgomp reports the spin count it took from the environment with OMP_DISPLAY_ENV=verbose (on stderr,
when torch loads it): 300,000 by default, 0 under OMP_WAIT_POLICY=PASSIVE; what this checks is what
libgomp read.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")


def spin_count(code: str, **env) -> int:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, "OMP_DISPLAY_ENV": "verbose", **env},
                         capture_output=True, text=True, check=True)
    m = re.search(r"GOMP_SPINCOUNT = '(\d+)'", out.stderr)
    if m is None:
        pytest.skip("torch's OpenMP runtime is not libgomp (no GOMP_SPINCOUNT in OMP_DISPLAY_ENV)")
    return int(m.group(1))


def test_torch_loaded_through_iovsim_spins_briefly():
    assert spin_count("import iovsim.fl.train") == 3000
    # the control: torch loaded before iovsim keeps libgomp's default spinning
    assert spin_count("import torch, iovsim") == 300_000


def test_the_users_choice_wins():
    assert spin_count("import iovsim.fl.train", OMP_WAIT_POLICY="ACTIVE") > 300_000
    assert spin_count("import iovsim.fl.train", GOMP_SPINCOUNT="1234") == 1234
    assert spin_count("import iovsim.fl.train", OMP_WAIT_POLICY="PASSIVE") == 0
