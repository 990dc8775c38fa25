"""Device memory: a vehicle whose accelerator cannot hold the training job is not asked, by any strategy.

The rule is one: `RoundState.connected()` leaves such vehicles out (`fits_memory`, from the cost
model's `training_memory_bytes` at the run's largest rank); the engine refuses a plan that asks one.
"""
import numpy as np
import pytest

from iovsim.config import ConfigError, config_from_dict, load_config
from iovsim.costs import CostModel, decoder_shape, encoder_shape
from iovsim.costs.memory import training_bytes
from iovsim.engine.errors import RunError
from iovsim.engine.limits import check_device_memory
from iovsim.engine.observe import fits_memory
from iovsim.engine.plan import participants_of
from iovsim.strategies import create
from iovsim.strategies.base import Plan

from conftest import REPO, tiny_config
from test_costs_llm import MINILM_CONFIG, SEVEN, SMOLLM2
from test_strategies import NAMES, PARAMS, check_plan, make_state


def test_fits_memory_compares_each_vehicles_job_with_its_device():
    # the LM head on all 64 positions (responses filling the rows): 2,127,734,016 bytes at rank 16
    shape = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=16, head_tokens=64)
    c = CostModel(shape, flops_per_s=[1e11] * 3, power_w=10.0, cpu_frequency_hz=0.0, kappa=0.0, cycles_per_flop=0.0,
                  rates=None)
    got = fits_memory(c, 3, 16, np.array([2e9, 2_127_734_016, 4e9]))
    assert got.tolist() == [False, True, True]
    assert fits_memory(c, 0, 16, np.zeros(0)).shape == (0,)


def test_connected_leaves_out_the_vehicles_that_cannot_hold_the_job():
    st = make_state(0, n=30, seed=1)
    conn = np.flatnonzero(st.rsu >= 0)
    st.fits_memory = st.tier != 0
    assert st.connected().tolist() == [i for i in conn if st.tier[i] != 0]
    st.fits_memory = None
    assert st.connected().tolist() == conn.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_no_strategy_asks_a_vehicle_that_cannot_hold_the_job(name):
    s, free = create(name, PARAMS.get(name, {})), create(name, PARAMS.get(name, {}))
    s.setup(2, seed=5)
    free.setup(2, seed=5)
    asked_unfit_without_rule = 0
    for r in range(4):
        st = make_state(r, seed=20 + r)
        unfit = st.tier == 0
        asked_unfit_without_rule += int(unfit[free.configure(make_state(r, seed=20 + r)).participants].sum())
        st.fits_memory = ~unfit
        plan = s.configure(st)
        check_plan(st, plan)
        assert not unfit[plan.participants].any(), (r, plan.participants)
    assert asked_unfit_without_rule > 0   # the states do offer such vehicles: the rule is what keeps them out


def test_the_engine_refuses_a_plan_that_asks_such_a_vehicle():
    st = make_state(0, n=30, seed=1)
    i = int(np.flatnonzero(st.rsu >= 0)[0])
    st.fits_memory = np.ones(30, bool)
    st.fits_memory[i] = False
    with pytest.raises(RunError, match="device memory cannot hold the training job"):
        participants_of(Plan(participants=[i], rank=[8]), st, 5, "equal", "mine")


def _cfg(devices, tasks=1):
    task = {"name": "t", "dataset": "tweet_sentiment", "max_length": 64}
    over = {"devices": devices, "fl.tasks": [dict(task, name=f"t{k}") for k in range(tasks)],
            "fl.batch_size": 16, "fl.lora_rank": 16, "fl.lora_ranks": [4, 8]}
    return config_from_dict(tiny_config(**over))


def test_a_tier_too_small_is_reported_and_no_tier_at_all_is_a_config_error():
    shape = decoder_shape(SMOLLM2, SEVEN, seq_len=64, batch_size=16, head_tokens=64)
    low, mid = {"name": "low", "share": 0.5, "memory_bytes": 2e9}, {"name": "mid", "share": 0.5, "memory_bytes": 4e9}
    said = []
    check_device_memory(_cfg([low, mid]), [shape], said.append)
    assert len(said) == 1 and said[0].startswith("devices[0] (low, memory_bytes 2e+09) cannot hold a training job "
                                                 "of task t0 (2.128e+09 bytes at rank 16)"), said
    with pytest.raises(ConfigError, match=r"devices.*expected a tier with memory_bytes >= 2.128e\+09 .*task t0 "
                                          r"at rank 16, batch 16 x 64 tokens.*got at most 2e\+09"):
        check_device_memory(_cfg([dict(low, share=1.0)]), [shape], said.append)


def test_the_encoder_fits_every_tier_of_every_shipped_config():
    """MiniLM's jobs are a few hundred MB: no shipped config loses a vehicle to the memory rule."""
    cfgs = sorted((REPO / "sumo_scenarios").glob("*.yaml"))
    checked = 0
    for path in cfgs:
        try:
            cfg = load_config(path, {})
        except ConfigError:
            continue  # a config needing files this checkout lacks (built traces); not the encoder's concern
        if cfg.fl.model not in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
            continue
        shapes = [encoder_shape(MINILM_CONFIG, cfg.fl.target_modules or ["query", "value"], tc.max_length, cfg.fl.batch_size, 5)
                  for tc in cfg.fl.tasks]
        said = []
        check_device_memory(cfg, shapes, said.append)
        assert not said, (path.name, said)
        rank = max([cfg.fl.lora_rank, *cfg.fl.lora_ranks])
        assert max(training_bytes(s, rank) for s in shapes) < 0.25 * min(d.memory_bytes for d in cfg.devices), path
        checked += 1
    assert checked >= 3, checked


def test_hand_built_round_states_keep_every_connected_vehicle():
    """RoundStates without `fits_memory` (tests, user tools) mean: no limit known."""
    st = make_state(0, n=12, seed=3)
    assert st.fits_memory is None and st.connected().tolist() == np.flatnonzero(st.rsu >= 0).tolist()
