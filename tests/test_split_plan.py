"""Split training: what split_lora plans with is what the engine charges (one cost function), and the
per-step protocol's sub-phases add up to the cost model's split totals. Numbers only, no SUMO."""
from __future__ import annotations

import numpy as np
import pytest

from iovsim.costs import CostModel, ModelShape, bits, flops
from iovsim.costs.split import DEVICE, DOWN, EDGE, UP, step_segments
from iovsim.engine.observe import participant_costs
from iovsim.engine.plan import participants_of
from iovsim.engine.split_transfer import EdgeServers
from iovsim.engine.transfer import LinkView, run_transfer
from iovsim.strategies import create

from test_strategies import make_state

SHAPE = ModelShape(num_layers=6, hidden_size=384, intermediate_size=1536, num_heads=12, vocab_size=30522,
                   lora_targets=[(384, 384), (384, 384)], head_params=(384 + 1) * 3, seq_len=32, batch_size=8)


class FlatRates:
    """Every vehicle: uplink 4 Mbit/s and downlink 10 Mbit/s per MHz of its bandwidth."""

    max_tx_power_w = 0.2

    def uplink_rate_bps(self, vehicle, tx_power_w, bandwidth_hz):
        return 4.0 * np.asarray(bandwidth_hz, float) * np.ones(np.shape(vehicle))

    def downlink_rate_bps(self, vehicle, bandwidth_hz):
        return 10.0 * np.asarray(bandwidth_hz, float) * np.ones(np.shape(vehicle))


def cost_model(n, split_layer=0, edge_flops_per_s=2e12):
    tier = np.arange(n) % 3
    return CostModel(SHAPE, flops_per_s=np.array([5e10, 2e11, 1e12])[tier], power_w=np.array([8.0, 15.0, 40.0])[tier],
                     cpu_frequency_hz=0.0, kappa=0.0, cycles_per_flop=0.0, rates=FlatRates(),
                     split_layer=split_layer, edge_flops_per_s=edge_flops_per_s)


@pytest.mark.parametrize("split_layer", [0, 2])
def test_the_sub_phases_add_up_to_the_split_totals(split_layer):
    seg = step_segments(SHAPE, split_layer, 8)

    def total(kind):
        return sum(x.amount for x in seg if x.kind == kind)

    assert total(DEVICE) == pytest.approx(flops.device_flops_per_step(SHAPE, split_layer, 8))
    assert total(EDGE) == pytest.approx(flops.server_flops_per_step(SHAPE, split_layer, 8))
    assert (total(UP), total(DOWN)) == bits.split_activation_bits_per_step(SHAPE, split_layer)
    # causal order: device forward, activations up, edge forward, pooled output down, head, ...
    assert [x.kind for x in seg][:7] == [DEVICE, UP, EDGE, DOWN, DEVICE, UP, EDGE]
    assert len(seg) == (7 if split_layer == 0 else 9)


def test_a_split_participant_is_charged_the_device_share_of_the_energy():
    c = cost_model(3)
    v, r, s = np.arange(3), np.full(3, 8), np.full(3, 5)
    _, _, t, e = participant_costs(c, v, r, s, [True, True, False])
    assert np.allclose(e[:2], c.device_compute_energy_j(v[:2], 8, 5))     # not the whole model's
    assert e[0] < 1e-2 * c.compute_energy_j(v[:1], 8, 5)[0]
    assert e[2] == c.compute_energy_j(v[2:], 8, 5)[0] and t[2] == c.compute_time_s(v[2:], 8, 5)[0]


def test_split_lora_plans_what_the_engine_charges():
    """One participant per RSU (so nobody shares an edge), constant rates: the planner's energy and
    round time (CostModel.split_round_cost at plan time) equal the engine's transfer."""
    st = make_state(0, n=6, seed=1, num_rsus=6, num_tasks=1, budget=np.inf)
    st.rsu[:] = np.arange(6)
    st.dwell_time_s[:] = np.inf
    st.costs = cost_model(6)
    s = create("split_lora", {"V": 10.0})
    s.setup(1, 0)
    plan = s.configure(st)
    assert plan.participants.size >= 3
    parts = participants_of(plan, st, st.local_steps, "equal", "split_lora")
    jobs = [p.job for p in parts]
    assert all(j.split is not None and j.split.steps == st.local_steps for j in jobs)
    # the first download and the last upload carry the device's part: the head alone at split layer 0
    assert all(j.down_bits == j.up_bits == SHAPE.head_params * 32 for j in jobs)
    up = {j.vehicle_id: 4.0 * j.bandwidth_hz for j in jobs}
    down = {j.vehicle_id: 10.0 * j.bandwidth_hz for j in jobs}
    t = [0.0]

    def step(phases):
        t[0] += 0.1
        return LinkView(t[0], {j.vehicle_id: j.rsu for j in jobs}, up, down)

    outs = run_transfer(jobs, 0.0, 1e4, step, edge=EdgeServers(2e12, 70.0))
    for p, o in zip(parts, outs):
        planned = s.planned[p.vehicle_id]["energy_est_j"]
        assert o.status == "ok" and o.steps_done == st.local_steps
        assert o.energy_j == pytest.approx(planned, rel=1e-9)
        est = st.costs.split_round_cost(p.row, p.rank, st.local_steps, p.tx_power_w, up[p.vehicle_id],
                                        down[p.vehicle_id], 1.0)
        assert o.done_at_s == pytest.approx(float(est.time_s[0]), rel=1e-9)
        assert o.bits_up == pytest.approx(float(est.uplink_bits[0]), rel=1e-12)
        assert o.edge_compute_s == pytest.approx(float(est.edge_s[0]), rel=1e-9)
        assert o.edge_energy_j == pytest.approx(70.0 * o.edge_compute_s)


def test_a_vehicle_without_rate_gets_a_finite_price():
    """0 bit/s (below the lowest usable SINR): a huge finite energy, so its drift-plus-penalty stays a
    number (0 x inf would be NaN) and the vehicle is simply not worth scheduling."""
    class NoUplinkForVehicle0(FlatRates):
        def uplink_rate_bps(self, vehicle, tx_power_w, bandwidth_hz):
            return np.where(np.asarray(vehicle) == 0, 0.0, super().uplink_rate_bps(vehicle, tx_power_w, bandwidth_hz))

    st = make_state(0, n=3, seed=1, num_rsus=3, num_tasks=1, budget=np.inf)
    st.rsu[:] = np.arange(3)
    st.costs = cost_model(3)
    st.costs.rates = NoUplinkForVehicle0()
    s = create("split_lora", {})
    s.setup(1, 0)
    e, bits, pre_t, up_t, rate = s.option_cost(st, st.costs, np.arange(3), 8, 0.2, np.full(3, 20e6))
    assert np.all(np.isfinite(e)) and e[0] > 1e3 * e[1] and rate[0] == 0.0
    with np.errstate(invalid="raise"):
        s.configure(st)
