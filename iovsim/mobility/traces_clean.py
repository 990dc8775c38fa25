"""Cleaning GPS traces: project onto the net, drop bad points (counted per reason), split into trips."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from iovsim.mobility.traces_read import RawTrace, TraceError
from iovsim.mobility.traces_report import ImportReport
from iovsim.mobility.traces_tracks import separate_devices


@dataclass
class Trip:
    """A cleaned piece of one vehicle's trace, in net coordinates, strictly increasing time."""

    trip_id: str
    vehicle_id: str
    time_s: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    edges: list[str] = field(default_factory=list)
    repaired_gaps: int = 0
    unreachable_points: int = 0   # fixes the matcher left out: no route joins them to the others
    status: str = "in_bounds"   # in_bounds -> matched | truncated | unmatched

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0])


@dataclass
class CleanConfig:
    max_speed_mps: float = field(default=60.0, metadata={"gt": 0, "le": 1e4})
    """No kept step is faster than this: points are split into sub-tracks at this speed (two devices
    interleaved under one id; see `traces_tracks`) and a point reached faster is an impossible jump."""
    max_gap_s: float = field(default=180.0, metadata={"gt": 0, "le": 1e9})
    """A trip is split where two consecutive points are further apart in time."""
    min_points: int = field(default=5, metadata={"ge": 1, "le": 10**9})
    """Trips with fewer points are dropped (short_trip)."""
    min_duration_s: float = field(default=60.0, metadata={"ge": 0, "le": 1e9})
    """Trips shorter than this are dropped (short_trip)."""
    map_margin_m: float = field(default=0.0, metadata={"ge": 0, "le": 1e7})
    """Points further than this outside the net's boundary are off the map."""


def project(trace: RawTrace, net) -> tuple[np.ndarray, np.ndarray]:
    """Net x/y of a trace (lon/lat converted with the net's geo-reference)."""
    if trace.x_m is not None:
        return trace.x_m.astype(float), trace.y_m.astype(float)
    if not net.hasGeoProj():
        raise TraceError(f"{trace.source}: positions are lon/lat but the net has no geo-reference "
                         f"(<location projParameter>); convert the traces to net x/y")
    x, y = net.convertLonLat2XY(trace.lon, trace.lat)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def clean_trace(trace: RawTrace, x: np.ndarray, y: np.ndarray, boundary, cfg: CleanConfig,
                counts: dict) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], dict]:
    """Drop bad points (counted in `counts` by reason) and split into trips.

    Returns the (t, x, y) pieces and what the device separation (`traces_tracks`) found:
    `second_device` (points dropped as another unit's) and `jumps` (steps above the speed limit
    between consecutive points on the map, as read)."""
    xmin, ymin, xmax, ymax = boundary
    m = cfg.map_margin_m
    on_map = (x >= xmin - m) & (x <= xmax + m) & (y >= ymin - m) & (y <= ymax + m)
    counts["off_map"] += int(np.sum(~on_map))
    left_map = np.cumsum(~on_map)   # changes between two kept points where the vehicle left the map
    idx = _in_time_order(trace.time_s, on_map, counts)
    if not len(idx):
        return [], {"second_device": 0, "jumps": 0}
    t, x, y, left_map = trace.time_s[idx], x[idx], y[idx], left_map[idx]
    fast = np.hypot(np.diff(x), np.diff(y)) > cfg.max_speed_mps * np.diff(t)
    dev = separate_devices(t, x, y, cfg.max_speed_mps, cfg.max_gap_s, cfg.min_points)
    counts["second_device"] += dev["second_device"]
    counts["speed_jump"] += dev["outliers"]
    keep, jumps = _consistent(np.flatnonzero(dev["keep"]), dev["label"], t, x, y, cfg, counts)
    t, x, y, left_map = t[keep], x[keep], y[keep], left_map[keep]
    # a new trip where the time gap is long, where the vehicle left the map, and where another kept
    # sub-track takes over with a jump
    cuts = np.union1d(np.flatnonzero((np.diff(t) > cfg.max_gap_s) | (np.diff(left_map) != 0)) + 1, jumps)
    pieces = list(zip(np.split(t, cuts), np.split(x, cuts), np.split(y, cuts)))
    return pieces, {"second_device": dev["second_device"], "jumps": int(fast.sum())}


def _in_time_order(t: np.ndarray, on_map: np.ndarray, counts: dict) -> np.ndarray:
    """Indices of the points on the map that come later than the last one kept (duplicates and
    time reversals counted and dropped)."""
    keep, last = [], -math.inf
    for i in np.flatnonzero(on_map):
        if t[i] == last:
            counts["duplicate"] += 1
        elif t[i] < last:
            counts["time_reversal"] += 1
        else:
            keep.append(i)
            last = t[i]
    return np.asarray(keep, dtype=int)


def _consistent(keep: np.ndarray, label: np.ndarray, t, x, y, cfg: CleanConfig,
                counts: dict) -> tuple[np.ndarray, np.ndarray]:
    """Walk the kept points in time order; a step faster than max_speed_mps (within max_gap_s: after a
    long gap anything goes) drops the point inside one sub-track and starts a new trip between two.
    Returns the points kept and where a new trip starts (positions in them)."""
    out: list[int] = []
    cuts: list[int] = []
    for i in keep:
        if out:
            j = out[-1]
            dt = t[i] - t[j]
            if dt <= cfg.max_gap_s and math.hypot(x[i] - x[j], y[i] - y[j]) > cfg.max_speed_mps * dt:
                if label[i] == label[j]:
                    counts["speed_jump"] += 1
                    continue
                cuts.append(len(out))
        out.append(i)
    return np.asarray(out, dtype=int), np.asarray(cuts, dtype=int)


def clean_traces(traces: list[RawTrace], net, cfg: CleanConfig | None = None,
                 report: ImportReport | None = None) -> list[Trip]:
    """Project, clean and split all traces into trips (short trips dropped); fills `report`."""
    cfg = cfg or CleanConfig()
    report = report if report is not None else ImportReport()
    boundary = net.getBoundary()
    trips: list[Trip] = []
    on_map_any = False
    for tr in traces:
        report.points_read += len(tr)
        x, y = project(tr, net)
        pieces, dev = clean_trace(tr, x, y, boundary, cfg, report.dropped_points)
        if dev["second_device"]:
            report.interleaved[tr.vehicle_id] = {"jumps_over_max_speed": dev["jumps"],
                                                 "second_device_points": dev["second_device"],
                                                 "points_kept": sum(len(pc[0]) for pc in pieces)}
        on_map_any |= bool(pieces)
        report.trips_split += len(pieces)
        for k, (t, px, py) in enumerate(pieces):
            if len(t) < cfg.min_points or t[-1] - t[0] < cfg.min_duration_s:
                report.trips_short += 1
                report.dropped_points["short_trip"] += len(t)
                continue
            trips.append(Trip(f"{tr.vehicle_id}_{k}", tr.vehicle_id, t, px, py))
            report.points_kept += len(t)
    report.vehicles += len({tr.vehicle_id for tr in traces})
    if traces and not on_map_any:
        src = sorted({tr.source for tr in traces})
        where = src[0] if len(src) == 1 else f"{src[0]} (and {len(src) - 1} more)"
        hint = ""
        if net.hasGeoProj():
            lon0, lat0 = net.convertXY2LonLat(boundary[0], boundary[1])
            lon1, lat1 = net.convertXY2LonLat(boundary[2], boundary[3])
            hint = f" (map covers lon {lon0:.4f}..{lon1:.4f}, lat {lat0:.4f}..{lat1:.4f}; lat/lon columns swapped?)"
        raise TraceError(f"{where}: no point falls on the map{hint}")
    report.trips_in_bounds = len(trips)
    return trips
