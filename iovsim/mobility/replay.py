"""Exact trajectory replay: vehicles follow their GPS tracks (moveToXY each step), not SUMO's driver model.

The replay file (`replay.jsonl`, written by `trajectories.import_traces`) holds one JSON object per
trip: `vehicle_id`, `route` (its first matched edge), `time_s`, `x_m`, `y_m` (simulation time, net
metres). The session calls, around every `simulationStep()`:

    replay = ExactReplay(path); replay.attach(api)
    ...  replay.before_step(t_next); api.simulationStep(); replay.after_step()

`before_step(t)` adds the vehicles whose track starts within the coming step (SUMO inserts them on
the lane nearest their first point) and places every inserted vehicle at its track interpolated at
`t` (the time the coming step reaches, so after the step SUMO reports exactly that position,
`keepRoute=2`: even off the lanes); `after_step()` removes the vehicles whose track has ended
(as arrivals, so `simulation.getArrivedIDList()` reports them).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iovsim.mobility.fileio import open_text
from iovsim.mobility.scenario import ScenarioError
from iovsim.mobility.sumo import SumoSession

REMOVE_ARRIVED = 2  # traci.constants.REMOVE_ARRIVED: counted as arrived, not as vaporised


@dataclass
class ReplayTrack:
    vehicle_id: str
    route: list[str]
    time_s: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray

    def position(self, t: float) -> tuple[float, float, float]:
        """Interpolated (x, y, angle in SUMO degrees: 0 = north, clockwise) at time t."""
        x = float(np.interp(t, self.time_s, self.x_m))
        y = float(np.interp(t, self.time_s, self.y_m))
        i = int(np.clip(np.searchsorted(self.time_s, t, side="right"), 1, len(self.time_s) - 1))
        dx, dy = self.x_m[i] - self.x_m[i - 1], self.y_m[i] - self.y_m[i - 1]
        if dx == 0 and dy == 0:
            angle = float("nan")
        else:
            angle = math.degrees(math.atan2(dx, dy)) % 360.0
        return x, y, angle


def _offset_on_shape(shape: np.ndarray, x: float, y: float) -> float:
    """Distance along a polyline to the point nearest (x, y)."""
    a, b = shape[:-1], shape[1:]
    ab = b - a
    seg = np.hypot(ab[:, 0], ab[:, 1])
    t = np.clip(((x - a[:, 0]) * ab[:, 0] + (y - a[:, 1]) * ab[:, 1]) / np.maximum(seg ** 2, 1e-12), 0.0, 1.0)
    px, py = a[:, 0] + t * ab[:, 0], a[:, 1] + t * ab[:, 1]
    i = int(np.argmin(np.hypot(px - x, py - y)))
    return float(np.concatenate([[0.0], np.cumsum(seg)])[i] + t[i] * seg[i])


def read_replay(path: str | Path) -> list[ReplayTrack]:
    """Tracks of an exact-replay JSON lines file (gzip-compressed if it ends in .gz), sorted by start time."""
    path = Path(path)
    tracks = []
    try:
        with open_text(path) as f:
            lines = f.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: cannot read the replay file ({e})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            t = np.asarray(d["time_s"], dtype=float)
            x = np.asarray(d["x_m"], dtype=float)
            y = np.asarray(d["y_m"], dtype=float)
            vid = str(d["vehicle_id"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ScenarioError(f"{path}: line {n}: expected a JSON object with vehicle_id, time_s, x_m, y_m "
                                f"({type(e).__name__}: {e})") from None
        if not (len(t) == len(x) == len(y)) or len(t) < 1:
            raise ScenarioError(f"{path}: line {n}: field 'time_s'/'x_m'/'y_m': expected equally long, non-empty lists")
        if np.any(np.diff(t) <= 0):
            raise ScenarioError(f"{path}: line {n}: field 'time_s': expected strictly increasing times")
        tracks.append(ReplayTrack(vid, [str(e) for e in d.get("route") or []], t, x, y))
    tracks.sort(key=lambda tr: tr.time_s[0])
    return tracks


class ExactReplay:
    """Drives the replay vehicles of one SUMO simulation along their GPS tracks."""

    def __init__(self, path_or_tracks, *, vtype: str = "DEFAULT_VEHTYPE", keep_route: int = 2):
        self.tracks = read_replay(path_or_tracks) if isinstance(path_or_tracks, (str, Path)) else list(path_or_tracks)
        self.vtype = vtype
        self.keep_route = keep_route   # 2: free placement, even off the lanes (the GPS position as it is)
        self.api = None
        self._next = 0                 # index of the next track to start
        self.pending: dict[str, ReplayTrack] = {}   # added, not yet inserted by SUMO
        self.active: dict[str, ReplayTrack] = {}    # inserted, following their tracks
        self.just_inserted: list[str] = []           # inserted in the last step (not yet on their track)
        self.finished: list[str] = []
        self.skipped: list[str] = []   # tracks SUMO refused (no route edge)
        self.cut: list[str] = []       # removed by SUMO before their track ended (a jam teleport)
        self._cut_now: list[str] = []
        self._last_t = -math.inf
        self._angle: dict[str, float] = {}

    def attach(self, api) -> "ExactReplay":
        """Bind to a started libsumo module or traci connection."""
        self.api = api
        return self

    def _candidates(self, tr: ReplayTrack):
        """(edge, pos, lane) places to insert at: the nearest lane SUMO finds, the first matched edge."""
        api = self.api
        x0, y0 = float(tr.x_m[0]), float(tr.y_m[0])
        try:
            road, p, li = api.simulation.convertRoad(x0, y0, False, "passenger")
            if road and not road.startswith(":"):
                yield road, float(p), int(li)
        except Exception:  # noqa: BLE001 - no road near the first point
            pass
        if tr.route:
            try:
                shape = np.asarray(api.lane.getShape(f"{tr.route[0]}_0"), dtype=float)
                length = float(api.lane.getLength(f"{tr.route[0]}_0"))
                yield tr.route[0], min(_offset_on_shape(shape, x0, y0), length), 0
            except Exception:  # noqa: BLE001 - the edge is not in this net
                pass

    def _add(self, tr: ReplayTrack) -> bool:
        """Add the vehicle on the lane point nearest its first GPS point (a normal SUMO insertion)."""
        api = self.api
        x0, y0 = float(tr.x_m[0]), float(tr.y_m[0])
        best, best_d = None, float("inf")
        for edge, pos, lane in self._candidates(tr):
            try:
                px, py = api.simulation.convert2D(edge, pos, lane)
            except Exception:  # noqa: BLE001
                continue
            d = math.hypot(px - x0, py - y0)
            if d < best_d:
                best, best_d = (edge, pos, lane), d
        if best is None:
            return False
        edge, pos, lane = best
        rid = f"replay_route_{tr.vehicle_id}"
        try:
            api.route.add(rid, [edge])
            api.vehicle.add(tr.vehicle_id, rid, typeID=self.vtype, depart="now", departLane=str(lane),
                            departPos=f"{pos:.2f}", departSpeed="0")
        except Exception:  # noqa: BLE001 - duplicate id, lane not allowed
            return False
        return True

    def before_step(self, time_s: float | None = None):
        """Place the replay vehicles where their tracks are at `time_s` (default: now + one step).

        A vehicle is added one step before its track starts: SUMO inserts it on the lane nearest its
        first point, and from the next step on it follows the track. (Moving a vehicle in the very
        step it is inserted leaves it without a lane, and libsumo crashes when asked its road.)
        """
        api = self.api
        dt = float(api.simulation.getDeltaT())
        if time_s is None:
            time_s = float(api.simulation.getTime()) + dt
        self._last_t = time_s
        while self._next < len(self.tracks) and self.tracks[self._next].time_s[0] < time_s + dt - 1e-9:
            tr = self.tracks[self._next]
            self._next += 1
            if tr.time_s[-1] < time_s - 1e-9 or not self._add(tr):
                self.skipped.append(tr.vehicle_id)   # over before the simulation got there, or no road
                continue
            self.pending[tr.vehicle_id] = tr
        gone = []
        for vid, tr in self.active.items():
            x, y, angle = tr.position(time_s)
            if math.isnan(angle):
                angle = self._angle.get(vid, 0.0)
            self._angle[vid] = angle
            try:
                api.vehicle.moveToXY(vid, "", -1, x, y, angle, self.keep_route)
            except Exception:  # noqa: BLE001 - SUMO no longer knows it (removed by other code)
                gone.append(vid)
        self._cut(gone)

    def _cut(self, vids):
        """Vehicles SUMO removed before their track ended: no longer driven, reported by `after_step`."""
        for vid in vids:
            del self.active[vid]
            self._angle.pop(vid, None)
        self.cut += vids
        self._cut_now += vids

    def after_step(self) -> list[str]:
        """Start moving the vehicles SUMO inserted; remove those whose track ended. Returns the ids of
        the vehicles that left: those removed here, and those SUMO removed before their track ended
        (`cut`; exact-replay configs turn jam teleports off with `--time-to-teleport -1`)."""
        api = self.api
        self.just_inserted = []
        # A jam teleport removes a vehicle whose one-edge route it "teleports beyond" even while TraCI
        # moves it (a cab standing at a red light longer than --time-to-teleport, say).
        self._cut([vid for vid in api.simulation.getArrivedIDList() if vid in self.active])
        if self.pending:
            for vid in api.simulation.getDepartedIDList():
                tr = self.pending.pop(vid, None)
                if tr is not None:
                    self.active[vid] = tr
                    self.just_inserted.append(vid)
            for vid in [v for v, tr in self.pending.items() if tr.time_s[-1] <= self._last_t]:
                self._remove(vid)                    # never got a free spot on the lane
                del self.pending[vid]
                self.skipped.append(vid)
        done = [vid for vid, tr in self.active.items() if tr.time_s[-1] <= self._last_t + 1e-9]
        for vid in done:
            self._remove(vid)
            del self.active[vid]
            self._angle.pop(vid, None)
        self.finished += done
        left, self._cut_now = done + self._cut_now, []
        return left

    def _remove(self, vid: str):
        try:
            # a subscribed vehicle removed by TraCI makes the next step fail ("not known") in libsumo
            self.api.vehicle.unsubscribe(vid)
            self.api.vehicle.remove(vid, REMOVE_ARRIVED)
        except Exception:  # noqa: BLE001 - SUMO already removed it (teleport, end)
            pass


class ReplaySession(SumoSession):
    """SumoSession whose scenario vehicles follow their GPS tracks exactly (`scenario.replay`).

    Per step: `replay.before_step(t_next)`, the normal step, then `replay.after_step()`; vehicles
    whose track ended leave the snapshot and are reported in `arrived` like any arrival. A vehicle
    appears (and is reported `departed`) from the first step on its track: in its insertion step,
    one step earlier, it stands on the lane nearest its first point and is left out of the snapshot.
    """

    def __init__(self, scenario, **kw):
        super().__init__(scenario, **kw)
        spec = scenario.replay or {}
        if not spec.get("file"):
            raise ScenarioError(f"scenario {scenario.name}: field 'replay.file': expected the exact-replay file")
        self.replay = ExactReplay(spec["file"])
        self._deferred: list[str] = []

    def start(self):
        super().start()
        self.replay.attach(self.api)
        return self

    def _step(self):
        self.replay.before_step(self.time_s + self.step_length_s)
        snap = super()._step()
        removed = set(self.replay.after_step())
        hide = removed | set(self.replay.just_inserted)
        enrolled_now = [v for v in snap.departed if v in self.replay.just_inserted]
        snap.departed = [v for v in self._deferred if v in self._tracked and v not in removed] + \
            [v for v in snap.departed if v not in hide]
        self._deferred = enrolled_now
        if any(v in hide for v in snap.vehicle_ids):
            keep = np.array([v not in hide for v in snap.vehicle_ids], dtype=bool)
            snap.vehicle_ids = [v for v, k in zip(snap.vehicle_ids, keep) if k]
            snap.edge = [e for e, k in zip(snap.edge, keep) if k]
            snap.xy_m, snap.speed_mps, snap.angle_deg = snap.xy_m[keep], snap.speed_mps[keep], snap.angle_deg[keep]
            snap.lane_pos_m, snap.route_index = snap.lane_pos_m[keep], snap.route_index[keep]
        for vid in sorted(removed):
            if vid in self._tracked:
                self._tracked.discard(vid)
                snap.arrived.append(vid)
        return snap
