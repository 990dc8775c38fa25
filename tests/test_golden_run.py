"""A tiny real run (SUMO, model, data) must write the committed golden logs, on any CPU.

The golden files pin the behaviour of the whole round loop (mobility, channel, plan, transfer,
training, aggregation, evaluation, logging): a refactor must leave them unchanged. They were written
on one CPU; on another (AVX2, AVX-512, arm64) numpy and torch round differently in the last bits, so
discrete columns must be equal and floats agree within the tolerances stated in
`golden_compare.py`. On one machine the same run twice is byte-identical (tested here too). A
change that is meant to change behaviour regenerates the files and commits them with it:

    IOVSIM_REGEN_GOLDEN=1 python -m pytest tests/test_golden_run.py

(the test then writes tests/golden/<strategy>/*.csv and skips). Review the diff of the CSVs before committing.
"""
import os
import shutil
from pathlib import Path

import pytest

from iovsim.config import config_from_dict
from iovsim.experiment import Experiment

from conftest import tiny_config
from golden_compare import compare_csv, identical_bytes

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = ("metrics.csv", "handovers.csv", "vehicles.csv")
# acc_after is scored on a vehicle's held-out probe, at least one batch (fl.train.probe_size): 8 here.
PROBE_MIN = {"acc_after": 8}


def golden_config(base_dir, strategy: str):
    # Its own seed and an idle gap between rounds, so that handovers and lost updates show up.
    over = {"seed": 11, "fl.rounds": 2, "fl.round_interval_s": 20, "name": "golden", "strategy.name": strategy}
    return config_from_dict(tiny_config(**over), base_dir=base_dir)


# homolora: FedAvg of equal ranks; hetlora: per-vehicle ranks, zero-padding, sparsity weights.
@pytest.mark.parametrize("strategy", ["homolora", "hetlora"])
def test_tiny_run_matches_golden_files(tmp_path, strategy):
    run = tmp_path / "run"
    Experiment(golden_config(tmp_path, strategy), run).run()
    golden = GOLDEN / strategy
    if os.environ.get("IOVSIM_REGEN_GOLDEN") == "1":
        golden.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(run / name, golden / name)
        pytest.skip(f"golden files regenerated in {golden}; review and commit them")
    mismatches = [m for name in FILES for m in compare_csv(run / name, golden / name, PROBE_MIN)]
    assert not mismatches, f"{len(mismatches)} cells differ from {golden}:\n" + "\n".join(map(str, mismatches[:20]))


def test_the_same_run_twice_on_one_machine_is_byte_identical(tmp_path):
    """Same config, same seed, same machine: every log byte for byte (no tolerance needed here)."""
    for name in ("a", "b"):
        Experiment(golden_config(tmp_path, "hetlora"), tmp_path / name).run()
    diffs = [d for f in FILES + ("strategy.csv", "dwell.csv")
             if (d := identical_bytes(tmp_path / "a" / f, tmp_path / "b" / f))]
    assert not diffs, diffs
