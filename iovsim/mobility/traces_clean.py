"""Cleaning GPS traces: project onto the net, drop bad points (counted per reason), split into trips."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from iovsim.mobility.traces_read import RawTrace, TraceError
from iovsim.mobility.traces_report import ImportReport

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
    status: str = "in_bounds"   # in_bounds -> matched | truncated | unmatched

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0])



@dataclass
class CleanConfig:
    max_speed_mps: float = field(default=60.0, metadata={"gt": 0, "le": 1e4})
    """A point reached faster than this from the previous kept point is an impossible jump."""
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
                counts: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Drop bad points (counted in `counts` by reason) and split on gaps; returns (t, x, y) pieces."""
    t = trace.time_s
    xmin, ymin, xmax, ymax = boundary
    m = cfg.map_margin_m
    on_map = (x >= xmin - m) & (x <= xmax + m) & (y >= ymin - m) & (y <= ymax + m)
    keep_t, keep_x, keep_y = [], [], []
    breaks: list[int] = []   # a vehicle that leaves the map and comes back starts a new trip
    left_map = False
    for i in range(len(t)):
        if not on_map[i]:
            counts["off_map"] += 1
            left_map = bool(keep_t)
            continue
        if keep_t:
            dt = t[i] - keep_t[-1]
            if dt == 0:
                counts["duplicate"] += 1
                continue
            if dt < 0:
                counts["time_reversal"] += 1
                continue
            d = math.hypot(x[i] - keep_x[-1], y[i] - keep_y[-1])
            # a jump check only makes sense within a trip; after a long gap anything goes
            if dt <= cfg.max_gap_s and d / dt > cfg.max_speed_mps:
                counts["speed_jump"] += 1
                continue
        if left_map:
            breaks.append(len(keep_t))
            left_map = False
        keep_t.append(t[i])
        keep_x.append(x[i])
        keep_y.append(y[i])
    if not keep_t:
        return []
    kt, kx, ky = np.asarray(keep_t), np.asarray(keep_x), np.asarray(keep_y)
    cuts = np.union1d(np.flatnonzero(np.diff(kt) > cfg.max_gap_s) + 1, np.asarray(breaks, dtype=int))
    return [(a, b, c) for a, b, c in zip(np.split(kt, cuts), np.split(kx, cuts), np.split(ky, cuts))]


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
        pieces = clean_trace(tr, x, y, boundary, cfg, report.dropped_points)
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
