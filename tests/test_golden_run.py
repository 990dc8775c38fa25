"""A tiny real run (SUMO, model, data) must write byte-identical logs to the committed golden files.

The golden files pin the behaviour of the whole round loop (mobility, channel, plan, transfer,
training, aggregation, evaluation, logging): a refactor must leave them unchanged. A change that
is meant to change behaviour regenerates them and commits the new files with it:

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

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = ("metrics.csv", "handovers.csv", "vehicles.csv")


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
    for name in FILES:
        assert (run / name).read_bytes() == (golden / name).read_bytes(), f"{name} differs from {golden / name}"
