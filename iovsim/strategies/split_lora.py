"""Split federated LoRA (arXiv 2407.02924): device scheduling and bandwidth by Lyapunov optimisation."""
from __future__ import annotations

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundState
from iovsim.strategies.lyapunov import LyapunovBase


@register("split_lora")
class SplitLoRA(LyapunovBase):
    """The vehicle keeps the embedding and the task head, the RSU runs the encoder with LoRA
    (plan.extra["split"] = True, train_options {"split": True}); the engine costs it with the
    CostModel's split terms (device_compute_time_s, split_upload_bits: activations per step).

    Each round the RSU schedules devices and shares bandwidth to minimize the drift-plus-penalty of
    the convergence bound: the bound's partial-participation term shrinks by (n_i / mean n) for each
    device whose upload arrives, so

        V * (-(n_i / mean n) * P_success(b)) + (Q_i + Z_task) * E_i(b) / Ebar_i

    at the fixed `rank` (None = state.default_rank) and the default transmit power; E = device-side
    compute energy + p x upload time of the activations. Long-term constraint: the virtual energy
    queues of LyapunovBase (per vehicle Q_i, per task Z_t). Devices with no option better than skipping
    are not scheduled; at most max_participants. Bandwidth: shares per RSU ~ sqrt(c_i), alternating
    with the schedule `bandwidth_iters` times.

    Handover window: P_success = probability the activations upload finishes inside the dwell window
    (Rayleigh fading around the mean SNR at the share), so vehicles about to leave are not scheduled.
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
        steps = np.full(idx.shape, state.local_steps)
        r = np.full(idx.shape, rank)
        full_t = np.asarray(costs.compute_time_s(idx, r, steps), float)
        full_e = np.asarray(costs.compute_energy_j(idx, r, steps), float)
        dev_t = np.asarray(costs.device_compute_time_s(idx, r, steps), float)
        dev_e = full_e * np.where(full_t > 0, dev_t / np.maximum(full_t, 1e-12), 0.0)
        bits = float(costs.split_upload_bits(rank, int(state.local_steps)))
        down_t = float(costs.adapter_bits(rank)) / np.maximum(np.asarray(state.downlink_rate_bps, float)[idx], 1e-9)
        rate = np.asarray(costs.upload_rate_bps(idx, np.full(idx.shape, power), bw_hz), float)
        up_t = bits / np.maximum(rate, 1e-9)
        return dev_e + power * up_t, np.full(idx.shape, bits), down_t + dev_t, up_t, rate

    def train_option(self, rank: int) -> dict:
        return {"split": True}

    def configure(self, state: RoundState) -> Plan:
        plan = self._plan(state)
        plan.extra["split"] = True
        return plan
