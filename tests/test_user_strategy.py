"""A user's strategy from a Python file plugs in through the config (the README's example)."""
import csv
import json
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
    with pytest.raises(ConfigError, match="'strategy.name'.*unknown strategy 'no_such_strategy'"):
        Experiment(cfg, tmp_path / "run").run()
    assert not (tmp_path / "run").exists()  # the strategy loads first: nothing is written


FLAKY = '''from iovsim.strategies.homolora import HomoLoRA


class Flaky(HomoLoRA):
    fail_from = {fail_from}

    def configure(self, state):
        if state.round_index >= self.fail_from:
            raise RuntimeError("planned failure in round %d" % state.round_index)
        return super().configure(state)
'''


def _flaky_config(tmp_path, fail_from: int, rounds: int):
    """A tiny config whose user strategy raises in `configure` from round `fail_from` on (line 9)."""
    import yaml

    (tmp_path / "flaky.py").write_text(FLAKY.format(fail_from=fail_from))
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(**{"strategy.name": "flaky.py:Flaky", "fl.rounds": rounds})))
    return cfg


def _tree(root: Path) -> dict:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_strategy_raising_mid_run_is_one_line_at_its_line_and_keeps_the_checkpoint(tmp_path, capfd):
    from iovsim.cli import main

    cfg, run = _flaky_config(tmp_path, fail_from=2, rounds=2), tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(run), "--quiet"]) == 2
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert f"{tmp_path / 'flaky.py'}:9: RuntimeError: planned failure in round 2 (in configure)" in err[0]
    assert "round_0001" in err[0] and f"--resume {run}" in err[0] and "Traceback" not in err[0]
    # What round 1 wrote stays: its metrics and its checkpoint (loadable, round 1).
    assert {r["round"] for r in csv.DictReader(open(run / "metrics.csv"))} == {"1"}
    state = json.loads((run / "checkpoints" / "round_0001" / "state.json").read_text())
    assert state["round"] == 1 and not (run / "checkpoints" / "round_0002").exists()
    from safetensors.torch import load_file

    assert load_file(str(run / "checkpoints" / "round_0001" / "tweets.safetensors"))
    # A second failing attempt (resume) leaves the checkpoint byte-identical.
    before = _tree(run / "checkpoints")
    assert main(["run", "--resume", str(run), "--quiet"]) == 2
    assert len([ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]) == 1
    assert _tree(run / "checkpoints") == before


@pytest.mark.slow
def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_over(tmp_path, capfd):
    """The interrupted run, fixed and resumed, ends with the same metrics as a fresh run."""
    from iovsim.cli import main

    cfg, run = _flaky_config(tmp_path, fail_from=1, rounds=1), tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(run), "--quiet"]) == 2
    capfd.readouterr()
    assert (run / "config.yaml").exists() and not (run / "checkpoints").exists()
    (tmp_path / "flaky.py").write_text(FLAKY.format(fail_from=99))            # the user fixes the strategy
    assert main(["run", "--resume", str(run)]) == 0
    out = capfd.readouterr()
    said = " ".join(out.out.split())  # rich wraps long lines at the console width
    assert f"{run}: no checkpoint yet (stopped before its first one); starting the run over" in said
    assert not out.err.strip()
    assert (run / "checkpoints" / "round_0001" / "state.json").exists()
    fresh = tmp_path / "fresh"
    assert main(["run", str(cfg), "--out", str(fresh), "--quiet"]) == 0
    assert (run / "metrics.csv").read_text() == (fresh / "metrics.csv").read_text()
    assert (run / "vehicles.csv").read_text() == (fresh / "vehicles.csv").read_text()
