"""What a round costs is what the method really does: each task's own sequence length, FLoRA's
real download, and accuracies printed with their standard error."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from iovsim.costs import CostModel, ModelShape, flops
from iovsim.engine.logs import accuracy_se, table_row
from iovsim.strategies import create
from iovsim.strategies.base import Plan, RoundFeedback

SHORT = ModelShape(num_layers=6, hidden_size=384, intermediate_size=1536, num_heads=12, vocab_size=30522,
                   lora_targets=[(384, 384), (384, 384)], head_params=(384 + 1) * 2, seq_len=40, batch_size=16)
LONG = replace(SHORT, seq_len=128, head_params=(384 + 1) * 5)


def _model(row_shapes=None):
    return CostModel(SHORT, flops_per_s=np.array([1e11, 1e11]), power_w=np.array([10.0, 10.0]),
                     cpu_frequency_hz=0.0, kappa=0.0, cycles_per_flop=0.0, rates=None, row_shapes=row_shapes)


def test_each_vehicle_is_costed_on_its_own_task_sequence_length():
    c = _model([SHORT, LONG])  # vehicle 0 trains task 0 (40 tokens), vehicle 1 task 1 (128 tokens)
    t = c.compute_time_s(np.array([0, 1]), np.array([8, 8]), np.array([3, 3]))
    assert t[0] == 3 * flops.flops_per_step(SHORT, 8) / 1e11
    assert t[1] == 3 * flops.flops_per_step(LONG, 8) / 1e11
    assert t[1] > 2.5 * t[0]  # attention and FFN FLOPs grow with the sequence
    e = c.compute_energy_j(np.array([0, 1]), np.array([8, 8]), np.array([3, 3]))
    assert np.allclose(e, 10.0 * t)
    # without per-vehicle shapes every vehicle gets the model's one shape (the old, task-0-for-all cost)
    assert np.allclose(_model().compute_time_s(np.array([0, 1]), 8, 3), t[0])


# MiniLM-L6, LoRA on query and value (6 layers x 2 targets x r (384 + 384)) + a (384 + 1) x classes head, fp32
THREE = replace(SHORT, head_params=(384 + 1) * 3)   # e.g. tweets: negative, neutral, positive
FIVE = replace(SHORT, head_params=(384 + 1) * 5)    # e.g. BBC News: five topics
BITS_R8_THREE = (6 * 2 * 8 * 768 + 385 * 3) * 32    # 2,396,256
BITS_R8_FIVE = (6 * 2 * 8 * 768 + 385 * 5) * 32     # 2,420,896


def _mixed_heads_state():
    """A RoundState of 4 vehicles, tasks [0, 1, 1, 0] (3 and 5 classes), with the real cost model."""
    from test_strategies import make_state

    from iovsim.strategies.common import StateRates

    st = make_state(round_index=0, n=4, seed=5, num_tasks=2)
    st.task = np.array([0, 1, 1, 0])
    st.rsu = np.array([0, 0, 1, 1])
    st.dwell_time_s = np.full(4, np.inf)
    st.costs = CostModel(THREE, flops_per_s=st.device_flops_per_s, power_w=st.device_power_w, cpu_frequency_hz=0.0,
                         kappa=0.0, cycles_per_flop=0.0, rates=StateRates(st),
                         row_shapes=[[THREE, FIVE][t] for t in st.task])
    return st


def test_each_vehicle_pays_for_its_own_task_head_planned_and_charged():
    """A 5-class task's update is 2 x 385 values (24,640 bits in fp32) bigger than a 3-class one's, by hand;
    the engine charges it and the strategies' round-time estimate plans with it."""
    from iovsim.engine.plan import participants_of
    from iovsim.strategies.common import round_time_s

    assert BITS_R8_FIVE - BITS_R8_THREE == 2 * 385 * 32
    st = _mixed_heads_state()
    c = st.costs
    assert np.array_equal(c.adapter_bits(8, [0, 1, 2, 3]), [BITS_R8_THREE, BITS_R8_FIVE, BITS_R8_FIVE, BITS_R8_THREE])
    assert c.adapter_bits(8, 1) == BITS_R8_FIVE and c.adapter_bits(8) == BITS_R8_THREE  # no vehicle: `shape`
    plan = Plan(participants=np.array([0, 1, 2, 3]), rank=np.array([8, 8, 8, 8]))
    parts = participants_of(plan, st, st.local_steps, "equal", "test")
    want = [BITS_R8_THREE, BITS_R8_FIVE, BITS_R8_FIVE, BITS_R8_THREE]
    assert [p.job.up_bits for p in parts] == want and [p.job.down_bits for p in parts] == want
    idx = np.arange(4)
    comp = c.compute_time_s(idx, np.full(4, 8), np.full(4, st.local_steps))
    expect = np.asarray(want) / st.downlink_rate_bps + comp + np.asarray(want) / st.uplink_rate_bps
    assert np.allclose(round_time_s(st, idx, 8), expect, rtol=1e-12)


def test_a_participants_update_bits_are_its_adapter_split_or_not():
    """vehicles.csv's update_bits (what efficiency counts delivered): the adapter at its rank with its own
    task's head, by hand; a split participant's is its device part + the edge's adapters, not its steps'
    activations, which its uplink carries besides."""
    from iovsim.engine.plan import participants_of, uplink_bits

    st = _mixed_heads_state()
    plan = Plan(participants=np.array([0, 1, 2, 3]), rank=np.array([8, 8, 8, 8]),
                train_options=[{}, {}, {"split": True}, {"split": True}])
    parts = participants_of(plan, st, st.local_steps, "equal", "test")
    want = [BITS_R8_THREE, BITS_R8_FIVE, BITS_R8_FIVE, BITS_R8_THREE]
    assert [p.update_bits for p in parts] == want
    assert [p.job.up_bits for p in parts[:2]] == want[:2]                 # unsplit: the upload is the update
    for p in parts[2:]:
        device, _, edge_adapters = st.costs.split_state_bits(p.row, p.rank)
        assert p.job.up_bits == device and device + edge_adapters == p.update_bits
        assert uplink_bits([p.job.up_bits], [p.job.split])[0] > 10 * p.update_bits   # the activations


def test_flora_downloads_the_adapter_plus_what_the_base_absorbed():
    from test_strategies import make_state

    s = create("flora", {"tier_ranks": [4]})
    s.setup(2, 0)
    st = make_state(round_index=0, n=40, seed=2)
    c = st.costs
    plan = s.configure(st)
    assert np.allclose(plan.download_bits, [c.adapter_bits(r) for r in plan.rank])  # round 1: nothing stacked yet
    K = plan.participants.size
    status = ["ok"] * (K - 1) + ["lost_handover"]
    task = np.asarray(st.task)[plan.participants]
    fb = RoundFeedback(round_index=0, time_s=0.0, vehicle_ids=[st.vehicle_ids[i] for i in plan.participants],
                       task=task, rank=plan.rank, status=status, compute_time_s=np.ones(K), upload_time_s=np.ones(K),
                       latency_s=np.ones(K), energy_j=np.ones(K), train_loss_before=np.ones(K),
                       train_loss_after=np.ones(K), task_accuracy=np.zeros(2), task_loss=np.zeros(2),
                       task_energy_j=np.zeros(2), round_latency_s=1.0)
    s.observe(fb)
    stacked = [int(sum(r for r, t2, x in zip(plan.rank, task, status) if t2 == t and x == "ok")) for t in (0, 1)]
    assert s.stacked_rank == stacked and sum(stacked) == 4 * (K - 1)
    st2 = make_state(round_index=1, n=40, seed=3)
    plan2 = s.configure(st2)
    for i, r, bits in zip(plan2.participants, plan2.rank, plan2.download_bits):
        k = stacked[int(st2.task[i])]
        lora = st2.costs.adapter_bits(k) - st2.costs.adapter_bits(0)
        assert bits == st2.costs.adapter_bits(int(r)) + min(st2.costs.delta_bits(), lora)
        assert bits > st2.costs.adapter_bits(int(r))


def test_the_engine_charges_the_plans_download():
    from test_strategies import make_state

    from iovsim.engine.plan import participants_of

    st = make_state(round_index=0, n=30, seed=1)
    plan = Plan(participants=st.connected()[:3], rank=np.array([4, 4, 4]), download_bits=np.array([1e6, 2e6, 3e6]))
    parts = participants_of(plan, st, st.local_steps, "equal", "test")
    assert [p.job.down_bits for p in parts] == [1e6, 2e6, 3e6]


def test_standard_error_beside_every_accuracy():
    assert math.isclose(accuracy_se(0.8, 1000), math.sqrt(0.8 * 0.2 / 1000), rel_tol=1e-12)
    assert math.isnan(accuracy_se(0.5, 0))
    row = table_row(3, 90.0, [{"task": "bbc", "accuracy": 0.9, "accuracy_se": 0.0096, "lost_updates": 0,
                               "round_latency_s": 1.0, "energy_j": 2.0}], 4)
    assert row["acc_bbc"] == 0.9 and row["se_bbc"] == 0.0096
    from iovsim.viz.progress import _fmt_cell

    assert _fmt_cell("acc_bbc", 0.9, 0.0096) == "0.900±0.010"
