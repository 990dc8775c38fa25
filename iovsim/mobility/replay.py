"""Exact trajectory replay: vehicles follow their GPS tracks (moveToXY each step), not SUMO's driver model.

The replay file (`replay.jsonl`, written by `trajectories.import_traces`) holds one JSON object per
trip: `vehicle_id`, `route` (its first matched edge), `time_s`, `x_m`, `y_m` (simulation time, net
metres). The session calls, around every `simulationStep()`:

    replay = ExactReplay(path); replay.attach(api)
    ...  replay.before_step(t_next); api.simulationStep(); replay.after_step()

`before_step(t)` adds the vehicles whose track has started by `t` and places every active vehicle
at its track interpolated at `t` (the time the coming step reaches, so after the step SUMO reports
exactly that position); `after_step()` removes the vehicles whose track has ended.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iovsim.mobility.scenario import ScenarioError

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


def read_replay(path: str | Path) -> list[ReplayTrack]:
    """Tracks of an exact-replay JSON lines file, sorted by start time."""
    path = Path(path)
    tracks = []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
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
        self.active: dict[str, ReplayTrack] = {}
        self.finished: list[str] = []
        self.skipped: list[str] = []   # tracks SUMO refused (no route edge)
        self._last_t = -math.inf
        self._angle: dict[str, float] = {}

    def attach(self, api) -> "ExactReplay":
        """Bind to a started libsumo module or traci connection."""
        self.api = api
        return self

    def _route_for(self, tr: ReplayTrack) -> str | None:
        edge = tr.route[0] if tr.route else None
        if edge is None:
            try:
                edge = self.api.simulation.convertRoad(float(tr.x_m[0]), float(tr.y_m[0]), False, "passenger")[0]
            except Exception:  # noqa: BLE001 - no road near the first point
                return None
        rid = f"replay_route_{tr.vehicle_id}"
        try:
            self.api.route.add(rid, [edge])
        except Exception:  # noqa: BLE001 - unknown edge
            return None
        return rid

    def before_step(self, time_s: float | None = None):
        """Place the replay vehicles where their tracks are at `time_s` (default: now + one step)."""
        api = self.api
        if time_s is None:
            time_s = float(api.simulation.getTime()) + float(api.simulation.getDeltaT())
        self._last_t = time_s
        while self._next < len(self.tracks) and self.tracks[self._next].time_s[0] <= time_s + 1e-9:
            tr = self.tracks[self._next]
            self._next += 1
            if tr.time_s[-1] < time_s - 1e-9:
                self.skipped.append(tr.vehicle_id)   # started and ended before this step (begin later than its track)
                continue
            rid = self._route_for(tr)
            if rid is None:
                self.skipped.append(tr.vehicle_id)
                continue
            api.vehicle.add(tr.vehicle_id, rid, typeID=self.vtype, depart="now", departPos="base")
            self.active[tr.vehicle_id] = tr
        for vid, tr in self.active.items():
            x, y, angle = tr.position(time_s)
            if math.isnan(angle):
                angle = self._angle.get(vid, 0.0)
            self._angle[vid] = angle
            api.vehicle.moveToXY(vid, "", -1, x, y, angle, self.keep_route)

    def after_step(self) -> list[str]:
        """Remove the vehicles whose track ended; returns their ids."""
        done = [vid for vid, tr in self.active.items() if tr.time_s[-1] <= self._last_t + 1e-9]
        for vid in done:
            try:
                self.api.vehicle.remove(vid, REMOVE_ARRIVED)
            except Exception:  # noqa: BLE001 - SUMO already removed it (teleport, end)
                pass
            del self.active[vid]
            self._angle.pop(vid, None)
        self.finished += done
        return done

    @property
    def end_time_s(self) -> float:
        return max((tr.time_s[-1] for tr in self.tracks), default=0.0)
