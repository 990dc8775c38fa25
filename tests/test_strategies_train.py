"""Every strategy through rounds of real local training (real model, real data, real aggregation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from iovsim.engine.aggregation import aggregate_task, vehicle_update  # noqa: E402
from iovsim.fl.aggregate import lora_modules, lora_product  # noqa: E402
from iovsim.fl.train import TrainJob  # noqa: E402
from iovsim.strategies import create, names  # noqa: E402

from test_strategies import PARAMS  # noqa: E402
from iovsim.strategies.base import RoundFeedback, RoundState, state_rank  # noqa: E402

ALPHA = 16.0
pytestmark = pytest.mark.slow


def state_of(round_index: int, n: int, max_participants: int, tier: int = 2) -> RoundState:
    """n vehicles at one RSU, long dwell windows, unbounded budgets: every vehicle can train."""
    ones = np.ones(n)
    return RoundState(
        round_index=round_index, time_s=10.0 * round_index, vehicle_ids=[f"veh{i}" for i in range(n)],
        task=np.zeros(n, int), task_names=["bbc"], rsu=np.zeros(n, int), num_rsus=1, x_m=0 * ones, y_m=0 * ones,
        speed_mps=10 * ones, sinr_db=15 * ones, uplink_rate_bps=1e7 * ones, downlink_rate_bps=5e7 * ones,
        dwell_time_s=np.full(n, np.inf), tier=np.full(n, tier), device_flops_per_s=1e11 * ones,
        device_power_w=10 * ones, device_memory_bytes=8e9 * ones, num_samples=np.full(n, 40),
        rsu_bandwidth_hz=np.array([20e6]), rsu_load=np.array([n]), energy_budget_j=np.array([np.inf]),
        max_participants=max_participants, local_steps=2, default_rank=8, ranks=[2, 4, 8],
        default_tx_power_w=0.2, max_tx_power_w=0.5, round_deadline_s=60.0)


def run_round(strategy, ex, glob: dict, st: RoundState, steps: int, lr: float = 5e-3):
    """configure -> client_state -> real training -> RSU then cloud aggregation -> observe."""
    plan = strategy.configure(st)
    jobs = []
    for k, i in enumerate(plan.participants):
        start = strategy.client_state(glob, int(plan.rank[k]))
        rows = np.arange(40 * i, 40 * i + 40)
        opts = dict(plan.train_options[k]) if plan.train_options else {}
        jobs.append(TrainJob(st.vehicle_ids[i], 0, start, int(plan.rank[k]), steps, 8, lr, 1e-2, rows,
                             [st.round_index, int(i)], opts))
    results = ex.train(jobs)
    new = aggregate_task(strategy, glob, {0: [vehicle_update(r) for r in results]})
    K = len(results)
    fb = RoundFeedback(
        round_index=st.round_index, time_s=st.time_s, vehicle_ids=[r.vehicle_id for r in results],
        task=np.zeros(K, int), rank=np.asarray(plan.rank), status=["ok"] * K, compute_time_s=np.ones(K),
        upload_time_s=np.ones(K), latency_s=2 * np.ones(K), energy_j=np.ones(K),
        train_loss_before=np.asarray([r.loss_before for r in results]),
        train_loss_after=np.asarray([r.loss_after for r in results]), task_accuracy=np.array([0.5]),
        task_loss=np.array([1.0]), task_energy_j=np.array([float(K)]), round_latency_s=2.0)
    return new, strategy.observe(fb), results


def effective_update(state: dict, module: str) -> torch.Tensor:
    """What the global applies to a module: merged delta + (alpha / R) B A."""
    out = lora_product(state, module, ALPHA)
    if f"{module}.delta" in state:
        out = out + state[f"{module}.delta"].to(torch.float64)
    return out


@pytest.mark.parametrize("name", names())
def test_one_real_round_moves_the_global_lora_weights(real_model, name):
    """After one round the global adapter has learned: its LoRA update is nonzero and its factors moved."""
    _, ex, init = real_model
    s = create(name, PARAMS.get(name, {}))
    s.setup(1, 0, ALPHA)
    new, _, results = run_round(s, ex, init, state_of(0, n=3, max_participants=3), steps=2)
    assert len(results) >= 2
    for m in lora_modules(init):
        assert float(torch.linalg.norm(effective_update(new, m))) > 1e-6, (name, m)
    r = state_rank(new)
    for key in [k for k in init if k.endswith(".lora_A")]:
        a0 = init[key][:r]
        assert new[key].abs().sum() > 0 and not torch.allclose(new[key], a0), (name, key)
    for key in [k for k in init if k.endswith(".lora_B")]:
        if name == "flora":
            # FLoRA merges the stacked product into the base each round and hands out B = 0 again
            # (its paper's re-initialization); the learned part is the merged delta.
            assert torch.count_nonzero(new[key]) == 0 and f"{key[:-len('.lora_B')]}.delta" in new
        else:
            assert torch.count_nonzero(new[key]) > 0, (name, key)


def test_hetlora_ranks_shrink_over_real_rounds(real_model):
    """Self-pruning on real training: each vehicle's returned rank decays over rounds, and is logged."""
    _, ex, init = real_model
    s = create("hetlora", {"tier_ranks": [8]})
    s.setup(1, 0, ALPHA)
    glob = init
    ranks = {}
    for t in range(5):
        glob, logged, results = run_round(s, ex, glob, state_of(t, n=2, max_participants=2, tier=0), steps=3, lr=1e-2)
        for r in results:
            assert logged[f"rank/{r.vehicle_id}"] == r.rank
            ranks.setdefault(r.vehicle_id, []).append(r.rank)
        assert state_rank(glob) == 8
    for vid, seq in ranks.items():
        assert seq[0] <= 8 and all(b <= a for a, b in zip(seq, seq[1:])), (vid, seq)
    assert any(seq[-1] < 8 for seq in ranks.values()), ranks
    assert s.pruned_rank and all(v < 8 for v in s.pruned_rank.values())
