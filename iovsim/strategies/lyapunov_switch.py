"""LoRA module switching with power and bandwidth control (arXiv 2509.19306), online by Lyapunov."""
from __future__ import annotations

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundState
from iovsim.strategies.common import ZeroPadToGlobalRank
from iovsim.strategies.lyapunov import LyapunovBase


@register("lyapunov_switch")
class LyapunovSwitch(ZeroPadToGlobalRank, LyapunovBase):
    """Each round every connected vehicle may switch LoRA module (module = rank in `state.ranks`);
    the RSU picks module m, transmit power p (`power_levels` geometric levels from `min_tx_power_w` to
    `state.max_tx_power_w`) and bandwidth share b to minimize the drift-plus-penalty

        V * (-u_i(m) * P_success(m, p, b)) + (Q_i + Z_task) * E_i(m, p, b) / Ebar_i

    with u_i(m) = (n_i / mean n) * log2(1 + m) / log2(1 + max rank) (larger modules learn more, data-
    weighted) and E = compute energy + p x upload time. Skipping costs 0, so a vehicle is asked only
    when some option has negative drift-plus-penalty; the best up to max_participants are kept.

    Handover window / outage: P_success is the probability that the upload finishes inside the
    predicted dwell window (capped by the round deadline, divided by `margin`) after download and
    compute, under block fading around the mean SNR of (p, b): P(|h|^2 >= g_th / g) with the channel's
    fading (`channel.fading`: Rayleigh exp(-g_th / g), or Rician with the serving link's K); with
    `fading: none` the paper's Rayleigh assumption is kept. A vehicle about to leave its cell gets a
    small module, more power / bandwidth, or is not asked.

    Bandwidth: alternating optimisation, `bandwidth_iters` times: shares per RSU b_i ~ sqrt(c_i) (the
    minimizer of sum c_i / b_i with sum b_i = 1), then module and power re-chosen.
    Queues: see LyapunovBase (per vehicle Q_i, per task Z_t). Aggregation: FedAvg at equal ranks,
    else HetLoRA zero-padding (`iovsim.fl.aggregate.zero_pad_aggregate`, sample weights).
    """

    def __init__(self, V: float = 10.0, power_levels: int = 4, min_tx_power_w: float = 0.01,
                 vehicle_energy_budget_j: float = 0.0, bandwidth_iters: int = 2, margin: float = 1.0):
        super().__init__(V=V, vehicle_energy_budget_j=vehicle_energy_budget_j, bandwidth_iters=bandwidth_iters,
                         margin=margin)
        if int(power_levels) < 1 or min_tx_power_w <= 0:
            raise ValueError("expected power_levels >= 1 and min_tx_power_w > 0")
        self.power_levels = int(power_levels)
        self.min_tx_power_w = float(min_tx_power_w)

    def options(self, state: RoundState):
        pmax = float(state.max_tx_power_w)
        pmin = min(self.min_tx_power_w, pmax)
        powers = np.geomspace(pmin, pmax, self.power_levels) if self.power_levels > 1 else np.array([pmax])
        return [(int(r), float(p)) for r in sorted(set(int(x) for x in state.ranks)) for p in powers]

    def utility(self, state: RoundState, idx, rank: int):
        n = np.asarray(state.num_samples, float)
        conn = state.connected()
        mean_n = n[conn].mean() if conn.size else 1.0
        top = max(int(r) for r in state.ranks)
        return (n[idx] / max(mean_n, 1e-9)) * np.log2(1 + rank) / np.log2(1 + top)

    def configure(self, state: RoundState) -> Plan:
        return self._plan(state)

