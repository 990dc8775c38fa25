"""IovEnv: gymnasium's own checker, a random-action episode, determinism, and the action reaching the run.

Real SUMO, model and data on a tiny config; skipped without gymnasium (`pip install 'iovsim[gym]'`).
"""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium", reason="gymnasium not installed (pip install 'iovsim[gym]')")
pytest.importorskip("peft", reason="the model stack (peft) is not installed")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from iovsim.config import config_from_dict  # noqa: E402
from iovsim.env import EnvConfig, IovEnv  # noqa: E402
from iovsim.env.reward import reward  # noqa: E402
from iovsim.experiment import Experiment  # noqa: E402

from conftest import csv_rows, tiny_config  # noqa: E402
import policies  # noqa: E402

POLICIES = Path(policies.__file__)
TASKS = [{"name": "tweets", "dataset": "tweet_sentiment", "max_samples": 300, "test_samples": 20, "max_length": 16},
         {"name": "bbc", "dataset": "bbc_news", "max_samples": 200, "test_samples": 20, "max_length": 16}]

pytestmark = pytest.mark.slow


def small_config(tmp_path, **over):
    """The suite's tiny config, cut further: two rounds, one local step, small test sets."""
    over = {"fl.participants_per_round": 3, "fl.local_steps": 1, "fl.tasks": TASKS, "fl.lora_ranks": [2, 4, 8],
            "mobility.fl_vehicles": 8, **over}
    return config_from_dict(tiny_config(**over), base_dir=tmp_path)


def test_gymnasium_env_checker_passes(tmp_path):
    cfg = small_config(tmp_path, **{"fl.participants_per_round": 1, "fl.tasks": TASKS[:1]})
    env = IovEnv(cfg, run_dir=tmp_path / "run")
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def play(env, seed, actions=None, action_seed=0):
    """One episode; with `actions` None, random ones from the action space. Observations, rewards,
    infos and the actions taken."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(action_seed)
    out = {"obs": [obs], "rewards": [], "infos": [info], "actions": [], "ends": []}
    while True:
        a = env.action_space.sample() if actions is None else actions[len(out["actions"])]
        obs, r, term, trunc, info = env.step(a)
        for k, v in (("obs", obs), ("rewards", r), ("infos", info), ("actions", a), ("ends", (term, trunc))):
            out[k].append(v)
        if term or trunc:
            return out


def test_random_episode_runs_to_the_end_and_replays_identically(tmp_path):
    cfg = small_config(tmp_path, **{"fl.participants_per_round": 2})
    a = play(IovEnv(cfg, run_dir=tmp_path / "a"), seed=5)
    assert a["ends"][-1] == (True, False) and len(a["rewards"]) == cfg.fl.rounds
    metrics = csv_rows(tmp_path / "a" / "metrics.csv")
    assert [(int(r["round"]), r["task"]) for r in metrics] == [(1, "tweets"), (1, "bbc"), (2, "tweets"), (2, "bbc")]
    assert sum(int(r["participants"]) for r in metrics) > 0, "random actions trained nobody: the check is empty"
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["finished"] is True
    # info carries the round's rows; the reward is the documented weighted sum of them
    before = a["infos"][0]["accuracy"]
    for rnd, (info, rew) in enumerate(zip(a["infos"][1:], a["rewards"]), start=1):
        rows = [r for r in metrics if int(r["round"]) == rnd]
        assert [float(r["accuracy"]) for r in rows] == pytest.approx([x["accuracy"] for x in info["metrics"]], abs=1e-5)
        acc = np.mean([float(r["accuracy"]) for r in rows])
        by_hand = (1.0 * (acc - before) - 0.01 * float(rows[0]["round_latency_s"])
                   - 0.001 * sum(float(r["energy_j"]) for r in rows) - 0.1 * sum(int(r["lost_updates"]) for r in rows))
        assert rew == pytest.approx(by_hand, rel=1e-4, abs=1e-6)
        before = acc
    # another env, same seed, same actions: the same observations, rewards and run folder
    b = play(IovEnv(cfg, run_dir=tmp_path / "b"), seed=5, actions=a["actions"])
    assert b["rewards"] == a["rewards"]
    for oa, ob in zip(a["obs"], b["obs"]):
        assert oa.keys() == ob.keys() and all(np.array_equal(oa[k], ob[k]) for k in oa)
    for name in ("metrics.csv", "vehicles.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_actions_reach_the_run_and_match_the_policy_strategy(tmp_path):
    """A scripted policy through the env and through `Experiment.run` (`policy` strategy): the same run
    folder; round 1's chosen ranks, powers and shares are in vehicles.csv; round 2 selects nobody."""
    cfg = small_config(tmp_path, **{"fl.participants_per_round": 8})
    env = IovEnv(cfg, EnvConfig(), run_dir=tmp_path / "env")
    obs, info = env.reset(seed=9)
    first_ids, first_rsu = info["vehicle_ids"], obs["rsu"]
    done = False
    while not done:
        obs, _, term, trunc, _ = env.step(policies.scripted(obs))
        done = term or trunc
    assert term

    vehicles = csv_rows(tmp_path / "env" / "vehicles.csv")
    round1 = {r["vehicle"]: r for r in vehicles if r["round"] == "1"}
    connected = [i for i, v in enumerate(first_ids) if first_rsu[i] >= 0]
    assert sorted(round1) == sorted(first_ids[i] for i in connected) and len(connected) >= 3
    max_w = 10 ** ((cfg.channel.vehicle_max_tx_power_dbm - 30) / 10)
    for i in connected:
        row = round1[first_ids[i]]
        assert int(row["rank"]) == cfg.fl.lora_ranks[i % 3]
        assert float(row["tx_power_w"]) == pytest.approx(EnvConfig().power_fractions[i % 3] * max_w, rel=1e-5)
    # shares: weight over the RSU's total weight, so an RSU's participants use all of its bandwidth
    for rsu in {int(r["rsu"]) for r in round1.values()}:
        total = sum(float(r["bandwidth_hz"]) for r in round1.values() if int(r["rsu"]) == rsu)
        assert total == pytest.approx(20e6, rel=1e-5)
    metrics = csv_rows(tmp_path / "env" / "metrics.csv")
    assert [int(r["participants"]) for r in metrics if r["round"] == "2"] == [0, 0]
    assert not [r for r in vehicles if r["round"] == "2"]

    run_cfg = small_config(tmp_path, **{"fl.participants_per_round": 8, "seed": 9, "strategy.name": "policy",
                                        "strategy.params": {**env.policy_params(), "policy": f"{POLICIES}:scripted"}})
    Experiment(run_cfg, tmp_path / "run").run()
    for name in ("metrics.csv", "vehicles.csv", "handovers.csv"):
        assert (tmp_path / "env" / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name


def test_reward_weights_are_configurable():
    terms = {"accuracy_gain": 0.05, "round_latency_s": 2.0, "energy_j": 30.0, "lost_updates": 1.0}
    assert reward(terms, EnvConfig()) == pytest.approx(0.05 - 0.02 - 0.03 - 0.1)
    only_acc = EnvConfig(latency_weight_per_s=0, energy_weight_per_j=0, lost_update_weight=0, accuracy_weight=10)
    assert reward(terms, only_acc) == pytest.approx(0.5)


def test_flat_actions_split_back_into_the_dict(tmp_path):
    """Building an env starts nothing; FlatActions maps one MultiDiscrete back onto the four keys."""
    from iovsim.env import FlatActions

    env = IovEnv(small_config(tmp_path), EnvConfig(max_rsus=6, power_fractions=(0.5, 1.0)), run_dir=tmp_path / "r")
    flat = FlatActions(env)
    v = 8
    assert flat.action_space.nvec.tolist() == [2] * v + [3] * v + [2] * v + [3] * v
    a = flat.action(np.arange(4 * v) % 2)
    assert list(a) == ["participate", "rank", "power", "bandwidth"]
    assert all(a[k].tolist() == [0, 1] * (v // 2) for k in a) and a in env.action_space
    assert env.observation_space["rsu_mask"].n == 6 and env.policy_params()["max_vehicles"] == v
