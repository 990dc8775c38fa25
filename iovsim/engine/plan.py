"""A strategy's Plan, checked and turned into the round's participants and their transfer jobs."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iovsim.engine.errors import RunError
from iovsim.engine.observe import participant_costs
from iovsim.engine.transfer import TransferJob


@dataclass
class Participant:
    """A vehicle asked to train this round, as planned."""

    vehicle_id: str
    row: int                   # row in the RoundState
    rsu: int
    rank: int
    steps: int
    tx_power_w: float
    bandwidth_hz: float
    dwell_pred_s: float
    job: TransferJob
    options: dict = field(default_factory=dict)


def participants_of(plan, state, local_steps: int, bandwidth_allocation: str, strategy_name: str) -> list[Participant]:
    """The plan's participants with their power, bandwidth, bits and compute time.

    Raises RunError when the plan asks an unconnected vehicle to train or gives an RSU more than
    its bandwidth.
    """
    K = len(plan.participants)
    vi = np.asarray(plan.participants, dtype=int)
    if K and np.any(state.rsu[vi] < 0):
        raise RunError(f"strategy {strategy_name} asked an unconnected vehicle to train")
    steps = plan.local_steps if plan.local_steps is not None else np.full(K, local_steps)
    power = plan.tx_power_w if plan.tx_power_w is not None else np.full(K, state.default_tx_power_w)
    power = np.minimum(np.asarray(power, dtype=float), state.max_tx_power_w)
    options = plan.train_options or [{} for _ in range(K)]
    split = [bool(o.get("split")) for o in options]
    down_bits, up_bits, compute_s, compute_j = participant_costs(state.costs, vi, plan.rank, steps, split)
    if plan.download_bits is not None:  # the method sends more than the adapter (e.g. FLoRA's stack)
        down_bits = np.where(split, down_bits, np.asarray(plan.download_bits, dtype=float))
    rsu_of = state.rsu[vi]
    bw = bandwidth_hz(plan, state, rsu_of, up_bits, vi, bandwidth_allocation, strategy_name)
    return [Participant(state.vehicle_ids[vi[k]], int(vi[k]), int(rsu_of[k]), int(plan.rank[k]), int(steps[k]),
                        float(power[k]), float(bw[k]), float(state.dwell_time_s[vi[k]]),
                        TransferJob(state.vehicle_ids[vi[k]], int(rsu_of[k]), float(power[k]), float(bw[k]),
                                    float(down_bits[k]), float(compute_s[k]), float(up_bits[k]), float(compute_j[k])),
                        options=dict(options[k])) for k in range(K)]


def bandwidth_hz(plan, state, rsu_of: np.ndarray, up_bits: np.ndarray, vi: np.ndarray, allocation: str,
                 strategy_name: str) -> np.ndarray:
    """Each participant's bandwidth: the plan's share of its RSU, else the configured allocation."""
    from iovsim.channel import allocate_bandwidth

    if plan.bandwidth_share is not None:
        bw = np.asarray(plan.bandwidth_share, dtype=float) * state.rsu_bandwidth_hz[rsu_of]
        for m in np.unique(rsu_of):
            if bw[rsu_of == m].sum() > state.rsu_bandwidth_hz[m] * (1 + 1e-9):
                raise RunError(f"strategy {strategy_name} gave RSU {m} more than its bandwidth")
        return bw
    if not len(vi):
        return np.zeros(0)
    se = np.log2(1 + 10 ** (state.sinr_db[vi] / 10))
    return allocate_bandwidth(allocation, rsu_of, up_bits, se, state.rsu_bandwidth_hz)
