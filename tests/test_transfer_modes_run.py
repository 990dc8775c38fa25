"""Transfer modes in a real tiny run (SUMO, channel, model, data): migrate and early_upload end to end,
and the plan-time choice of the early steps on hand-made numbers."""
from types import SimpleNamespace

import numpy as np
import pytest

from iovsim.config import config_from_dict
from iovsim.engine.plan import early_steps
from iovsim.strategies import STRATEGIES
from iovsim.strategies.base import Plan, Strategy

from conftest import csv_rows, tiny_config


class FixedMode(Strategy):
    """Every connected vehicle (up to the cap) at the default rank, all with one transfer mode.

    Records the sources of each aggregate call, so the test can see at which RSU an update counted.
    Registered only while a test runs (monkeypatch), so other tests never see it.
    """

    name = "test_fixed_transfer_mode"

    def __init__(self, mode: str = "lose", steps: int | None = None):
        super().__init__()
        self.mode, self.steps, self.calls = mode, steps, []

    def configure(self, state):
        self.calls = []  # this round's aggregation only
        chosen = state.connected()[: state.max_participants]
        k = chosen.size
        return Plan(chosen, np.full(k, state.default_rank), local_steps=None if self.steps is None
                    else np.full(k, self.steps), train_options=[{"transfer_mode": self.mode} for _ in range(k)])

    def aggregate(self, updates, global_state):
        self.calls.append([u.source for u in updates])
        return super().aggregate(updates, global_state)


def aggregated_at(calls: list) -> dict:
    """vehicle id -> RSU whose aggregate included it (each task: RSU calls in RSU order, then the cloud's)."""
    out, pending = {}, []
    for sources in calls:
        if sources and all(s.startswith("rsu") for s in sources):
            for vehicles, rsu in zip(pending, sources):
                out.update({v: int(rsu[3:]) for v in vehicles})
            pending = []
        else:
            pending.append(sources)
    return out


def run(tmp_path, monkeypatch, **over):
    import iovsim.experiment as experiment

    trained = {}
    real_train = experiment.train

    def train(executor, jobs, progress, round_index):
        trained.update({(round_index, j.vehicle_id): j.steps for j in jobs})
        return real_train(executor, jobs, progress, round_index)

    monkeypatch.setattr(experiment, "train", train)
    monkeypatch.setitem(STRATEGIES, FixedMode.name, FixedMode)
    cfg = config_from_dict(tiny_config(**{"seed": 11, "fl.round_interval_s": 20, **over}), base_dir=tmp_path)
    exp = experiment.Experiment(cfg, tmp_path / "run")
    strategies = []
    real_build = experiment.build.build_learning

    def build_learning(cfg, progress, *args):
        learning = real_build(cfg, progress, *args)
        strategies.append(learning.strategy)
        return learning

    monkeypatch.setattr(experiment.build, "build_learning", build_learning)
    exp.run()
    return csv_rows(tmp_path / "run" / "vehicles.csv"), csv_rows(tmp_path / "run" / "metrics.csv"), trained, \
        strategies[0]


@pytest.mark.slow
def test_migrate_keeps_updates_across_handovers_and_counts_them_at_the_new_rsu(tmp_path, monkeypatch):
    # 10 local steps: rounds long enough (slow tier ~11 s) for handovers during them
    veh, met, trained, strat = run(tmp_path, monkeypatch, **{
        "strategy.name": "test_fixed_transfer_mode", "strategy.params": {"mode": "migrate", "steps": 10},
        "fl.participants_per_round": 12})
    status = [r["status"] for r in veh]
    assert {r["transfer_mode"] for r in veh} == {"migrate"}
    assert "lost_handover" not in status
    migrated = [r for r in veh if r["status"] == "migrated"]
    assert migrated, status
    at = aggregated_at(strat.calls)
    last_round = {r["vehicle"]: r for r in veh if r["round"] == max(x["round"] for x in veh)}
    for r in migrated:
        assert r["loss_after"] != "" and (int(r["round"]), r["vehicle"]) in trained
    # the last round's aggregation: delivered updates (migrated ones too) counted at their final RSU
    for v, r in last_round.items():
        if r["status"] in ("ok", "migrated"):
            assert at[v] == int(r["final_rsu"]), (v, r)
        else:
            assert v not in at
    assert any(r["final_rsu"] != r["rsu"] for r in migrated)
    for rnd in {r["round"] for r in veh}:
        counts = sum(int(m["migrated"]) for m in met if m["round"] == rnd)
        assert counts == sum(r["status"] == "migrated" for r in veh if r["round"] == rnd)
        done = sum(int(m["completed"]) for m in met if m["round"] == rnd)
        assert done == sum(r["status"] in ("ok", "migrated") for r in veh if r["round"] == rnd)


@pytest.mark.slow
def test_early_upload_trains_only_the_steps_that_fit_the_dwell(tmp_path, monkeypatch):
    veh, met, trained, _ = run(tmp_path, monkeypatch, **{
        "strategy.name": "test_fixed_transfer_mode", "strategy.params": {"mode": "early_upload", "steps": 20},
        "fl.rounds": 1})
    early = [r for r in veh if r["status"] == "early"]
    assert early, [r["status"] for r in veh]
    for r in veh:
        steps, planned = int(r["local_steps"]), int(r["planned_steps"])
        assert planned == 20
        if (1, r["vehicle"]) in trained:  # the real training ran exactly the steps logged
            assert trained[(1, r["vehicle"])] == steps
        if r["status"] == "early":
            assert 1 <= steps < planned and float(r["compute_time_s"]) <= float(r["dwell_pred_s"])
            assert r["acc_after"] != "" and 0.0 <= float(r["acc_after"]) <= 1.0
    assert sum(int(m["early"]) for m in met) == len(early)


def test_early_steps_by_hand():
    # vehicle 0: 1 s radio (500 bits down and up at 1000 bit/s), 10 steps of 1 s, dwell 4.5 s -> 3 steps
    # vehicle 1: the whole round (11 s) fits its dwell of 20 s -> 10 steps, an ordinary transfer
    # vehicle 2: dwell 1.5 s: not one step fits after 1 s of radio -> 10 steps, transfer as `lose`
    # vehicle 3: migrate is left alone whatever its dwell
    state = SimpleNamespace(dwell_time_s=np.array([4.5, 20.0, 1.5, 0.1]), downlink_rate_bps=np.full(4, 1000.0),
                            uplink_rate_bps=np.full(4, 1000.0))
    costs = (np.full(4, 500.0), np.full(4, 500.0), np.full(4, 10.0), np.full(4, 30.0))
    steps, modes = early_steps(state, np.arange(4), np.full(4, 10), ["early_upload"] * 3 + ["migrate"], costs)
    assert steps.tolist() == [3, 10, 10, 10]
    assert modes == ["early_upload", "lose", "lose", "migrate"]
