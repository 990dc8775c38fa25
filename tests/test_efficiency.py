"""Traffic and energy efficiency from vehicles.csv rows, against a hand computation, and where they land
(summary.json of a real run, the statistics across seeds)."""
import json

import pytest

from iovsim.engine.efficiency import traffic

ROWS = [  # as csv.DictReader gives them: strings; an empty cell counts 0
    {"status": "ok", "bits_up": "8e6", "bits_down": "4e6", "energy_j": "2"},
    {"status": "lost_handover", "bits_up": "2e6", "bits_down": "4e6", "energy_j": "1.5"},
    {"status": "migrated", "bits_up": "8e6", "bits_down": "", "energy_j": "0.5"},
]


def test_traffic_by_hand():
    t = traffic(ROWS)
    assert t["uplink_mb"] == pytest.approx(18e6 / 8e6)       # every bit sent, lost ones too
    assert t["downlink_mb"] == pytest.approx(8e6 / 8e6)
    assert t["delivered_mb"] == pytest.approx(16e6 / 8e6)    # ok + migrated
    assert t["device_energy_j"] == pytest.approx(4.0)
    assert t["delivered_bits_per_j"] == pytest.approx(16e6 / 4.0)
    assert traffic([])["delivered_bits_per_j"] == 0.0


@pytest.mark.slow
def test_summary_and_seed_statistics_carry_the_traffic(tmp_path):
    import csv

    from iovsim.config import config_from_dict
    from iovsim.experiment import Experiment
    from iovsim.runs.stats import run_values

    from conftest import tiny_config

    run = tmp_path / "run"
    Experiment(config_from_dict(tiny_config(**{"fl.rounds": 1}), base_dir=tmp_path), run).run()
    rows = list(csv.DictReader(open(run / "vehicles.csv", newline="")))
    expect = traffic(rows)
    assert expect["uplink_mb"] > 0 and expect["downlink_mb"] > 0
    assert json.loads((run / "summary.json").read_text())["traffic"] == pytest.approx(expect)
    values = run_values(run).set_index(["task", "metric"])["value"]
    for k, v in expect.items():
        assert values[("all", k)] == pytest.approx(v)
    with open(run / "metrics.csv", newline="") as f:  # the per-round columns add up to the same bits
        assert sum(float(r["uplink_bits"]) for r in csv.DictReader(f)) / 8e6 == pytest.approx(expect["uplink_mb"], rel=1e-5)  # cells of 6 digits
