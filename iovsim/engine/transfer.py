"""A round's transfer as a pure function: download the global adapter, compute, upload the update.

`run_transfer` moves every participant through its phases, one simulation step at a time, from a
per-step `LinkView` that the caller's `step` callback returns (the engine steps SUMO and the
channel there; a test returns made-up views). An update is lost when its vehicle is handed over to
another RSU (`lost_handover`), leaves the map (`lost_left`), or is not delivered by the deadline or
the end of the simulation (`lost_deadline`). Energy = the share of the compute energy the vehicle
got through + transmit power x the upload time it actually used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

ACTIVE_PHASES = ("download", "train", "upload")


@dataclass
class TransferJob:
    """One participant's round: its link at the start and the work it must do."""

    vehicle_id: str
    rsu: int                   # serving RSU at the start; the update must reach it
    tx_power_w: float
    bandwidth_hz: float
    down_bits: float           # the global adapter (or split training's gradients)
    compute_s: float           # local training time on the device
    up_bits: float             # the update (or split training's activations)
    compute_energy_j: float    # energy of the whole local training


@dataclass
class TransferOutcome:
    status: str = ""           # ok | lost_handover | lost_left | lost_deadline
    phase: str = "download"    # the last phase reached (done when delivered)
    download_time_s: float = 0.0
    compute_time_s: float = 0.0
    upload_time_s: float = 0.0
    done_at_s: float = float("nan")   # delivery or loss time; nan when SUMO ended first
    energy_j: float = 0.0


@dataclass
class LinkView:
    """The links of one simulation step for the participants still transferring.

    A participant absent from `serving` has left the map. Rates are for its own transmit power and
    bandwidth.
    """

    time_s: float
    serving: dict              # vehicle id -> serving RSU (-1 = none)
    uplink_rate_bps: dict      # vehicle id -> rate
    downlink_rate_bps: dict


StepFn = Callable[[dict], "LinkView | None"]


def run_transfer(jobs: list[TransferJob], t0_s: float, deadline_s: float, step: StepFn) -> list[TransferOutcome]:
    """Move each job through download, compute and upload until all are delivered or lost.

    `step(phases)` advances the simulation by one step and returns its `LinkView`, or None when the
    simulation has ended; `phases` (vehicle id -> phase, lost ones "lost") is for display only.
    `deadline_s` is absolute (t0_s + the round deadline).
    """
    out = [TransferOutcome() for _ in jobs]
    phases = {j.vehicle_id: "download" for j in jobs}
    left = {j.vehicle_id: (j.down_bits, j.up_bits) for j in jobs}
    active = list(range(len(jobs)))
    now = t0_s
    while active:
        view = step(phases)
        if view is None:
            for k in active:
                out[k].status = "lost_deadline"
            break
        dt, t_prev, now = view.time_s - now, now, view.time_s
        still = []
        for k in active:
            j, o = jobs[k], out[k]
            if j.vehicle_id not in view.serving:
                o.status, o.done_at_s = "lost_left", now
                phases.pop(j.vehicle_id, None)
            elif int(view.serving[j.vehicle_id]) != j.rsu:
                o.status, o.done_at_s = "lost_handover", now
                phases[j.vehicle_id] = "lost"
            else:
                left[j.vehicle_id] = _advance(j, o, left[j.vehicle_id], view, t_prev, dt)
                phases[j.vehicle_id] = o.phase
                if not o.status:
                    still.append(k)
        active = still
        if active and now + 1e-9 >= deadline_s:
            for k in active:
                out[k].status, out[k].done_at_s = "lost_deadline", now
                phases[jobs[k].vehicle_id] = "lost"
            active = []
    for j, o in zip(jobs, out):
        o.energy_j = energy_j(j, o)
    return out


def _advance(j: TransferJob, o: TransferOutcome, left: tuple, view: LinkView, t_prev: float, dt: float) -> tuple:
    """Spend one step of `dt` seconds on the job's phases in order; returns the bits still to move."""
    down_left, up_left = left
    budget = dt
    if o.phase == "download":
        rate = view.downlink_rate_bps[j.vehicle_id]
        use = min(budget, down_left / rate if rate > 0 else math.inf)
        o.download_time_s += use
        down_left -= use * rate if rate > 0 else 0.0
        budget -= use
        if down_left <= 1e-6:
            o.phase = "train"
    if o.phase == "train" and budget > 0:
        use = min(budget, j.compute_s - o.compute_time_s)
        o.compute_time_s += use
        budget -= use
        if o.compute_time_s >= j.compute_s - 1e-12:
            o.phase = "upload"
    if o.phase == "upload" and budget > 0:
        rate = view.uplink_rate_bps[j.vehicle_id]
        use = min(budget, up_left / rate if rate > 0 else math.inf)
        o.upload_time_s += use
        up_left -= use * rate if rate > 0 else 0.0
        budget -= use
        if up_left <= 1e-6:
            o.phase, o.status, o.done_at_s = "done", "ok", t_prev + (dt - budget)
    return down_left, up_left


def energy_j(job: TransferJob, o: TransferOutcome) -> float:
    """Energy a participant actually spent: the compute it did and the radio time it transmitted."""
    comp = 0.0
    if job.compute_s > 0 and o.compute_time_s > 0:
        comp = job.compute_energy_j * min(1.0, o.compute_time_s / job.compute_s)
    return comp + job.tx_power_w * o.upload_time_s


def round_latency_s(outcomes: list[TransferOutcome], t0_s: float) -> float:
    """Time from the round's start to its last delivery or loss (0 without participants)."""
    if not outcomes:
        return 0.0
    latency = max((o.done_at_s for o in outcomes if o.status == "ok"), default=t0_s) - t0_s
    return max(latency, max((o.done_at_s - t0_s for o in outcomes if not math.isnan(o.done_at_s)), default=0.0))
