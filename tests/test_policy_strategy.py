"""The observation/action encoding shared by IovEnv and the `policy` strategy, on hand-made numbers."""

import numpy as np
import pytest

from iovsim.strategies import create
from iovsim.strategies.policy import ActionSpec, encode_state, plan_from_action

from test_strategies import make_state

SPEC = ActionSpec(max_vehicles=40, max_rsus=4, ranks=(2, 4, 8, 16))


def test_observation_pads_masks_and_caps():
    st = make_state(0, n=30, seed=1, budget=np.inf)
    obs = encode_state(st, SPEC, num_tasks=2)
    assert obs["vehicle_mask"].tolist() == [1] * 30 + [0] * 10
    assert obs["rsu"][:30].tolist() == st.rsu.tolist() and (obs["rsu"][30:] == -1).all()
    assert obs["uplink_rate_bps"][:30] == pytest.approx(st.uplink_rate_bps, rel=1e-6)
    assert (obs["uplink_rate_bps"][30:] == 0).all() and obs["uplink_rate_bps"].dtype == np.float32
    inf = ~np.isfinite(st.dwell_time_s)
    assert inf.any() and (obs["dwell_time_s"][:30][inf] == 60.0).all()   # 2 x the 30 s deadline
    assert obs["rsu_mask"].tolist() == [1, 1, 1, 0] and obs["energy_budget_j"].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="do not fit"):
        encode_state(st, ActionSpec(20, 4, (2,)), num_tasks=2)


def test_action_becomes_the_plan():
    st = make_state(0, n=30, seed=2)
    st.max_participants = 30
    v = SPEC.max_vehicles
    slot = np.arange(v)
    action = {"participate": np.ones(v, int), "rank": slot % 4, "power": slot % 3, "bandwidth": slot % 3}
    plan = plan_from_action(st, action, SPEC)
    connected = np.flatnonzero(st.rsu >= 0)
    assert 0 < connected.size < 30 and plan.participants.tolist() == connected.tolist()
    assert plan.rank.tolist() == [(2, 4, 8, 16)[i % 4] for i in connected]
    assert plan.tx_power_w == pytest.approx([(0.25, 0.5, 1.0)[i % 3] * 0.5 for i in connected])
    weights = np.array([(1.0, 2.0, 4.0)[i % 3] for i in connected])
    rsu = st.rsu[connected]
    for m in np.unique(rsu):
        at = rsu == m
        assert plan.bandwidth_share[at] == pytest.approx(weights[at] / weights[at].sum())
    # the cap keeps the first in slot order; nobody asked = nobody trains
    st.max_participants = 3
    assert plan_from_action(st, action, SPEC).participants.tolist() == connected[:3].tolist()
    none = dict(action, participate=np.zeros(v, int))
    assert plan_from_action(st, none, SPEC).participants.size == 0
    with pytest.raises(ValueError, match="rank"):
        plan_from_action(st, dict(action, rank=np.full(v, 4)), SPEC)


def test_policy_strategy_loads_a_file_and_plans(tmp_path):
    (tmp_path / "agent.py").write_text(
        "import numpy as np\n"
        "def act(obs):\n"
        "    v = obs['vehicle_mask'].size\n"
        "    return {'participate': obs['vehicle_mask'].astype(int), 'rank': np.ones(v, int),\n"
        "            'power': np.zeros(v, int), 'bandwidth': np.zeros(v, int)}\n")
    s = create("policy", {"policy": "agent.py:act", "max_vehicles": 40, "max_rsus": 4}, base_dir=tmp_path)
    s.setup(2, seed=0)
    st = make_state(0, n=30, seed=3)
    plan = s.configure(st)
    assert plan.participants.tolist() == np.flatnonzero(st.rsu >= 0)[:st.max_participants].tolist()
    assert set(plan.rank.tolist()) == {4}
    with pytest.raises(ValueError, match="cannot load policy"):
        create("policy", {"policy": "agent.py:nope"}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="power_fractions"):
        create("policy", {"power_fractions": [0.0, 2.0]})
