"""One GPU shared by a comparison's runs: each run's share of its memory, and the budgets that follow.

What a GPU does with the share (torch's per-process limit, the time-slicing) needs a GPU:
tools/bench_gpu.sh measures it. Here: the arithmetic, who passes which share to the runs, and that a
CPU is left alone.
"""
import dataclasses

import pytest
import torch

from iovsim.cli import _parse_set
from iovsim.fl.config import FlConfig
from iovsim.fl.executors import max_tokens_per_pass
from iovsim.fl.gpu_share import budgets, limit_process_memory, peak_allocated_bytes, runs_share
from iovsim.runs.driver import gpu_fraction
from iovsim.runs.plan import make_specs
from iovsim.runs.process import child_argv

GiB = 2**30


def test_a_whole_large_gpu_keeps_the_fixed_budgets():
    assert budgets(80 * GiB, 0.0) == (12 * GiB, 8 * GiB)   # half and a quarter of 80 GiB are above them
    assert budgets(80 * GiB, 1.0) == (12 * GiB, 8 * GiB)


def test_a_share_bounds_the_budgets():
    # 8 runs on an 80 GiB card: 10 GiB each, half of it for a pass's activations, a quarter for trainable state
    assert budgets(80 * GiB, 1 / 8) == (5 * GiB, int(2.5 * GiB))
    assert budgets(16 * GiB, 0.0) == (8 * GiB, 4 * GiB)          # a small card used whole
    # the pass budget then bounds the tokens: SmolLM2's 1,014,840 bytes a token (30 x 33,828) -> 5,290
    assert max_tokens_per_pass(0, torch.device("cuda"), 30 * 33_828, 5 * GiB) == 5 * GiB // (30 * 33_828) == 5290
    assert max_tokens_per_pass(0, torch.device("cuda"), 30 * 33_828) == 12_696  # no share given: as before


def test_each_run_gets_one_over_the_runs_at_once():
    assert runs_share(8, 20) == 1 / 8
    assert runs_share(8, 3) == 1 / 3      # fewer runs than jobs: as many at once as there are runs
    assert runs_share(1, 20) == 1.0


def fl(**kw):
    return dataclasses.replace(FlConfig(), **kw)


def test_compare_passes_a_share_only_for_several_gpu_runs_at_once_on_this_machine():
    assert gpu_fraction(fl(device="cuda"), 4, 20, "local") == 0.25
    assert gpu_fraction(fl(device="cuda"), 8, 2, "local") == 0.5
    assert gpu_fraction(fl(device="cpu"), 4, 20, "local") == 0.0          # a CPU run's config stays as it was
    assert gpu_fraction(fl(device="cuda"), 1, 20, "local") == 0.0         # one at a time: the whole GPU
    assert gpu_fraction(fl(device="cuda"), 4, 20, "ray") == 0.0           # Ray places its tasks itself
    assert gpu_fraction(fl(device="cuda", gpu_memory_fraction=0.3), 4, 20, "local") == 0.0  # the config's own


def test_auto_shares_only_where_there_is_a_gpu():
    expected = 0.25 if torch.cuda.is_available() else 0.0
    assert gpu_fraction(fl(device="auto"), 4, 20, "local") == expected


def test_the_share_reaches_the_run_as_a_config_value(tmp_path):
    spec = make_specs([("homolora", {"strategy.name": "homolora"})], [3], tmp_path)[0]
    argv = child_argv(spec, tmp_path / "c.yaml", {"fl.device": "cuda"}, threads=2, state="fresh", gpu_fraction=0.25)
    sets = _parse_set([argv[i + 1] for i, a in enumerate(argv) if a == "--set"])
    assert sets["fl.gpu_memory_fraction"] == 0.25 and sets["fl.threads"] == 2
    argv = child_argv(spec, tmp_path / "c.yaml", {}, threads=2, state="fresh")
    assert not any("gpu_memory_fraction" in a for a in argv)


def test_a_cpu_is_left_alone():
    limit_process_memory(torch.device("cpu"), 0.25)   # nothing to limit, nothing raised
    limit_process_memory(torch.device("cuda"), 0.0)   # 0: no limit asked for
    if not torch.cuda.is_available():
        assert peak_allocated_bytes() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_limit_refuses_more_than_the_share():
    dev = torch.device("cuda")
    total = torch.cuda.get_device_properties(dev).total_memory
    limit_process_memory(dev, 0.05)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(total * 0.1), dtype=torch.uint8, device=dev)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, dev)
