"""One SUMO step through the channel: enrol new vehicles, update links, record handovers and dwell."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iovsim.engine.transfer import LinkView


@dataclass
class StepView:
    """What one step produced: SUMO's snapshot and the channel's links for the same vehicles."""

    snap: object    # iovsim.mobility.sumo.Snapshot
    link: object    # iovsim.channel.LinkState


@dataclass
class Journal:
    """Handover and dwell rows waiting for the round's log, and the open dwell predictions.

    While `recording` is false (replaying mobility to a checkpoint) nothing is written: those
    rows are already in the logs.
    """

    handover_rows: list = field(default_factory=list)
    dwell_rows: list = field(default_factory=list)
    dwell_open: dict = field(default_factory=dict)
    round_handovers: int = 0
    recording: bool = True

    def open_dwell(self, round_index: int, vehicle_id: str, rsu: int, start_s: float, predicted_s: float):
        self.dwell_open[vehicle_id] = {"round": round_index, "vehicle": vehicle_id, "rsu": rsu, "start_s": start_s,
                                       "predicted_s": predicted_s}

    def close_dwell(self, vehicle_id: str, time_s: float, how: str):
        pend = self.dwell_open.pop(vehicle_id, None)
        if pend is not None and self.recording:
            self.dwell_rows.append({**pend, "actual_s": time_s - pend["start_s"], "end": how})

    def record_handover(self, ev, round_index: int):
        self.round_handovers += 1
        self.close_dwell(ev.vehicle_id, ev.time_s, "handover")
        if self.recording:
            self.handover_rows.append({
                "time_s": ev.time_s, "round": round_index, "vehicle": ev.vehicle_id, "from_rsu": ev.from_rsu,
                "to_rsu": ev.to_rsu, "rsrp_from_dbm": ev.rsrp_from_dbm, "rsrp_to_dbm": ev.rsrp_to_dbm,
                "x_m": ev.x_m, "y_m": ev.y_m, "kind": ev.kind, "ping_pong": int(bool(ev.ping_pong))})

    def take_rows(self) -> tuple[list, list]:
        """The handover and dwell rows since the last call."""
        out = (self.handover_rows, self.dwell_rows)
        self.handover_rows, self.dwell_rows = [], []
        return out


def advance(session, channel, fleet, journal: Journal, round_index: int) -> StepView:
    """Step SUMO once and carry the step through enrolment, the channel and the journal."""
    snap = session.step()
    for vid in snap.departed:
        fleet.enrol(vid)
    link = channel.step(snap.time_s, snap.vehicle_ids, snap.xy_m, snap.speed_mps)
    for ev in link.handovers:
        journal.record_handover(ev, round_index)
    for vid in snap.arrived:
        journal.close_dwell(vid, snap.time_s, "left")
    return StepView(snap, link)


def link_view(channel, view: StepView, jobs: list) -> LinkView:
    """The transfer's view of one step for `jobs` (TransferJob): serving RSU and rates at their own
    power and bandwidth, with this step's small-scale fading (`channel.fading`); a job whose vehicle
    has left the map is absent."""
    link = view.link
    row = link.index()
    live = [j for j in jobs if j.vehicle_id in row]
    serving = {j.vehicle_id: int(link.serving[row[j.vehicle_id]]) for j in live}
    up, down = {}, {}
    if live:
        idx = np.asarray([row[j.vehicle_id] for j in live])
        bw = np.asarray([j.bandwidth_hz for j in live])
        u = channel.uplink_rate_bps(link, idx, np.asarray([j.tx_power_w for j in live]), bw, instantaneous=True)
        d = channel.downlink_rate_bps(link, idx, bw, instantaneous=True)
        for j, ui, di in zip(live, u, d):
            up[j.vehicle_id], down[j.vehicle_id] = float(ui), float(di)
    return LinkView(view.snap.time_s, serving, up, down)
