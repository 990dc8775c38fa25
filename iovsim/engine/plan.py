"""A strategy's Plan, checked and turned into the round's participants and their transfer jobs."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iovsim.costs.split import edge_share
from iovsim.engine.errors import RunError
from iovsim.engine.observe import participant_costs, split_step_s, split_work, update_bits
from iovsim.engine.transfer import TRANSFER_MODES, TransferJob


@dataclass
class Participant:
    """A vehicle asked to train this round, as planned."""

    vehicle_id: str
    row: int                   # row in the RoundState
    rsu: int                   # serving RSU at the start (a migrated update counts at its outcome's rsu)
    rank: int
    steps: int                 # local steps it trains (fewer than planned_steps for an early upload)
    tx_power_w: float
    bandwidth_hz: float
    dwell_pred_s: float
    job: TransferJob
    options: dict = field(default_factory=dict)
    planned_steps: int = 0     # the plan's local steps
    transfer_mode: str = "lose"   # the plan's transfer mode (job.mode is what the transfer does)
    update_bits: float = float("nan")   # its adapter update (observe.update_bits; split: not the activations)


def participants_of(plan, state, local_steps: int, bandwidth_allocation: str, strategy_name: str) -> list[Participant]:
    """The plan's participants with their power, bandwidth, bits, compute time and transfer mode.

    Raises RunError when the plan asks an unconnected vehicle, or one whose device cannot hold the
    training job (`RoundState.fits_memory`), to train, gives an RSU more than its
    bandwidth, or names an unknown transfer mode.
    """
    K = len(plan.participants)
    vi = np.asarray(plan.participants, dtype=int)
    if K and np.any(state.rsu[vi] < 0):
        raise RunError(f"strategy {strategy_name} asked an unconnected vehicle to train")
    if K and state.fits_memory is not None and not np.all(np.asarray(state.fits_memory, dtype=bool)[vi]):
        raise RunError(f"strategy {strategy_name} asked a vehicle whose device memory cannot hold the training job "
                       "(RoundState.connected() leaves it out)")
    planned = np.asarray(plan.local_steps if plan.local_steps is not None else np.full(K, local_steps), dtype=int)
    power = plan.tx_power_w if plan.tx_power_w is not None else np.full(K, state.default_tx_power_w)
    power = np.minimum(np.asarray(power, dtype=float), state.max_tx_power_w)
    options = plan.train_options or [{} for _ in range(K)]
    modes = transfer_modes(options, strategy_name)
    split = [bool(o.get("split")) for o in options]
    costs = with_plan_download(participant_costs(state.costs, vi, plan.rank, planned, split), plan, split)
    steps, job_modes = early_steps(state, vi, planned, modes, costs, split_steps_s(state, vi, plan.rank, split))
    if not np.array_equal(steps, planned):
        costs = with_plan_download(participant_costs(state.costs, vi, plan.rank, steps, split), plan, split)
    down_bits, up_bits, compute_s, compute_j = costs
    work = [split_work(state.costs, vi[k], plan.rank[k], steps[k]) if split[k] else None for k in range(K)]
    rsu_of = state.rsu[vi]
    update = update_bits(state.costs, vi, plan.rank)
    bw = bandwidth_hz(plan, state, rsu_of, uplink_bits(up_bits, work), vi, bandwidth_allocation, strategy_name)
    return [Participant(state.vehicle_ids[vi[k]], int(vi[k]), int(rsu_of[k]), int(plan.rank[k]), int(steps[k]),
                        float(power[k]), float(bw[k]), float(state.dwell_time_s[vi[k]]),
                        TransferJob(state.vehicle_ids[vi[k]], int(rsu_of[k]), float(power[k]), float(bw[k]),
                                    float(down_bits[k]), float(compute_s[k]), float(up_bits[k]), float(compute_j[k]),
                                    job_modes[k], work[k]),
                        options=dict(options[k]), planned_steps=int(planned[k]), transfer_mode=modes[k],
                        update_bits=float(update[k]))
            for k in range(K)]


def uplink_bits(up_bits: np.ndarray, work: list) -> np.ndarray:
    """What each participant sends in the round (a split one: every step's activations and gradients too)."""
    return np.asarray([b if w is None else b + w.steps * sum(x.amount for x in w.segments if x.kind == "up")
                       for b, w in zip(up_bits, work)], dtype=float)


def with_plan_download(costs: tuple, plan, split: list[bool]) -> tuple:
    """participant_costs with the plan's own download sizes where it gives them (e.g. FLoRA's stack)."""
    if plan.download_bits is None:
        return costs
    down = np.where(split, costs[0], np.asarray(plan.download_bits, dtype=float))
    return (down, *costs[1:])


def transfer_modes(options: list[dict], strategy_name: str) -> list[str]:
    """Each participant's `transfer_mode` option (default `lose`); RunError for an unknown one."""
    modes = [str(o.get("transfer_mode", "lose")) for o in options]
    for m in modes:
        if m not in TRANSFER_MODES:
            raise RunError(f"strategy {strategy_name} planned transfer_mode {m!r}; "
                           f"expected one of {', '.join(TRANSFER_MODES)}")
    return modes


def split_steps_s(state, vi: np.ndarray, rank: np.ndarray, split: list[bool]) -> np.ndarray:
    """Per participant, one split step's estimated time (nan unsplit): the state's rates, and the
    RSU's edge server shared with every split participant of that RSU at once (`costs.split.edge_share`,
    the rule split_lora plans with)."""
    on_rsu = np.bincount(state.rsu[vi][np.asarray(split, bool)], minlength=state.num_rsus) if any(split) else None
    return np.asarray([split_step_s(state.costs, state, vi[k], rank[k], edge_share(on_rsu[state.rsu[vi[k]]]))
                       if split[k] else np.nan for k in range(len(vi))], dtype=float)


def early_steps(state, vi: np.ndarray, planned: np.ndarray, modes: list[str], costs,
                split_steps: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Local steps each participant trains, and the mode its transfer runs in.

    An `early_upload` participant whose estimated download + compute + upload outlasts its predicted
    dwell trains only the steps that fit (at least 1) and its transfer runs as `early_upload`; if the
    whole round fits it trains every step, and if not even one step fits it runs as `lose`. The
    estimate is the one strategies plan with (common.round_time_s): the RoundState's rates at the
    default power and an equal bandwidth share, and compute time linear in the steps; for a split
    participant a step is its protocol's time (`split_steps`, the formula split_lora plans with).
    """
    steps, job_modes = planned.copy(), list(modes)
    down_bits, up_bits, compute_s, _ = costs
    for k, mode in enumerate(modes):
        if mode != "early_upload":
            continue
        i = int(vi[k])
        dwell = float(np.nan_to_num(state.dwell_time_s[i], nan=np.inf))
        radio_s = (down_bits[k] / max(float(state.downlink_rate_bps[i]), 1e-9)
                   + up_bits[k] / max(float(state.uplink_rate_bps[i]), 1e-9))
        train_s, step_s = compute_s[k], compute_s[k] / max(int(planned[k]), 1)
        if split_steps is not None and not np.isnan(split_steps[k]):
            step_s = float(split_steps[k])
            train_s = step_s * int(planned[k])
        if radio_s + train_s <= dwell:
            job_modes[k] = "lose"   # nothing to cut: an ordinary round
            continue
        fit = int(np.floor((dwell - radio_s) / step_s)) if step_s > 0 else 0
        if fit >= 1:
            steps[k] = min(fit, int(planned[k]))
        else:
            job_modes[k] = "lose"
    return steps, job_modes


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
