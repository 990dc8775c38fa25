"""Lyapunov strategies on a synthetic trace: bounded virtual queues, time-average energy at the budget."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from iovsim.strategies import create
from iovsim.strategies.base import RoundFeedback
from iovsim.strategies.lyapunov import success_probability
from test_strategies import check_plan, make_state


def trace(name, rounds, budget_frac, seed=0, **params):
    """Run `rounds` rounds on a moving synthetic fleet; energy spent = the plan's estimate (+5% noise)."""
    s = create(name, params)
    s.setup(1, seed)
    rng = np.random.default_rng([seed, 77])
    # the unconstrained spend sets the scale of the budget
    probe = create(name, params)
    probe.setup(1, seed)
    st0 = make_state(0, n=20, seed=seed, num_tasks=1, budget=np.inf)
    probe.configure(st0)
    free = sum(v["energy_est_j"] for v in probe.planned.values())
    budget = budget_frac * free
    spent, qmax, zs = [], [], []
    for r in range(rounds):
        st = make_state(r, n=20, seed=seed + r % 7, num_tasks=1, budget=budget)  # a recurring fleet
        st.task[:] = 0
        plan = s.configure(st)
        check_plan(st, plan)
        vids = [st.vehicle_ids[i] for i in plan.participants]
        e = np.asarray([s.planned[v]["energy_est_j"] for v in vids]) * rng.uniform(0.95, 1.05, len(vids))
        K = len(vids)
        ok = ["ok" if rng.random() < s.planned[v]["success"] else "lost_handover" for v in vids]
        log = s.observe(RoundFeedback(r, 0.0, vids, np.zeros(K, int), plan.rank, ok, np.zeros(K), np.zeros(K),
                                      np.zeros(K), e, np.ones(K), np.full(K, 0.9), np.array([0.5]),
                                      np.array([0.5]), np.array([e.sum()]), 1.0))
        spent.append(e.sum())
        qmax.append(log["queue_max"])
        zs.append(log["task_queue/t0"])
    return np.asarray(spent), budget, np.asarray(qmax), np.asarray(zs), free


@pytest.mark.parametrize("name", ["lyapunov_switch", "split_lora"])
def test_queues_bounded_and_energy_at_budget(name):
    spent, budget, qmax, zs, free = trace(name, 300, 0.3, V=10.0)
    avg = spent.mean()
    tail = spent[150:].mean()
    print(f"\n{name}: unconstrained {free:.2f} J/round, budget {budget:.2f}, time-average {avg:.2f} "
          f"(last half {tail:.2f}), max vehicle queue {qmax.max():.2f} (first/last 100: "
          f"{qmax[:100].max():.2f}/{qmax[-100:].max():.2f}), max task queue {zs.max():.2f}")
    assert avg <= budget * 1.05 + 1e-9
    assert tail >= 0.7 * budget  # spends what it may, not far below
    assert qmax[-100:].max() <= 1.5 * qmax[:200].max() + 1e-6  # no drift upwards
    assert zs[-100:].max() <= 1.5 * zs[:200].max() + budget
    # running average converges to the budget from above
    run = np.cumsum(spent) / np.arange(1, spent.size + 1)
    assert abs(run[-1] - budget) <= abs(run[20] - budget) + 0.05 * budget


def test_larger_V_trades_queue_for_utility():
    lo = trace("lyapunov_switch", 150, 0.3, V=2.0)
    hi = trace("lyapunov_switch", 150, 0.3, V=50.0)
    assert hi[2].max() > lo[2].max()
    assert hi[0].mean() <= hi[1] * 1.1


def test_success_probability_shape():
    bits, bw = 1e6, 1e6
    rate = 4e6  # mean SNR 15
    p = success_probability([bits] * 4, [rate] * 4, [bw] * 4, [np.inf, 1.0, 0.3, 0.0])
    assert p[0] == 1.0 and 1 > p[1] > p[2] > 0 and p[3] == 0.0
    # more power (rate) -> more reliable within the same window
    assert success_probability(bits, 8e6, bw, 0.3) > p[2]


def test_switch_shrinks_module_for_short_window_and_split_flags():
    st = make_state(0, n=12, seed=3, num_tasks=1, budget=np.inf)
    st.rsu[:] = 0
    st.dwell_time_s[:] = np.inf
    st.max_participants = 12
    s = create("lyapunov_switch", {"V": 10.0})
    s.setup(1, 0)
    long = s.configure(st)
    assert long.participants.size > 0 and (long.rank == max(st.ranks)).all()
    st.dwell_time_s[:] = 0.5  # almost out of the cell: small modules or nothing
    s2 = create("lyapunov_switch", {"V": 10.0})
    s2.setup(1, 0)
    short = s2.configure(st)
    assert short.participants.size == 0 or short.rank.max() < max(st.ranks) or short.participants.size < long.participants.size
    sp = create("split_lora", {})
    sp.setup(1, 0)
    st.dwell_time_s[:] = np.inf
    plan = sp.configure(st)
    assert plan.extra["split"] is True and all(o == {"split": True} for o in plan.train_options)
    assert (plan.tx_power_w == st.default_tx_power_w).all()


def test_success_probability_uses_the_channels_fading():
    """None (channel without fading): the paper's Rayleigh exp(-g_th / g), bit for bit the same as K = 0;
    Rician K: the channel's own closed form; K = inf: the upload fits or it does not."""
    from iovsim.channel.fading import exceed_probability

    bits, bw, rate = 1e6, 1e6, 4e6
    avail = np.array([np.inf, 1.0, 0.5, 0.3, 0.2, 0.0])
    n = avail.size
    base = success_probability([bits] * n, [rate] * n, [bw] * n, avail)
    assert np.array_equal(base, success_probability([bits] * n, [rate] * n, [bw] * n, avail, np.zeros(n)))
    k = np.full(n, 10 ** 0.9)
    rice = success_probability([bits] * n, [rate] * n, [bw] * n, avail, k)
    g, g_th = 2 ** (rate / bw) - 1, 2 ** (bits / avail[1:5] / bw) - 1
    assert np.allclose(rice[1:5], exceed_probability(g_th / g, k[1:5]), rtol=1e-12)
    assert rice[0] == 1.0 and rice[-1] == 0.0
    assert rice[1] > base[1]      # an easy upload: a strong LOS path rarely fades below the need
    flat = success_probability([bits] * n, [rate] * n, [bw] * n, avail, np.full(n, np.inf))
    assert list(flat) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]   # needs 1, 2, 3.3, 5 Mbit/s against 4 Mbit/s


def test_switch_prices_outage_with_the_state_fading():
    st = make_state(0, n=12, seed=3, num_tasks=1, budget=np.inf)
    st.rsu[:] = 0
    st.dwell_time_s[:] = 3.0

    def plan(k):
        s = create("lyapunov_switch", {})
        s.setup(1, 0)
        st.fading_k_factor = k
        return s.configure(st)

    rayleigh, same, flat = plan(None), plan(np.zeros(12)), plan(np.full(12, np.inf))
    assert same.extra["mean_success"] == rayleigh.extra["mean_success"]
    assert np.array_equal(same.tx_power_w, rayleigh.tx_power_w)
    # Without fading the uploads that fit are certain: full success at less power than under Rayleigh.
    assert flat.extra["mean_success"] == 1.0 > rayleigh.extra["mean_success"]
    assert flat.tx_power_w.mean() < rayleigh.tx_power_w.mean()


@pytest.mark.parametrize("name", ["lyapunov_switch", "split_lora"])
@pytest.mark.parametrize("iters", [0, -1, 1.5, True, "2"])
def test_bandwidth_iters_below_one_or_not_an_integer_is_one_config_line(tmp_path, capsys, name, iters):
    """0 steps left the first-guess shares (1 / expected participants of the RSU), whose sum per RSU
    reached 1.67 and stopped the run with a RunError; `check --no-build` now refuses it."""
    from iovsim.cli import main

    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({"strategy": {"name": name, "params": {"bandwidth_iters": iters}}}))
    assert main(["check", str(cfg), "--no-build", "--quiet"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert all(w in lines[0] for w in (str(cfg), "strategy.params", "bandwidth_iters", "an integer >= 1")), lines[0]


@pytest.mark.parametrize("name", ["lyapunov_switch", "split_lora"])
def test_one_bandwidth_step_keeps_each_rsus_shares_within_its_band(name):
    st = make_state(0, n=30, seed=4, num_tasks=1, budget=np.inf)  # 0 steps: 1.17 of an RSU
    st.max_participants = 20
    s = create(name, {"bandwidth_iters": 1})
    s.setup(1, 0)
    check_plan(st, s.configure(st))  # shares per RSU sum to <= 1
