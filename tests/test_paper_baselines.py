"""The seed papers' baselines: random module selection (arXiv 2509.19306), split training with random
scheduling (arXiv 2407.02924), and comparison groups that run one strategy in several settings."""
from __future__ import annotations

import numpy as np
import pytest

from iovsim.strategies import create
from iovsim.strategies.common import eligible, select
from tests.test_strategies import make_state


def test_random_module_draws_each_rank_and_keeps_the_window_rule():
    st = make_state(round_index=3, n=200, seed=1)
    s = create("random_module", {})
    s.setup(2, seed=5)
    plan = s.configure(st)
    conn = st.connected()
    drawn = dict(zip(conn.tolist(), s.draw_ranks(st, conn).tolist()))
    # every candidate module is drawn, about equally often (200 vehicles, 4 ranks)
    counts = np.bincount(np.searchsorted(st.ranks, list(drawn.values())), minlength=4)
    assert counts.min() > 0.5 * len(drawn) / 4, counts
    # the participant trains the rank drawn for it, and its round fits at that rank
    for i, r in zip(plan.participants, plan.rank):
        assert r == drawn[int(i)] and int(i) in eligible(st, np.asarray([i]), int(r))
    # exactly the paired random pick among those eligible at their drawn rank
    ok = np.asarray([i for i in conn if i in eligible(st, np.asarray([i]), drawn[int(i)])])
    assert plan.participants.tolist() == select(st, ok, st.max_participants, "random", 5, {}).tolist()
    assert plan.tx_power_w is None and plan.bandwidth_share is None     # default power, equal bandwidth
    # the draw is fixed by (seed, round, vehicle): another round draws otherwise, the same round alike
    assert s.draw_ranks(st, conn).tolist() == list(drawn.values())
    st2 = make_state(round_index=4, n=200, seed=1)
    assert s.draw_ranks(st2, conn).tolist() != list(drawn.values())


def test_random_module_aggregates_by_zero_padding():
    import torch

    from iovsim.fl.aggregate import zero_pad_aggregate
    from iovsim.fl.aggregate import Update

    g = {"l.lora_A": torch.zeros(4, 3), "l.lora_B": torch.zeros(3, 4)}
    ups = [Update({"l.lora_A": torch.ones(2, 3), "l.lora_B": torch.ones(3, 2)}, 10, 2, "v1"),
           Update({"l.lora_A": 2 * torch.ones(4, 3), "l.lora_B": 2 * torch.ones(3, 4)}, 30, 4, "v2")]
    s = create("random_module", {})
    s.setup(1, 0)
    out = s.aggregate(ups, g)
    ref = zero_pad_aggregate(ups, 4, rescale=True)
    assert all(torch.equal(out[k], ref[k]) for k in ref)
    # A, sample weighted: rows 0-1 (1 x 10 + 2 x 30) / 40; rows 2-3 v1 padded with zeros: 2 x 30 / 40
    assert out["l.lora_A"][0, 0].item() == pytest.approx(70 / 40) and out["l.lora_A"][3, 0].item() == pytest.approx(1.5)


def test_split_random_schedules_connected_vehicles_at_random_and_splits():
    st = make_state(round_index=2, n=60, seed=3)
    s = create("split_random", {"rank": 4})
    s.setup(2, seed=9)
    plan = s.configure(st)
    conn = st.connected()
    assert plan.participants.tolist() == select(st, conn, st.max_participants, "random", 9, {}).tolist()
    assert plan.participants.size == st.max_participants
    assert (plan.rank == 4).all() and all(o == {"split": True} for o in plan.train_options)
    assert plan.bandwidth_share is None and plan.extra["split"]
    # no window rule: with every dwell window too short for a round, it still schedules as many
    from dataclasses import replace

    short = replace(st, dwell_time_s=np.full(st.dwell_time_s.shape, 0.1))
    assert eligible(short, conn, 4).size == 0
    assert s.configure(short).participants.tolist() == plan.participants.tolist()


def test_a_comparison_group_label_runs_its_base_strategy_with_its_own_params(tmp_path):
    from iovsim.compare import base_name, strategy_params
    from iovsim.config import load_config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("strategy:\n  name: homolora\n  params: {rank: 8}\n"
                        "  per_strategy:\n    homolora@r4: {rank: 4}\n    lyapunov_switch: {V: 5}\n"
                        "    lyapunov_switch@maxpower: {V: 5, power_levels: 1}\n")
    cfg = load_config(cfg_file, {})
    assert base_name("homolora@r4") == "homolora" and base_name("homolora") == "homolora"
    assert base_name("my/file.py:Cls") == "my/file.py:Cls" and base_name("x@") == "x@"
    assert strategy_params(cfg, "homolora@r4") == {"rank": 4}
    assert strategy_params(cfg, "homolora@other") == {"rank": 8}      # the base's params
    assert strategy_params(cfg, "lyapunov_switch@maxpower") == {"V": 5, "power_levels": 1}


def test_max_power_is_one_power_level_at_the_maximum():
    st = make_state(round_index=1, n=60, seed=2)
    s = create("lyapunov_switch", {"power_levels": 1})
    s.setup(2, seed=1)
    plan = s.configure(st)
    assert plan.participants.size > 0 and np.allclose(plan.tx_power_w, st.max_tx_power_w)
