"""A round's transfer as a pure function: download the global adapter, compute, upload the update.

`run_transfer` moves every participant through its phases, one simulation step at a time, from a
per-step `LinkView` that the caller's `step` callback returns (the engine steps SUMO and the
channel there; a test returns made-up views). Energy = the share of the compute energy the vehicle
got through + transmit power x the upload time it actually used (backhaul forwarding costs the
vehicle nothing).

Each job has a transfer mode (the strategy's plan, `train_options[k]["transfer_mode"]`):

- `lose` (the default): a handover to another RSU, or losing coverage, loses the update
  (`lost_handover`); delivered updates are `ok`.
- `migrate`: a handover in any phase moves the job to the new serving RSU. The step that first shows
  the new RSU is spent under it, so the old RSU holds what was uploaded by that step's start and
  forwards it from then over the backhaul (latency + bits / rate, one forward after the other when
  handovers follow each other); the rest of the download (every RSU holds the global adapter) or
  the upload continues at the new RSU, with the same bandwidth. The update is delivered when the
  vehicle's last bit and the forwarded part have both arrived, and counts at the final RSU
  (`TransferOutcome.rsu`); `migrated` if at least one handover happened, else `ok`. Without a serving
  RSU the radio waits (local compute goes on); if the forwarded part arrives after the deadline
  the update is `lost_deadline`.
- `early_upload`: the plan already cut the job's compute to the local steps that fit the predicted
  dwell (`compute_s`, `compute_energy_j` are those of the steps done); in the transfer it behaves as
  `lose`, and a delivered update is `early`.

In every mode an update is lost when its vehicle leaves the map (`lost_left`) or is not delivered
by the deadline or the end of the simulation (`lost_deadline`).

A job with `split` (split training) runs the per-step protocol of `iovsim.costs.split` instead of one
block of compute: see `split_transfer.py` (same handover rules; the edge servers are `edge`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from iovsim.engine.split_transfer import (SPLIT_PHASES, EdgeServers, SplitProgress, SplitWork, advance_split,
                                          delivered_status, finish_split, split_migrate)
from iovsim.strategies.base import DELIVERED, TRANSFER_MODES  # noqa: F401 - the plan's vocabulary, re-exported

ACTIVE_PHASES = ("download", "train", "upload", *(v for v in SPLIT_PHASES.values() if v != "train"))


@dataclass
class TransferJob:
    """One participant's round: its link at the start and the work it must do."""

    vehicle_id: str
    rsu: int                   # serving RSU at the start
    tx_power_w: float
    bandwidth_hz: float
    down_bits: float           # the global adapter (split: the device's part of it)
    compute_s: float           # local training time on the device (of the steps it will do)
    up_bits: float             # the update (split: the device's part of it)
    compute_energy_j: float    # energy of the whole local training (split: of the device's share)
    mode: str = "lose"         # lose | migrate | early_upload (see the module docstring)
    split: SplitWork | None = None   # split training: its per-step protocol (split_transfer.py)


@dataclass
class TransferOutcome:
    status: str = ""           # ok | migrated | early | lost_handover | lost_left | lost_deadline
    phase: str = "download"    # the last phase reached (done when delivered)
    download_time_s: float = 0.0
    compute_time_s: float = 0.0
    upload_time_s: float = 0.0
    done_at_s: float = float("nan")   # delivery or loss time; nan when SUMO ended first
    energy_j: float = 0.0
    rsu: int = -1              # the RSU that holds the update at the end (where it is aggregated)
    handovers: int = 0         # handovers the job migrated through
    forwarded_bits: float = 0.0   # bits RSUs forwarded over the backhaul
    bits_up: float = 0.0       # bits the vehicle sent over the air (split: activations, gradients, update)
    bits_down: float = 0.0     # bits it received over the air
    steps_done: int = 0        # split: local steps completed (0 unsplit)
    edge_compute_s: float = 0.0   # split: its edge FLOPs / the edge server's FLOP/s
    edge_wait_s: float = 0.0      # split: time in edge sub-phases beyond that (sharing, waiting for state)
    edge_energy_j: float = 0.0    # split: edge power x edge_compute_s (not in energy_j, the vehicle's)


@dataclass
class Backhaul:
    """The RSU-to-RSU link a migrated upload is forwarded over (default: ideal, no delay)."""

    latency_s: float = 0.0
    rate_bps: float = math.inf

    def arrival_s(self, start_s: float, bits: float) -> float:
        return start_s + self.latency_s + (bits / self.rate_bps if bits > 0 else 0.0)


@dataclass
class LinkView:
    """The links of one simulation step for the participants still transferring.

    A participant absent from `serving` has left the map. Rates are for its own transmit power and
    bandwidth, towards its serving RSU of this step.
    """

    time_s: float
    serving: dict              # vehicle id -> serving RSU (-1 = none)
    uplink_rate_bps: dict      # vehicle id -> rate
    downlink_rate_bps: dict


StepFn = Callable[[dict], "LinkView | None"]


@dataclass
class _Progress:
    """What a job still has to move, and when its forwarded part reaches the current RSU."""

    down_left: float
    up_left: float
    forward_done_s: float = -math.inf


def run_transfer(jobs: list[TransferJob], t0_s: float, deadline_s: float, step: StepFn,
                 backhaul: Backhaul | None = None, edge: EdgeServers | None = None) -> list[TransferOutcome]:
    """Move each job through download, compute and upload until all are delivered or lost.

    `step(phases)` advances the simulation by one step and returns its `LinkView`, or None when the
    simulation has ended; `phases` (vehicle id -> phase; lost ones "lost"; delivered ones "done",
    "migrated" or "early") is for display only. `deadline_s` is absolute (t0_s + the round deadline).
    `backhaul` is used by `migrate` jobs (default: ideal); `edge` by split jobs (default: EdgeServers()).
    """
    backhaul, edge = backhaul or Backhaul(), edge or EdgeServers()
    out = [TransferOutcome(rsu=j.rsu) for j in jobs]
    phases = {j.vehicle_id: "download" for j in jobs}
    prog = [_Progress(j.down_bits, j.up_bits) if j.split is None else SplitProgress(j.split) for j in jobs]
    active = list(range(len(jobs)))
    now = t0_s
    while active:
        view = step(phases)
        if view is None:
            for k in active:
                out[k].status = "lost_deadline"
            break
        dt, t_prev, now = view.time_s - now, now, view.time_s
        _step_jobs(jobs, out, prog, active, view, t_prev, dt, deadline_s, backhaul, edge)
        still = []
        for k in active:
            j, o = jobs[k], out[k]
            if o.status == "lost_left":
                phases.pop(j.vehicle_id, None)
                continue
            phases[j.vehicle_id] = _display_phase(o)
            if not o.status:
                still.append(k)
        active = still
        if active and now + 1e-9 >= deadline_s:
            for k in active:
                out[k].status, out[k].done_at_s = "lost_deadline", now
                phases[jobs[k].vehicle_id] = "lost"
            active = []
    for j, o, p in zip(jobs, out, prog):
        _finish(j, o, p, edge)
    return out


def _step_jobs(jobs, out, prog, active, view, t_prev, dt, deadline_s, backhaul, edge) -> None:
    """One simulation step of every active job: unsplit ones one by one, split ones together (they
    share the edge servers)."""
    split = []
    for k in active:
        if jobs[k].split is None:
            _step_job(jobs[k], out[k], prog[k], view, t_prev, dt, deadline_s, backhaul)
        elif _link(jobs[k], out[k], prog[k], view, t_prev, backhaul) is not None:
            split.append(k)
    advance_split([(jobs[k], out[k], prog[k]) for k in split], view, t_prev, dt, edge)
    for k in split:
        _late_forward(out[k], prog[k], deadline_s)


def _finish(j: TransferJob, o: TransferOutcome, p, edge: EdgeServers) -> None:
    """The outcome's totals: energy, and the bits that went over the air."""
    if j.split is not None:
        finish_split(j, o, p, edge)
        return
    o.bits_down, o.bits_up = j.down_bits - p.down_left, j.up_bits - p.up_left
    o.energy_j = energy_j(j, o)


def _display_phase(o: TransferOutcome) -> str:
    if o.status.startswith("lost"):
        return "lost"
    return {"ok": "done", "migrated": "migrated", "early": "early"}.get(o.status, o.phase)


def _step_job(j: TransferJob, o: TransferOutcome, p: _Progress, view: LinkView, t_prev: float, dt: float,
              deadline_s: float, backhaul: Backhaul) -> None:
    """One step of one job: the handover rules of its mode, then its phases."""
    serving = _link(j, o, p, view, t_prev, backhaul)
    if serving is None:
        return
    if serving < 0:  # migrate mode without coverage: the radio waits, the device computes
        _compute(j, o, dt)
        return
    _advance(j, o, p, view, t_prev, dt)
    _late_forward(o, p, deadline_s)


def _link(j: TransferJob, o: TransferOutcome, p, view: LinkView, t_prev: float, backhaul: Backhaul) -> int | None:
    """The handover rules of the job's mode at this step: its serving RSU, or None when it ended here."""
    now = view.time_s
    if j.vehicle_id not in view.serving:
        o.status, o.done_at_s = "lost_left", now
        return None
    serving = int(view.serving[j.vehicle_id])
    if serving != o.rsu and (j.mode != "migrate" or serving >= 0):
        if j.mode != "migrate":
            o.status, o.done_at_s = "lost_handover", now
            return None
        if j.split is None:
            _migrate(j, o, p, serving, t_prev, backhaul)
        else:
            split_migrate(o, p, serving, t_prev, backhaul)
    return serving


def _late_forward(o: TransferOutcome, p, deadline_s: float) -> None:
    """A delivered update counts when its forwarded part has arrived too (lost if after the deadline)."""
    if o.status and p.forward_done_s > o.done_at_s:
        o.done_at_s = p.forward_done_s
        if o.done_at_s > deadline_s + 1e-9:
            o.status, o.done_at_s = "lost_deadline", deadline_s


def _migrate(j: TransferJob, o: TransferOutcome, p: _Progress, new_rsu: int, t_prev: float,
             backhaul: Backhaul) -> None:
    """Move the job to `new_rsu`: the old RSU forwards every bit of the update it holds."""
    held = j.up_bits - p.up_left if o.phase == "upload" else 0.0
    if held > 0:
        p.forward_done_s = backhaul.arrival_s(max(t_prev, p.forward_done_s), held)
        o.forwarded_bits += held
    o.rsu = new_rsu
    o.handovers += 1


def _compute(j: TransferJob, o: TransferOutcome, budget: float) -> float:
    """Spend up to `budget` seconds of local training; returns the time left."""
    if o.phase != "train" or budget <= 0:
        return budget
    use = min(budget, j.compute_s - o.compute_time_s)
    o.compute_time_s += use
    if o.compute_time_s >= j.compute_s - 1e-12:
        o.phase = "upload"
    return budget - use


def _drain(bits_left: float, rate_bps: float, budget_s: float) -> tuple[float, float]:
    """Seconds of `budget_s` a transfer of `bits_left` at `rate_bps` uses, and the bits left after them."""
    use = min(budget_s, bits_left / rate_bps if rate_bps > 0 else math.inf)
    return use, bits_left - (use * rate_bps if rate_bps > 0 else 0.0)


def _advance(j: TransferJob, o: TransferOutcome, p: _Progress, view: LinkView, t_prev: float, dt: float) -> None:
    """Spend one step of `dt` seconds on the job's phases in order."""
    budget = dt
    if o.phase == "download":
        use, p.down_left = _drain(p.down_left, view.downlink_rate_bps[j.vehicle_id], budget)
        o.download_time_s += use
        budget -= use
        if p.down_left <= 1e-6:
            o.phase = "train"
    budget = _compute(j, o, budget)
    if o.phase == "upload" and budget > 0:
        use, p.up_left = _drain(p.up_left, view.uplink_rate_bps[j.vehicle_id], budget)
        o.upload_time_s += use
        budget -= use
        if p.up_left <= 1e-6:
            o.phase, o.status, o.done_at_s = "done", _delivered_status(j, o), t_prev + (dt - budget)


def _delivered_status(j: TransferJob, o: TransferOutcome) -> str:
    return delivered_status(j.mode, o.handovers)


def energy_j(job: TransferJob, o: TransferOutcome) -> float:
    """Energy an unsplit participant actually spent: the compute it did and the radio time it
    transmitted (a split one's is `split_transfer.finish_split`'s: its device FLOPs + uplink airtime)."""
    comp = 0.0
    if job.compute_s > 0 and o.compute_time_s > 0:
        comp = job.compute_energy_j * min(1.0, o.compute_time_s / job.compute_s)
    return comp + job.tx_power_w * o.upload_time_s


def round_latency_s(outcomes: list[TransferOutcome], t0_s: float) -> float:
    """Time from the round's start to its last delivery or loss (0 without participants)."""
    if not outcomes:
        return 0.0
    latency = max((o.done_at_s for o in outcomes if o.status in DELIVERED), default=t0_s) - t0_s
    return max(latency, max((o.done_at_s - t0_s for o in outcomes if not math.isnan(o.done_at_s)), default=0.0))
