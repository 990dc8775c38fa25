"""Fading and block errors in a real tiny run (SUMO, channel, model, data): the transfer drains at the
faded rates while the plan and the handovers stay those of the run without fading; lyapunov_switch
gets the channel's fading in its RoundState."""
from pathlib import Path

import numpy as np
import pytest

from iovsim.config import config_from_dict
from iovsim.experiment import Experiment

from conftest import csv_rows, tiny_config

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parent / "golden" / "homolora"
PLAN = ("round", "vehicle", "task", "rsu", "rank", "local_steps", "tx_power_w", "bandwidth_hz")


def run(tmp_path, **over):
    # The golden run's config (tests/test_golden_run.py) with the radio options on top.
    cfg = config_from_dict(tiny_config(**{"seed": 11, "fl.rounds": 2, "fl.round_interval_s": 20, "name": "golden",
                                          **over}), base_dir=tmp_path)
    Experiment(cfg, tmp_path / "run").run()
    return tmp_path / "run"


def test_rayleigh_fading_changes_the_transfer_not_the_plan_or_the_handovers(tmp_path):
    out = run(tmp_path, **{"strategy.name": "homolora", "channel.fading": "rayleigh"})
    got, gold = csv_rows(out / "vehicles.csv"), csv_rows(GOLDEN / "vehicles.csv")
    first = [r for r in got if r["round"] == "1"]
    assert [tuple(r[c] for c in PLAN) for r in first] == [tuple(r[c] for c in PLAN) for r in gold if r["round"] == "1"]
    down = {r["vehicle"]: float(r["download_time_s"]) for r in first}
    down_gold = {r["vehicle"]: float(r["download_time_s"]) for r in gold if r["round"] == "1"}
    assert any(abs(down[v] - down_gold[v]) > 1e-3 * down_gold[v] for v in down)
    # The same handovers over the time both runs simulated (rounds end at other times with fading).
    cols = ("time_s", "vehicle", "from_rsu", "to_rsu", "kind")
    ho = [tuple(r[c] for c in cols) for r in csv_rows(out / "handovers.csv")]
    ho_gold = [tuple(r[c] for c in cols) for r in csv_rows(GOLDEN / "handovers.csv")]
    end = min(float(ho[-1][0]), float(ho_gold[-1][0]))
    both = [[h for h in rows if float(h[0]) <= end] for rows in (ho, ho_gold)]
    assert len(both[1]) > 10 and both[0] == both[1]


def test_lyapunov_switch_prices_the_channels_rician_fading_with_block_errors(tmp_path, monkeypatch):
    from iovsim.strategies.lyapunov import LyapunovBase

    seen = []
    real_plan = LyapunovBase._plan

    def plan(self, state):
        seen.append(state.fading_k_factor)
        return real_plan(self, state)

    monkeypatch.setattr(LyapunovBase, "_plan", plan)
    out = run(tmp_path, **{"strategy.name": "lyapunov_switch", "channel.fading": "rician", "channel.bler": "table"})
    assert len(seen) == 2 and all(k is not None and k.size for k in seen)
    # K = 10^0.9 on LOS serving links, 0 (Rayleigh) on NLOS ones.
    assert set(np.unique(np.concatenate(seen))) <= {0.0, 10 ** 0.9}
    assert {(r["round"], r["task"]) for r in csv_rows(out / "metrics.csv")} == \
        {("1", "tweets"), ("1", "bbc"), ("2", "tweets"), ("2", "bbc")}
