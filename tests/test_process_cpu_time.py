"""process.json records each attempt's CPU seconds (the child's rusage) beside its wall seconds: a run
that waits is told apart from a run that works."""
import sys

import pytest

from iovsim.runs.process import _spawn_and_reap

pytestmark = pytest.mark.skipif(not hasattr(__import__("os"), "wait4"), reason="rusage of one child needs os.wait4")


def test_a_working_child_has_cpu_seconds_a_sleeping_one_has_none(tmp_path):
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    work = _spawn_and_reap([sys.executable, "-c", busy], tmp_path / "busy.log")
    wait = _spawn_and_reap([sys.executable, "-c", "import time; time.sleep(0.5)"], tmp_path / "sleep.log")
    assert work["returncode"] == 0 and wait["returncode"] == 0
    assert work["cpu_time_s"] >= 0.5                 # the loop's own 0.5 s, plus the interpreter's start
    assert wait["wall_time_s"] >= 0.5
    assert wait["cpu_time_s"] < 0.4                  # the start only: sleeping is not work
