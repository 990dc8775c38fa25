"""Split federated LoRA (arXiv 2407.02924): device scheduling and bandwidth by Lyapunov optimisation."""
from __future__ import annotations

import numpy as np

from iovsim.costs.split import edge_share
from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundState, Strategy
from iovsim.strategies.common import SeedOnlyState, select
from iovsim.strategies.lyapunov import LyapunovBase, expected_per_rsu


@register("split_lora")
class SplitLoRA(LyapunovBase):
    """The vehicle keeps the embedding and the task head, the RSU's edge server runs the encoder with
    LoRA (plan.extra["split"] = True, train_options {"split": True}; `fl.split_layer` keeps more
    layers on the vehicle); the engine runs it as the per-step protocol of `iovsim.costs.split`,
    and this planner prices it with the same formula (`CostModel.split_round_cost`).

    Each round the RSU schedules devices and shares bandwidth to minimize the drift-plus-penalty of
    the convergence bound: the bound's partial-participation term shrinks by (n_i / mean n) for each
    device whose upload arrives, so

        V * (-(n_i / mean n) * P_success(b)) + (Q_i + Z_task) * E_i(b) / Ebar_i

    at the fixed `rank` (None = state.default_rank) and the default transmit power; E = device-side
    compute energy + p x uplink airtime (activations and gradients of every step, the device's update). Long-term constraint: the virtual energy
    queues of LyapunovBase (per vehicle Q_i, per task Z_t). Devices with no option better than skipping
    are not scheduled; at most max_participants. Bandwidth: shares per RSU ~ sqrt(c_i), alternating
    with the schedule `bandwidth_iters` times.

    Handover window: P_success = probability the uplink (all its bits) finishes inside the dwell window
    left after the rest of the round (download, device and edge compute, downlink of each step), under
    Rayleigh fading around the mean SNR at the share; vehicles about to leave are not scheduled.
    Aggregation: FedAvg (base default).
    """

    def __init__(self, V: float = 10.0, rank: int | None = None, vehicle_energy_budget_j: float = 0.0,
                 bandwidth_iters: int = 2, margin: float = 1.0):
        super().__init__(V=V, vehicle_energy_budget_j=vehicle_energy_budget_j, bandwidth_iters=bandwidth_iters,
                         margin=margin)
        if rank is not None and int(rank) < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.rank = None if rank is None else int(rank)

    def options(self, state: RoundState):
        return [(self.rank or int(state.default_rank), float(state.default_tx_power_w))]

    def utility(self, state: RoundState, idx, rank: int):
        n = np.asarray(state.num_samples, float)
        conn = state.connected()
        mean_n = n[conn].mean() if conn.size else 1.0
        return n[idx] / max(mean_n, 1e-9)

    def option_cost(self, state, costs, idx, rank, power, bw_hz):
        """The split round at the plan's rates (`CostModel.split_round_cost`, the per-step protocol
        the engine runs): energy = device compute + p x uplink airtime; the uplink carries every
        step's activations and gradients and the device's update. The edge server is priced at the
        share the engine charges (`costs.split.edge_share`) with the split jobs this planner expects on
        the RSU (`lyapunov.expected_per_rsu`, every one at once: pessimistic)."""
        steps = np.full(idx.shape, state.local_steps)
        rsu = np.asarray(state.rsu, int)[idx]
        share = edge_share(expected_per_rsu(state, state.connected())[rsu])
        pw = np.full(idx.shape, power)
        up = np.asarray(costs.upload_rate_bps(idx, pw, bw_hz), float)
        down = np.asarray(costs.download_rate_bps(idx, bw_hz), float)
        # A vehicle without rate (below the lowest usable SINR) gets a huge finite cost, not an infinite
        # one: 0 x inf would make its drift-plus-penalty NaN.
        rc = costs.split_round_cost(idx, np.full(idx.shape, rank), steps, pw, np.maximum(up, 1e-9),
                                    np.maximum(down, 1e-9), share, rsu)
        return rc.energy_j, rc.uplink_bits, rc.time_s - rc.uplink_s, rc.uplink_s, up

    def train_option(self, rank: int) -> dict:
        return {"split": True}

    def configure(self, state: RoundState) -> Plan:
        plan = self._plan(state)
        plan.extra["split"] = True
        return plan


@register("split_random")
class SplitRandom(SeedOnlyState, Strategy):
    """The baseline of arXiv 2407.02924's scheduler: split training as split_lora runs it, but the
    participants are drawn at random among the connected vehicles (up to max_participants, the paired
    keys of `common.selection_keys`) and share their RSU's bandwidth equally, at the default power.
    No dwell window or energy is looked at: that is what the Lyapunov scheduler adds."""

    def __init__(self, rank: int | None = None):
        super().__init__()
        if rank is not None and int(rank) < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.rank = None if rank is None else int(rank)

    def configure(self, state: RoundState) -> Plan:
        chosen = select(state, np.asarray(state.connected(), dtype=int), state.max_participants, "random",
                        self.seed, {})
        return Plan(participants=chosen, rank=np.full(chosen.size, self.rank or int(state.default_rank)),
                    train_options=[{"split": True} for _ in chosen], extra={"split": True})

