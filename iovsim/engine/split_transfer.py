"""Split training's round inside the transfer: the per-step protocol of `iovsim.costs.split` run
through the simulation, the RSUs' edge servers shared by the jobs on them.

A split job downloads the device's part (head + its adapters), runs `steps` local steps of the
protocol's sub-phases (device compute, activations up, edge compute, pooled output down, ...) and
uploads the device's part. In each simulation step of length dt the jobs advance together in
continuous time: a sub-phase of size x is worked off at its rate (`costs.split.segment_rate`: the
device's FLOP/s, this step's uplink or downlink rate, the edge FLOP/s it gets), and the time a
sub-phase leaves in the step goes to the next one (as for unsplit jobs). Edge servers use processor
sharing: while n jobs are in an edge sub-phase on one RSU, each gets 1/n of its FLOP/s; n changes at
the instants a job enters or leaves one, inside the step (rates stay those of the step).

Handovers (the rules of `transfer.py`): `lose` (and `early_upload`) lose the update; `migrate` moves
the job to the new RSU's edge server. The old RSU forwards over the backhaul what it holds: while
training, the edge's adapters with their AdamW moments; while uploading, the device's bits it got plus
the edge's adapters; nothing while downloading (every RSU has the global adapter). A migration inside
the server-bound part of a step (from the activations' upload to the last download) restarts that
step at the activations' upload: the old server's cached activations are not forwarded, the device
keeps its own forward pass. The edge waits for the forwarded state before it computes again. Without
coverage the radio waits; the device and the edge server holding the job go on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iovsim.costs.split import (DEFAULT_EDGE_FLOPS_PER_S, DEVICE, DOWN, EDGE, UP, edge_flops_of, edge_share, segment_rate,
                                server_bound)

# The transfer's phase of a job in each kind of sub-phase (device compute shows as "train", as unsplit).
SPLIT_PHASES = {DEVICE: "train", UP: "split_up", EDGE: "split_edge", DOWN: "split_down"}


@dataclass
class SplitWork:
    """A split participant's work, from the cost model (`CostModel.split_segments`, `split_state_bits`)."""

    segments: tuple             # costs.split.Segment of one local step, in order
    steps: int
    device_flops_per_s: float
    energy_per_flop_j: float
    state_bits: float           # the device's part: downloaded at the start, uploaded at the end
    server_state_bits: float    # the edge's adapters + optimizer moments (a migration while training)
    server_adapter_bits: float  # the edge's adapters alone (a migration after training)


@dataclass
class EdgeServers:
    """Every RSU's edge server (`rsu.edge_flops_per_s`: one number or one per RSU, `rsu.edge_power_w`)."""

    flops_per_s: float | list[float] = DEFAULT_EDGE_FLOPS_PER_S
    power_w: float = 70.0

    def __post_init__(self):
        # read at every simulation step of every edge sub-phase: convert a per-RSU list once
        self._flops = np.asarray(self.flops_per_s, dtype=float)

    def flops_of(self, rsu: int) -> float:
        return float(edge_flops_of(self._flops, rsu))


@dataclass
class SplitProgress:
    """Where a split job is: `seg` -1 = downloading, 0..n-1 = a sub-phase of a step, n = uploading."""

    work: SplitWork
    seg: int = -1
    left: float = 0.0
    steps_done: int = 0
    forward_done_s: float = -math.inf   # when what the old RSUs forwarded is at the current one
    device_flops: float = 0.0
    edge_wall_s: float = 0.0            # time spent in edge sub-phases (computing, sharing or waiting)

    def __post_init__(self):
        self.left = self.work.state_bits

    @property
    def kind(self) -> str:
        n = len(self.work.segments)
        return DOWN if self.seg < 0 else UP if self.seg >= n else self.work.segments[self.seg].kind

    def amount(self) -> float:
        n = len(self.work.segments)
        return self.work.state_bits if self.seg < 0 or self.seg >= n else self.work.segments[self.seg].amount


def delivered_status(mode: str, handovers: int) -> str:
    if mode == "early_upload":
        return "early"
    return "migrated" if handovers else "ok"


def split_phase(p: SplitProgress) -> str:
    n = len(p.work.segments)
    return "download" if p.seg < 0 else "upload" if p.seg >= n else SPLIT_PHASES[p.kind]


def split_migrate(o, p: SplitProgress, new_rsu: int, t_prev: float, backhaul) -> None:
    """Move a split job to `new_rsu`: the old RSU forwards what it holds (module docstring)."""
    w, n = p.work, len(p.work.segments)
    bits = 0.0
    if 0 <= p.seg < n:
        bits = w.server_state_bits
        first, last = server_bound(w.segments)
        if first <= p.seg <= last:
            p.seg, p.left = first, w.segments[first].amount
            o.phase = split_phase(p)
    elif p.seg >= n:
        bits = (w.state_bits - p.left) + w.server_adapter_bits
    if bits > 0:
        p.forward_done_s = backhaul.arrival_s(max(t_prev, p.forward_done_s), bits)
        o.forwarded_bits += bits
    o.rsu = new_rsu
    o.handovers += 1


def advance_split(items: list, view, t_prev: float, dt: float, edge: EdgeServers) -> None:
    """Spend one simulation step on every split job at once; `items` are (job, outcome, progress)."""
    t, end = t_prev, t_prev + dt
    live = list(items)
    while live and t < end - 1e-9:
        rates = [_rate(j, o, p, view, t, edge, live) for j, o, p in live]
        h = end - t
        for (_, _, p), r in zip(live, rates):
            if r > 0:
                h = min(h, p.left / r)
            elif p.kind == EDGE and p.forward_done_s > t + 1e-9:
                h = min(h, p.forward_done_s - t)
        for (j, o, p), r in zip(live, rates):
            _spend(j, o, p, r, h, t, edge)
        t += h
        live = [x for x in live if not x[1].status]


def _rate(j, o, p: SplitProgress, view, t: float, edge: EdgeServers, live: list) -> float:
    """The rate of the job's current sub-phase at time t (0 = it waits): the radio needs a serving
    RSU, the edge the job's state; n jobs on one edge server get 1/n of it each."""
    vid, kind = j.vehicle_id, p.kind
    linked = int(view.serving[vid]) >= 0
    up = float(view.uplink_rate_bps.get(vid, 0.0)) if linked else 0.0
    down = float(view.downlink_rate_bps.get(vid, 0.0)) if linked else 0.0
    edge_flops = 0.0
    if kind == EDGE and t + 1e-9 >= p.forward_done_s:
        n = sum(1 for _, o2, p2 in live if o2.rsu == o.rsu and p2.kind == EDGE and t + 1e-9 >= p2.forward_done_s)
        edge_flops = edge.flops_of(o.rsu) * float(edge_share(n))
    return float(segment_rate(kind, p.work.device_flops_per_s, up, down, edge_flops))


def _spend(j, o, p: SplitProgress, rate: float, h: float, t: float, edge: EdgeServers) -> None:
    """`h` seconds of the current sub-phase at `rate`; on its end, the next one starts."""
    kind = p.kind
    finished = rate > 0 and p.left - rate * h <= 1e-9 * p.amount()
    moved = p.left if finished else rate * h
    p.left -= moved
    if kind == DEVICE:
        o.compute_time_s += h
        p.device_flops += moved
    elif kind == EDGE:
        p.edge_wall_s += h
        o.edge_compute_s += moved / edge.flops_of(o.rsu)
    elif rate > 0:  # radio airtime only while the link carries bits
        if kind == UP:
            o.upload_time_s, o.bits_up = o.upload_time_s + h, o.bits_up + moved
        else:
            o.download_time_s, o.bits_down = o.download_time_s + h, o.bits_down + moved
    if finished:
        _next(j, o, p, t + h)


def _next(j, o, p: SplitProgress, t_done: float) -> None:
    n = len(p.work.segments)
    if p.seg == n:
        o.phase, o.status, o.done_at_s = "done", delivered_status(j.mode, o.handovers), t_done
        return
    if p.seg == n - 1:
        p.steps_done += 1
    step_over = p.seg < 0 or p.seg == n - 1   # the download, or a step's last sub-phase, is over
    p.seg = (0 if p.steps_done < p.work.steps else n) if step_over else p.seg + 1
    p.left = p.amount()
    o.phase = split_phase(p)


def finish_split(j, o, p: SplitProgress, edge: EdgeServers) -> None:
    """The outcome's totals: steps done, edge time and energy, and the device's energy."""
    o.steps_done = p.steps_done
    o.edge_wait_s = max(0.0, p.edge_wall_s - o.edge_compute_s)
    o.edge_energy_j = edge.power_w * o.edge_compute_s
    o.energy_j = p.device_flops * p.work.energy_per_flop_j + j.tx_power_w * o.upload_time_s
