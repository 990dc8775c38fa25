"""A user's strategy from a Python file plugs in through the config (the README's example)."""
import csv
from pathlib import Path

import pytest

from iovsim.config import ConfigError, config_from_dict, load_config
from iovsim.experiment import Experiment

from conftest import tiny_config

EXAMPLE = Path(__file__).resolve().parents[1] / "sumo_scenarios" / "examples" / "greedy_rate.py"


@pytest.mark.slow
def test_example_strategy_runs_end_to_end(tmp_path):
    cfg = config_from_dict(tiny_config(**{"strategy.name": f"{EXAMPLE}:GreedyRate", "strategy.params": {"margin": 2.0},
                                          "fl.rounds": 1}), base_dir=tmp_path)
    Experiment(cfg, tmp_path / "run").run()
    with open(tmp_path / "run" / "strategy.csv") as f:
        assert any(r["name"] == "lost_so_far" for r in csv.DictReader(f))
    with open(tmp_path / "run" / "vehicles.csv") as f:
        ranks = {int(r["rank"]) for r in csv.DictReader(f)}
    assert ranks and ranks <= set(cfg.fl.lora_ranks)


def test_example_config_loads():
    cfg = load_config(EXAMPLE.with_suffix(".yaml"))
    assert cfg.strategy.name.endswith(":GreedyRate")


def test_unknown_strategy_names_config_field(tmp_path):
    cfg = config_from_dict(tiny_config(**{"strategy.name": "no_such_strategy"}), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="'strategy'.*unknown strategy 'no_such_strategy'"):
        Experiment(cfg, tmp_path / "run").run()
    assert not (tmp_path / "run" / "metrics.csv").exists()
