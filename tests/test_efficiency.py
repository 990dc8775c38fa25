"""Traffic and energy efficiency from vehicles.csv rows, against a hand computation, and where they land
(summary.json of a real run, the statistics across seeds)."""
import csv
import json
import math

import pytest

from iovsim.engine.efficiency import traffic

ROWS = [  # as csv.DictReader gives them: strings; an empty cell counts 0
    {"status": "ok", "bits_up": "8e6", "bits_down": "4e6", "energy_j": "2"},
    {"status": "lost_handover", "bits_up": "2e6", "bits_down": "4e6", "energy_j": "1.5"},
    {"status": "migrated", "bits_up": "8e6", "bits_down": "", "energy_j": "0.5"},
]


# MiniLM-L6 adapters (LoRA on query and value: 6 layers x 2 targets x r (384 + 384)) + a (384 + 1) x classes
# head, fp32: tweets has 3 classes, bbc 5.
TWEETS_R8 = (6 * 2 * 8 * 768 + 385 * 3) * 32     # 2,396,256
BBC_R8 = (6 * 2 * 8 * 768 + 385 * 5) * 32        # 2,420,896
BBC_R4 = (6 * 2 * 4 * 768 + 385 * 5) * 32        # 1,241,248
SPLIT_ROWS = [  # split training: bits_up holds every step's activations and gradients besides the update
    {"status": "ok", "task": "tweets", "rank": "8", "steps_done": "2", "bits_up": "3e7", "bits_down": "1e6",
     "energy_j": "2", "update_bits": str(TWEETS_R8)},
    {"status": "lost_handover", "task": "bbc", "rank": "8", "steps_done": "1", "bits_up": "1.5e7", "bits_down": "1e6",
     "energy_j": "1", "update_bits": str(BBC_R8)},
    {"status": "migrated", "task": "bbc", "rank": "4", "steps_done": "2", "bits_up": "3e7", "bits_down": "1e6",
     "energy_j": "1", "update_bits": str(BBC_R4)},
]
SPLIT_DELIVERED_BITS = TWEETS_R8 + BBC_R4        # 3,637,504: the ok and the migrated update, no activations


def _old(rows):
    """The rows as a vehicles.csv written before the update_bits column has them."""
    return [{k: v for k, v in r.items() if k != "update_bits"} for r in rows]


def test_split_rows_deliver_their_update_not_their_activations():
    t = traffic(SPLIT_ROWS)
    assert t["uplink_mb"] == pytest.approx(7.5e7 / 8e6)                # every bit over the air
    assert t["delivered_mb"] == pytest.approx(SPLIT_DELIVERED_BITS / 8e6)
    assert t["delivered_bits_per_j"] == pytest.approx(SPLIT_DELIVERED_BITS / 4.0)   # 909,376 bit/J


def test_an_older_split_row_without_update_bits_is_unknown_not_its_activations():
    t = traffic(_old(SPLIT_ROWS))
    assert math.isnan(t["delivered_mb"]) and math.isnan(t["delivered_bits_per_j"])
    assert t["uplink_mb"] == pytest.approx(7.5e7 / 8e6)
    # an unsplit row of an older run: its upload was the update
    assert traffic(_old(ROWS))["delivered_mb"] == pytest.approx(16e6 / 8e6)


def _old_split_run(tmp_path, with_config: bool):
    """A run folder of a split_lora run on tweets + bbc written before the update_bits column."""
    from iovsim.config import config_from_dict, save_config

    from conftest import tiny_config

    run = tmp_path / "run"
    run.mkdir()
    if with_config:
        save_config(config_from_dict(tiny_config(**{"strategy.name": "split_lora"}), base_dir=tmp_path),
                    run / "config.yaml")
    rows = _old(SPLIT_ROWS)
    with open(run / "vehicles.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (run / "metrics.csv").write_text("round,task,accuracy,energy_j,lost_updates,round_latency_s\n"
                                     "1,tweets,0.5,2,0,9\n1,bbc,0.4,2,1,9\n")
    return run


def test_an_older_split_run_gets_its_update_bits_from_its_config(tmp_path):
    """The real MiniLM's shape and the real tasks' classes, through the shapes the engine builds."""
    from iovsim.runs.stats import run_values

    run = _old_split_run(tmp_path, with_config=True)
    values = run_values(run).set_index(["task", "metric"])["value"]
    assert values[("all", "delivered_mb")] == pytest.approx(SPLIT_DELIVERED_BITS / 8e6, rel=1e-12)
    assert values[("all", "delivered_bits_per_j")] == pytest.approx(SPLIT_DELIVERED_BITS / 4.0, rel=1e-12)


def test_an_older_split_run_without_its_config_says_so_and_reports_nan(tmp_path):
    from iovsim.runs.stats import run_values

    run = _old_split_run(tmp_path, with_config=False)
    with pytest.warns(UserWarning, match="config.yaml missing"):
        values = run_values(run).set_index(["task", "metric"])["value"]
    assert math.isnan(values[("all", "delivered_bits_per_j")])


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
