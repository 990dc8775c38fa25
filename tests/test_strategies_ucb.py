"""UCB-DUAL (the authors' formulation) on synthetic bandits with known means (numbers only)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from iovsim.strategies import create
from iovsim.strategies import ucb_core as core
from iovsim.strategies.base import RoundFeedback
from iovsim.strategies.ucb_dual import local_accuracy_pct
from test_strategies import make_state

RANKS = [2, 4, 8, 16, 32]
# mean reward per rank, in the paper's units (gamma x accuracy percent dominates): concave in rank
MEAN = {2: 100.0, 4: 106.0, 8: 110.0, 16: 112.0, 32: 113.0}
BUDGET = 32.0            # 4 vehicles: the best feasible fixed rank is 8 for each
LAMBDA_STAR = 0.5        # any lambda in [(112-110)/8, (110-106)/4] makes 8 the Lagrangian optimum
SAMPLES = [10, 10, 10, 50]  # data shares 4, 4, 4, 20: the warm start is not the optimum


def bandit_state(r, n=4, samples=SAMPLES, ranks=RANKS):
    st = make_state(r, n=n, num_tasks=1, costs=False)
    st.rsu[:] = 0
    st.task[:] = 0
    st.dwell_time_s[:] = np.inf
    st.num_samples = np.asarray(samples)
    st.max_participants = n
    st.ranks = list(ranks)
    st.default_rank = 8
    return st


def feedback(st, plan, q_pct, latency_s=None, energy_j=None, status=None):
    k = plan.participants.size
    z = np.zeros(k)
    return RoundFeedback(
        st.round_index, 0.0, [st.vehicle_ids[i] for i in plan.participants], st.task[plan.participants],
        plan.rank, status or ["ok"] * k, z, z, z if latency_s is None else latency_s,
        z if energy_j is None else energy_j, np.ones(k), np.ones(k), np.array([0.6] * len(st.task_names)),
        np.array([0.5] * len(st.task_names)), np.zeros(len(st.task_names)), 1.0,
        local_accuracy=np.asarray(q_pct) / 100.0)


def run_bandit(T, seed=0, **params):
    s = create("ucb_dual", {"rank_budget": BUDGET, "initial_index": 200.0, **params})
    s.setup(1, seed)
    rng = np.random.default_rng([seed, 99])
    played = []
    for r in range(T):
        st = bandit_state(r)
        plan = s.configure(st)
        reward = np.asarray([MEAN[int(x)] for x in plan.rank]) + rng.normal(0, 1.0, plan.rank.size)
        s.observe(feedback(st, plan, reward / 1.8))  # latency and energy 0: reward = 1.8 q
        played.append(plan.rank.copy())
    return s, np.asarray(played)


def test_ucb_dual_time_average_rank_within_budget_and_sublinear_regret():
    T = 3000
    s, played = run_bandit(T)
    per_round = played.sum(1)
    lag = np.asarray([[MEAN[8] - MEAN[r] + LAMBDA_STAR * (r - 8) for r in row] for row in played]).sum(1)
    regret = np.cumsum(lag)
    ts = np.array([300, 600, 1200, 2400, 3000])
    slope = np.polyfit(np.log(ts), np.log(regret[ts - 1]), 1)[0]
    avg = per_round.mean()
    counts = {r: int((played == r).sum()) for r in RANKS}
    print(f"\nUCB-DUAL T={T}: time-average sum of ranks {avg:.2f} (budget {BUDGET}), Lagrangian regret "
          f"{regret[-1]:.0f}, log-log exponent {slope:.3f}, plays {counts}, lambda {s.lam[0]:.3f}")
    assert avg <= BUDGET * 1.05
    assert per_round[-500:].mean() <= BUDGET + 1e-9
    assert slope < 0.7
    assert (regret[ts - 1] / ts)[-1] < (regret[ts - 1] / ts)[0] / 3
    assert counts[8] > 0.8 * played.size
    assert 0.25 - 0.05 <= s.lam[0] <= 1.0 + 0.05  # the dual settled where 8 is the priced optimum
    assert s.regret > 0  # the logged diagnostic (empirical, per vehicle) is filled


def test_ucb_dual_warm_start_and_adjacent_moves():
    s, played = run_bandit(60, seed=2, decide_every=3)
    # warm start: data shares 4, 4, 4, 20 -> nearest candidates 4, 4, 4, 16
    assert played[0].tolist() == [4, 4, 4, 16]
    idx = np.vectorize(RANKS.index)(played)
    steps = np.abs(np.diff(idx, axis=0))
    assert steps.max() == 1  # at most one step along the candidate list
    changed_at = np.flatnonzero(steps.any(1)) + 1
    assert changed_at.size and all(r % 3 == 0 for r in changed_at)  # only every decide_every plays


def _flat_run(rounds, budget, ranks, **params):
    s = create("ucb_dual", {"rank_budget": budget, **params})
    s.setup(1, 0)
    played, lam = [], []
    for r in range(rounds):
        st = bandit_state(r, samples=[10, 10, 10, 10], ranks=ranks)
        plan = s.configure(st)
        s.observe(feedback(st, plan, np.full(plan.rank.size, 50.0)))  # same reward for every rank
        played.append(plan.rank.tolist())
        lam.append(s.lam[0])
    return s, played, lam


def test_ucb_dual_default_initial_index_is_mild_but_price_moves_down():
    # initial index 0 (the authors' code, 2 of 3 tasks): with positive rewards an untried arm is only
    # tried when the rank price pushes the current arm's index below the untried one's
    s, played, lam = _flat_run(90, 16.0, RANKS)
    assert all(p == [4, 4, 4, 4] for p in played) and max(lam) == 0.0  # on budget: nobody moves
    s, played, lam = _flat_run(60, 14.0, [2, 4, 8], dual_step=5.0)
    # shares 3.5 -> 4 each: 16 > 14, lambda rises until 90 - 4 lambda < 0 - 2 lambda, then one step down;
    # under budget lambda falls back and the tried arms alternate so that the time average meets the budget
    assert played[0] == [4, 4, 4, 4]
    assert not any(8 in p for p in played)
    moved = next(r for r, p in enumerate(played) if 2 in p)
    assert lam[moved - 1] > 45.0
    assert np.mean([sum(p) for p in played[moved:]]) <= 14.0


def test_inter_task_allocator_conserves_total_and_respects_floor_and_cap():
    rng = np.random.default_rng(0)
    for _ in range(200):
        T = int(rng.integers(2, 6))
        total = float(rng.uniform(50, 500))
        floor, cap = 0.08 * total, 0.7 * total
        budgets = rng.dirichlet(np.ones(T)) * total
        used = budgets * rng.uniform(0, 1.2, T)
        h = rng.uniform(0, 5, T)
        b = core.allocate_budgets(total, used, h, budgets, floor, cap)
        assert abs(b.sum() - total) < 1e-6 * total
        assert b.min() >= floor - 1e-9 and b.max() <= cap + 1e-9
    # hand case: task 1 is harder (accuracy 40 % vs 80 %) and used its whole budget; it gains the rest
    h = core.task_difficulty([0.0, 0.0], [50.0, 50.0], [80.0, 40.0], 0.9)
    assert np.allclose(h, [0.1 * 50 / 80, 0.1 * 50 / 40])
    b = core.allocate_budgets(100.0, [30.0, 50.0], h, [50.0, 50.0], 8.0, 70.0)
    # weights h^2 x util: (0.0625^2 x 0.6, 0.125^2 x 1.0); the 20 left over split by weight -> 32.74, 67.26
    w = np.array([0.0625 ** 2 * 0.6, 0.125 ** 2 * 1.0])
    assert np.allclose(b, [30 + 20 * w[0] / w.sum(), 50 + 20 * w[1] / w.sum()])
    # the cap binds: everything to one task is clipped at 70 and the excess goes back
    b = core.allocate_budgets(100.0, [0.0, 100.0], [1.0, 1.0], [10.0, 90.0], 8.0, 70.0)
    assert np.allclose(b, [30.0, 70.0])
    with pytest.raises(ValueError, match="infeasible"):
        core.allocate_budgets(100.0, [1, 1], [1, 1], [50, 50], 60.0, 70.0)


def test_ucb_dual_reallocates_budgets_between_tasks():
    s = create("ucb_dual", {"rank_budget": [32.0, 32.0], "realloc_every": 2})
    s.setup(2, 0)
    for r in range(6):
        before = list(s.budgets or [32.0, 32.0])
        st = make_state(r, n=8, num_tasks=2, costs=False)
        st.rsu[:] = 0
        st.task[:] = [0, 0, 0, 0, 1, 1, 1, 1]
        st.max_participants = 8
        plan = s.configure(st)
        fb = feedback(st, plan, np.full(plan.rank.size, 60.0))
        fb.task_accuracy = np.array([0.9, 0.3])  # task 1 is hard
        log = s.observe(fb)
    assert abs(sum(s.budgets) - 64.0) < 1e-9 and s.budgets[1] > s.budgets[0]
    assert min(s.budgets) >= 0.08 * 64 - 1e-9 and max(s.budgets) <= 0.7 * 64 + 1e-9
    assert log["rank_budget/t1"] == before[1] and s.epoch[1] > 0  # logged: the budget in force that round
    json.dumps(s.state_dict(), allow_nan=False)


def test_transfer_mode_cost_rule_picks_each_option():
    w = dict(alpha_per_s=0.2, beta_per_j=0.05, gamma_per_pct=2.0)  # the authors' fault scheduler weights
    base = dict(accuracy_target_pct=80.0, round_energy_j=100.0, migration_delay_s=0.05, migration_energy_j=0.01,
                early_possible=True, migrate_possible=True, **w)
    # behind the best vehicle: migrating (0.0105) is cheaper than early upload (2 x 30)
    c = core.transfer_costs(accuracy_pct=50.0, **base)
    assert c["migrate"] == pytest.approx(0.2 * 0.05 + 0.05 * 0.01) and core.cheapest_transfer(c) == "migrate"
    # already at the target accuracy: early upload costs nothing
    assert core.cheapest_transfer(core.transfer_costs(accuracy_pct=80.0, **base)) == "early_upload"
    # neither feasible (not one step fits, migration misses the deadline): abandon = today's `lose`
    c = core.transfer_costs(accuracy_pct=80.0, **{**base, "early_possible": False, "migrate_possible": False})
    assert c["abandon"] == pytest.approx(0.05 * 100 + 2 * 80) and core.cheapest_transfer(c) == "lose"


def test_ucb_dual_plans_transfer_mode_for_vehicles_about_to_leave():
    s = create("ucb_dual", {})
    s.setup(2, 0)
    st = make_state(0, n=30, seed=4)
    st.max_participants = 30
    st.dwell_time_s = np.random.default_rng(3).uniform(0.2, 5.0, 30)
    plan = s.configure(st)
    from iovsim.strategies.common import round_time_s
    modes = [o["transfer_mode"] for o in plan.train_options]
    tau = round_time_s(st, plan.participants, plan.rank)
    risky = tau > st.dwell_time_s[plan.participants]
    assert risky.any() and (~risky).any()
    assert all(m == "lose" for m, r in zip(modes, risky) if not r)
    # nothing measured yet: accuracy target 0, so early upload (cost 0) where a step fits, else migrate / lose
    assert {m for m, r in zip(modes, risky) if r} <= {"early_upload", "migrate", "lose"}
    assert plan.extra["at_risk"] == sum(m != "lose" for m in modes)
    # once a target exists and the vehicle is unknown (q = 0), migration wins wherever it meets the deadline
    s.q_target = [80.0, 80.0]
    s.vehicles = {}
    modes = [s._transfer_mode(st, int(i), int(st.task[i]), int(r), st.local_steps)
             for i, r in zip(plan.participants[risky], plan.rank[risky])]
    assert "migrate" in modes
    # the backhaul comes from the RoundState (the engine's config): one slower than the deadline rules migration out
    st.backhaul_latency_s = 10 * st.round_deadline_s
    modes = [s._transfer_mode(st, int(i), int(st.task[i]), int(r), st.local_steps)
             for i, r in zip(plan.participants[risky], plan.rank[risky])]
    assert "migrate" not in modes


def test_reward_parts_and_accuracy_accessor():
    st = bandit_state(0)
    s = create("ucb_dual", {"rank_budget": BUDGET})
    s.setup(1, 0)
    plan = s.configure(st)
    fb = feedback(st, plan, np.array([70.0, 70.0, np.nan, 70.0]), latency_s=np.array([10.0, 10.0, 10.0, np.nan]),
                  energy_j=np.array([100.0] * 4), status=["ok", "ok", "ok", "lost_handover"])
    fb.train_loss_before = np.array([1.0, 1.0, 2.0, 1.0])
    fb.train_loss_after = np.array([0.5, 0.5, 1.5, 0.5])
    q, measured = local_accuracy_pct(fb)
    assert measured.tolist() == [True, True, False, True] and q[2] == pytest.approx(25.0)  # loss fallback
    s.deadline_s = 30.0
    log = s.observe(fb)
    # vehicle 0: -(0.16 x 10 + 0.001 x 100 - 1.8 x 70) = 124.3; vehicle 3 lost: q = 0, tau = deadline 30
    expect = [124.3, 124.3, -(1.6 + 0.1 - 1.8 * 25), -(0.16 * 30 + 0.1)]
    assert log["reward"] == pytest.approx(np.mean(expect))
    assert log["reward_latency"] == pytest.approx(0.16 * 60 / 4) and log["accuracy_measured"] == 3


def test_energy_price_variant_raises_lambda_when_over_budget():
    s = create("ucb_dual", {"price": "energy", "rank_budget": BUDGET, "dual_every": 1})
    s.setup(1, 0)
    for r in range(3):
        st = bandit_state(r)
        st.energy_budget_j = np.array([100.0])
        plan = s.configure(st)
        fb = feedback(st, plan, np.full(4, 60.0), energy_j=np.full(4, 50.0))
        fb.task_energy_j = np.array([200.0])
        log = s.observe(fb)
    assert s.lam[0] == pytest.approx(3 * 0.05 * (200 / 100 - 1)) and log["budget_violation"] == 100.0
    assert s.stats["veh000"]["e"][RANKS.index(4)] > 0  # energies in units of the vehicle's share


def test_dwell_ucb_never_plans_a_rank_that_outlasts_the_window():
    from iovsim.strategies.common import round_time_s, window_s

    s = create("dwell_ucb", {"initial_index": 200.0})
    s.setup(2, 0)
    rng = np.random.default_rng(1)
    for r in range(40):
        st = make_state(r, n=30, seed=100 + r)
        st.max_participants = 12
        st.dwell_time_s = rng.uniform(0.3, 6.0, 30)  # short windows: high ranks rarely fit
        plan = s.configure(st)
        steps = plan.local_steps if plan.local_steps is not None else np.full(plan.rank.size, st.local_steps)
        tau = np.asarray([round_time_s(st, [i], r_, s_)[0] for i, r_, s_ in zip(plan.participants, plan.rank, steps)])
        assert (tau <= window_s(st, plan.participants) + 1e-9).all()
        # vehicles where no rank fits are not asked
        conn = st.connected()
        none_fit = [i for i in conn if round_time_s(st, [i], 2, 1)[0] > window_s(st, [i])[0]]
        assert not set(none_fit) & set(plan.participants.tolist())
        # rewards favour the highest rank: only the window holds the bandit back
        q = 40.0 + 2.0 * plan.rank
        fb = feedback(st, plan, q)
        s.observe(fb)
    assert set(o["transfer_mode"] for o in plan.train_options) <= {"migrate", "early_upload"}


def test_dwell_ucb_margin_grows_after_missed_handovers():
    s = create("dwell_ucb", {})
    s.setup(2, 0)
    st = make_state(0, n=30, seed=5)
    plan = s.configure(st)
    b = [int(s.pending[st.vehicle_ids[i]]["ctx"].rsplit("|", 1)[1]) for i in plan.participants]
    fb = feedback(st, plan, np.full(plan.rank.size, 50.0), status=["lost_handover"] * plan.rank.size)
    log = s.observe(fb)
    for bucket in set(b):
        assert log[f"dwell_margin/b{bucket}"] > 1.0
    assert log["handover_misses"] == plan.rank.size
    saved = json.loads(json.dumps(s.state_dict(), allow_nan=False))
    t = create("dwell_ucb", {})
    t.setup(2, 9)
    t.load_state_dict(saved)
    assert t.margins == s.margins and math.isclose(t.regret, s.regret)


def test_ucb_dual_asks_leaving_vehicles_but_not_links_that_carry_nothing():
    """respect_window: false keeps vehicles about to leave (the transfer mode handles them) but not
    one whose round cannot finish by the deadline: a paper run asked a parked truck whose link was
    in outage (downlink SINR -11.9 dB, rate 0) and every such round waited the whole 60 s deadline."""
    from iovsim.strategies.common import round_time_s

    s = create("ucb_dual", {})
    s.setup(2, 0)
    st = make_state(0, n=30, seed=7)
    st.max_participants = 30
    conn = st.connected()
    dead, leaving = conn[:3], conn[3:6]
    st.downlink_rate_bps[dead[0]] = 0.0   # outage: nothing comes down
    st.uplink_rate_bps[dead[1]] = 0.0     # nothing goes up
    st.downlink_rate_bps[dead[2]] = 1.0   # 1 bit/s: far past the 30 s deadline
    st.dwell_time_s[leaving] = 0.5        # about to leave: its round does not fit the window
    fits = [int(i) for i in conn if round_time_s(st, [i], min(st.ranks))[0] <= st.round_deadline_s]
    assert not set(dead.tolist()) & set(fits) and set(leaving.tolist()) <= set(fits)
    plan = s.configure(st)
    assert sorted(plan.participants.tolist()) == sorted(fits)
    assert plan.extra["eligible"] == len(fits)


def test_hetero_strategies_without_window_skip_links_that_carry_nothing():
    """The same rule for hetlora / flexlora / flora with respect_window: false: the dwell window is
    ignored, the deadline is not."""
    from iovsim.strategies.common import round_time_s

    for name in ("hetlora", "flexlora", "flora"):
        s = create(name, {"respect_window": False})
        s.setup(2, 0)
        st = make_state(0, n=30, seed=7)
        st.max_participants = 30
        conn = st.connected()
        dead, leaving = conn[:2], conn[2:5]
        st.downlink_rate_bps[dead] = 0.0
        st.dwell_time_s[leaving] = 0.5
        plan = s.configure(st)
        chosen = set(plan.participants.tolist())
        assert not set(dead.tolist()) & chosen, name
        assert set(leaving.tolist()) <= chosen, name
        for i, r in zip(plan.participants, plan.rank):
            assert round_time_s(st, [i], r)[0] <= st.round_deadline_s, name
