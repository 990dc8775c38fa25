"""Real vehicle trajectories: read GPS traces, clean them, map-match them to a SUMO net, write routes.

Pipeline (`import_traces`): read (CSV with configurable columns/units, Cabspotting, SUMO FCD XML) →
project lon/lat to net x/y → clean (duplicates, time reversals, impossible jumps, points off the map)
→ split trips on long gaps → drop short trips → map-match (sumolib `mapTrace`, rtree neighbour
search) → repair disconnected consecutive edges with the shortest path → write

- `routes.rou.xml`: one vehicle per trip, SUMO drives it (car-following), departure from the trace;
- `replay.jsonl`: one JSON object per trip with the cleaned GPS track in net coordinates, for exact
  replay (`mobility.replay.ExactReplay`, moveToXY at every step);
- `cleaned.fcd.xml`: the cleaned tracks as SUMO FCD (sumo-gui / SUMO tools read it);
- `import_report.json`: what was read, dropped (and why), matched, repaired and accepted.

Times: departures may be compressed (`time_compression`, e.g. 24 puts a day of departures into an
hour) and shifted so the first departure is at `begin_s`; the timeline inside a trip is never
compressed, so speeds stay real.
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import time as _time
import typing
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree
from xml.sax.saxutils import XMLGenerator

import numpy as np

from iovsim.mobility.fileio import sniff_dialect, write_xml
from iovsim.mobility.net import check_lonlat, load_net
from iovsim.mobility.scenario import ScenarioError, sumo_binary
from iovsim.schema import field_problems

DROP_REASONS = ("duplicate", "time_reversal", "speed_jump", "off_map", "short_trip")
TimeUnit = Literal["auto", "s", "ms", "iso"]
TraceFormat = Literal["auto", "csv", "cabspotting", "fcd"]
TIME_UNITS = typing.get_args(TimeUnit)
TRACE_FORMATS = typing.get_args(TraceFormat)


class TraceError(ScenarioError):
    """Unreadable or impossible trace input (one line: file, column/field, what was expected)."""


# ----------------------------------------------------------------------------- data

@dataclass
class RawTrace:
    """One vehicle's points as read, in file order. Either lon/lat (degrees) or x/y (net metres)."""

    vehicle_id: str
    source: str
    time_s: np.ndarray
    lon: np.ndarray | None = None
    lat: np.ndarray | None = None
    x_m: np.ndarray | None = None
    y_m: np.ndarray | None = None
    line: np.ndarray | None = None  # source line of each point (for messages)

    def __len__(self):
        return len(self.time_s)


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
class CsvFormat:
    """Columns and units of a GPS CSV (header names, case-insensitive)."""

    id_col: str = "id"
    """Vehicle id column."""
    time_col: str = "time"
    """Time column."""
    lat_col: str = "lat"
    """Latitude column (degrees × `coord_scale`)."""
    lon_col: str = "lon"
    """Longitude column (degrees × `coord_scale`)."""
    time_unit: TimeUnit = "auto"
    """`s`, `ms` (numbers, e.g. unix time), `iso` (ISO 8601 datetime; naive means UTC), or `auto`:
    from the first row (a number above 1e11 is milliseconds, another number seconds, text ISO)."""
    coord_scale: float = 1.0
    """Multiply lat/lon by this to get degrees (1e-6 for micro-degrees)."""
    delimiter: str = ""
    """Field separator; empty = detect (csv.Sniffer: comma, semicolon or tab)."""


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


@dataclass
class ImportReport:
    """What `import_traces` did; `dropped_points` counts points per reason, `trips` counts trips."""

    files: list[str] = field(default_factory=list)
    vehicles: int = 0
    points_read: int = 0
    points_kept: int = 0
    dropped_points: dict = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})
    trips_split: int = 0
    trips_short: int = 0
    trips_in_bounds: int = 0
    trips_matched: int = 0
    trips_fully_connected: int = 0
    trips_repaired: int = 0
    trips_unmatched: int = 0
    trips_truncated: int = 0
    routes_written: int = 0
    routes_accepted: int | None = None
    first_depart_s: float = 0.0
    last_depart_s: float = 0.0
    time_compression: float = 1.0
    routes_file: str = ""
    replay_file: str = ""
    fcd_file: str = ""
    elapsed_s: float = 0.0

    @property
    def acceptance(self) -> float | None:
        """Share of in-bounds trips that became routes SUMO accepted (None if not validated)."""
        if self.routes_accepted is None or not self.trips_in_bounds:
            return None
        return self.routes_accepted / self.trips_in_bounds

    def summary(self) -> str:
        d = self.dropped_points
        lines = [
            f"read {self.points_read} points of {self.vehicles} vehicles from {len(self.files)} file(s)",
            "dropped points: " + ", ".join(f"{r} {d.get(r, 0)}" for r in DROP_REASONS),
            f"trips: {self.trips_in_bounds} in bounds (split on gaps into {self.trips_split}, "
            f"{self.trips_short} too short dropped)",
            f"map matching: {self.trips_matched} matched ({self.trips_fully_connected} connected as matched, "
            f"{self.trips_repaired} repaired by shortest path, {self.trips_truncated} cut to their longest "
            f"connected piece), {self.trips_unmatched} unmatched (no road within reach)",
            f"routes written: {self.routes_written}, departures {self.first_depart_s:.0f}-{self.last_depart_s:.0f} s"
            + (f" (compressed {self.time_compression:g}x)" if self.time_compression != 1 else ""),
        ]
        if self.routes_accepted is not None:
            lines.append(f"SUMO accepted {self.routes_accepted} routes = {100 * self.acceptance:.1f}% of in-bounds trips")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["acceptance"] = self.acceptance
        return d


# ----------------------------------------------------------------------------- readers

def _parse_time(value: str, unit: str, where: str) -> float:
    if unit == "iso":
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise TraceError(f"{where}: expected an ISO 8601 datetime, got {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    try:
        v = float(value)
    except ValueError:
        raise TraceError(f"{where}: expected a number of {'milliseconds' if unit == 'ms' else 'seconds'}, "
                         f"got {value!r}") from None
    if not math.isfinite(v):
        raise TraceError(f"{where}: expected a finite time, got {value!r}")
    return v / 1000.0 if unit == "ms" else v


def _guess_time_unit(value: str) -> str:
    try:
        return "ms" if abs(float(value)) > 1e11 else "s"
    except ValueError:
        return "iso"


def read_csv_traces(path: str | Path, fmt: CsvFormat | None = None) -> list[RawTrace]:
    """GPS points from a CSV with a header (columns named by `fmt`); one trace per vehicle id."""
    fmt = fmt or CsvFormat()
    path = Path(path)
    if fmt.time_unit not in TIME_UNITS:
        raise TraceError(f"{path}: time unit: expected one of {', '.join(TIME_UNITS)}, got {fmt.time_unit!r}")
    unit = fmt.time_unit
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: cannot read ({e})") from None
    if fmt.delimiter:
        reader = csv.reader(text.splitlines(), delimiter=fmt.delimiter)
    else:
        reader = csv.reader(text.splitlines(), sniff_dialect(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise TraceError(f"{path}: empty file (expected a header with columns "
                         f"{fmt.id_col}, {fmt.time_col}, {fmt.lat_col}, {fmt.lon_col})") from None
    lower = {h.lower(): i for i, h in enumerate(header)}
    cols = {}
    for key in ("id_col", "time_col", "lat_col", "lon_col"):
        name = getattr(fmt, key)
        if name.lower() not in lower:
            raise TraceError(f"{path}: column '{name}' missing (header has {', '.join(header)}); "
                             f"set the {key.replace('_col', '')} column name")
        cols[key] = lower[name.lower()]
    by_vehicle: dict[str, list[tuple[float, float, float, int]]] = {}
    for n, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise TraceError(f"{path}: line {n}: expected {len(header)} fields, got {len(row)}")
        vid = row[cols["id_col"]].strip()
        if unit == "auto":
            unit = _guess_time_unit(row[cols["time_col"]])
        t = _parse_time(row[cols["time_col"]], unit, f"{path}: column '{fmt.time_col}' at line {n}")
        try:
            lat = float(row[cols["lat_col"]]) * fmt.coord_scale
            lon = float(row[cols["lon_col"]]) * fmt.coord_scale
        except ValueError:
            raise TraceError(f"{path}: columns '{fmt.lat_col}'/'{fmt.lon_col}': expected numbers (degrees), "
                             f"got {row[cols['lat_col']]!r}/{row[cols['lon_col']]!r} at line {n}") from None
        check_lonlat(lon, lat, f"{path}: line {n}", lon_name=fmt.lon_col, lat_name=fmt.lat_col, kind="column",
                     error=TraceError)
        by_vehicle.setdefault(vid, []).append((t, lon, lat, n))
    if not by_vehicle:
        raise TraceError(f"{path}: no data rows after the header")
    out = []
    for vid, pts in by_vehicle.items():
        a = np.asarray(pts, dtype=float)
        out.append(RawTrace(vid, str(path), a[:, 0], lon=a[:, 1], lat=a[:, 2], line=a[:, 3].astype(int)))
    return out


def read_cabspotting(path: str | Path) -> RawTrace:
    """One Cabspotting file (`lat lon occupied unix_time` per line); vehicle id = file name (without `new_`)."""
    path = Path(path)
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: cannot read ({e})") from None
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise TraceError(f"{path}: line {n}: expected 4 fields 'lat lon occupied unix_time', got {len(parts)}")
        try:
            lat, lon, t = float(parts[0]), float(parts[1]), float(parts[3])
        except ValueError:
            raise TraceError(f"{path}: line {n}: expected numbers 'lat lon occupied unix_time', got {line.strip()!r}") from None
        check_lonlat(lon, lat, f"{path}: line {n}", error=TraceError)
        rows.append((t, lon, lat, n))
    if not rows:
        raise TraceError(f"{path}: no points (expected lines 'lat lon occupied unix_time')")
    a = np.asarray(rows, dtype=float)
    # The original Cabspotting files are newest first; copies are often re-sorted. Read oldest first.
    if np.sum(np.diff(a[:, 0]) < 0) > len(a) / 2:
        a = a[::-1]
    vid = path.stem[4:] if path.stem.startswith("new_") else path.stem
    return RawTrace(vid, str(path), a[:, 0], lon=a[:, 1], lat=a[:, 2], line=a[:, 3].astype(int))


def read_fcd(path: str | Path, geo: bool | None = None) -> list[RawTrace]:
    """SUMO FCD XML (`<timestep time><vehicle id x y/>`); `geo` = x/y are lon/lat (auto-detected when None)."""
    path = Path(path)
    by_vehicle: dict[str, list[tuple[float, float, float]]] = {}
    try:
        for _, elem in ElementTree.iterparse(path, events=("end",)):
            if elem.tag == "timestep":
                t = float(elem.get("time"))
                for v in elem:
                    if v.tag not in ("vehicle", "person", "container"):
                        continue
                    try:
                        by_vehicle.setdefault(v.get("id"), []).append((t, float(v.get("x")), float(v.get("y"))))
                    except (TypeError, ValueError):
                        raise TraceError(f"{path}: timestep {t:g}: vehicle {v.get('id')!r}: "
                                         f"expected numeric attributes 'x' and 'y'") from None
                elem.clear()
    except ElementTree.ParseError as e:
        raise TraceError(f"{path}: not a readable FCD XML file ({e})") from None
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e})") from None
    if not by_vehicle:
        raise TraceError(f"{path}: no <timestep><vehicle .../> elements (expected SUMO FCD XML)")
    if geo is None:
        allpts = np.concatenate([np.asarray(p)[:, 1:] for p in by_vehicle.values()])
        geo = bool(np.all(np.abs(allpts[:, 0]) <= 180) and np.all(np.abs(allpts[:, 1]) <= 90)
                   and _looks_fractional(allpts))
    out = []
    for vid, pts in by_vehicle.items():
        a = np.asarray(pts, dtype=float)
        if geo:
            out.append(RawTrace(vid, str(path), a[:, 0], lon=a[:, 1], lat=a[:, 2]))
        else:
            out.append(RawTrace(vid, str(path), a[:, 0], x_m=a[:, 1], y_m=a[:, 2]))
    return out


def _looks_fractional(pts: np.ndarray) -> bool:
    # geo FCD has 6+ decimals on a sub-degree extent; net coordinates span far more than 1 unit
    return float(np.ptp(pts[:, 0])) < 2.0 and float(np.ptp(pts[:, 1])) < 2.0


def read_traces(paths, fmt: str = "auto", csv_format: CsvFormat | None = None) -> list[RawTrace]:
    """Read trace files; `fmt`: auto, csv, cabspotting, fcd. Folders are expanded to their files."""
    files: list[Path] = []
    for p in ([paths] if isinstance(paths, (str, Path)) else list(paths)):
        p = Path(p)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(("README", ".")))
        elif p.exists():
            files.append(p)
        else:
            raise TraceError(f"{p}: trace file not found")
    if not files:
        raise TraceError(f"{paths}: no trace files")
    if fmt not in TRACE_FORMATS:
        raise TraceError(f"trace format: expected one of {', '.join(TRACE_FORMATS)}, got {fmt!r}")
    out: list[RawTrace] = []
    for f in files:
        kind = fmt if fmt != "auto" else _detect_format(f)
        if kind == "csv":
            out += read_csv_traces(f, csv_format)
        elif kind == "cabspotting":
            out.append(read_cabspotting(f))
        else:
            out += read_fcd(f)
    return out


def _detect_format(path: Path) -> str:
    if path.name.endswith((".xml", ".xml.gz")):
        return "fcd"
    with open(path, errors="replace") as fh:
        first = fh.readline()
    parts = first.split()
    if len(parts) == 4 and "," not in first:
        try:
            [float(x) for x in parts]
            return "cabspotting"
        except ValueError:
            pass
    if first.lstrip().startswith("<"):
        return "fcd"
    return "csv"


# ----------------------------------------------------------------------------- projection + cleaning

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


# ----------------------------------------------------------------------------- map matching

def match_trip(trip: Trip, net, *, delta_m: float = 50.0, fill_gaps_m: float = 2000.0,
               vclass: str = "passenger") -> Trip:
    """Map-match a trip to consecutive edges; repair disconnections with the shortest path.

    Where no path exists (a dead end at the map's edge, a one-way matched against its direction)
    the route is cut there and the longest connected piece is kept (status `truncated`).
    """
    import sumolib

    pts = list(zip(trip.x_m.tolist(), trip.y_m.tolist()))
    edges = sumolib.route.mapTrace(pts, net, delta_m, verbose=False, fillGaps=fill_gaps_m, vClass=vclass)
    edges = [e for e in edges if e.allows(vclass)]
    if not edges:
        trip.status = "unmatched"
        return trip
    pieces = [[edges[0]]]
    repaired = [0]
    for e in edges[1:]:
        prev = pieces[-1][-1]
        if e is prev:
            continue
        if e in prev.getOutgoing():
            pieces[-1].append(e)
            continue
        path, _cost = net.getShortestPath(prev, e, vClass=vclass)
        if path is None:
            pieces.append([e])
            repaired.append(0)
        else:
            pieces[-1].extend(path[1:])
            repaired[-1] += 1
    k = max(range(len(pieces)), key=lambda i: sum(x.getLength() for x in pieces[i]))
    trip.edges = [x.getID() for x in pieces[k]]
    trip.repaired_gaps = repaired[k]
    trip.status = "matched" if len(pieces) == 1 else "truncated"
    return trip


def match_trips(trips: list[Trip], net, report: ImportReport | None = None, **kw) -> list[Trip]:
    report = report if report is not None else ImportReport()
    for trip in trips:
        match_trip(trip, net, **kw)
        if trip.status == "unmatched":
            report.trips_unmatched += 1
            continue
        report.trips_matched += 1
        if trip.status == "truncated":
            report.trips_truncated += 1
        elif trip.repaired_gaps:
            report.trips_repaired += 1
        else:
            report.trips_fully_connected += 1
    return trips


# ----------------------------------------------------------------------------- writers

def departure_times(trips: list[Trip], *, begin_s: float = 0.0, time_compression: float = 1.0) -> np.ndarray:
    """Simulation departure time of each trip: (t0 - first t0) / compression + begin_s."""
    if time_compression <= 0:
        raise TraceError(f"time_compression: expected a positive factor, got {time_compression}")
    if not trips:
        return np.zeros(0)
    t0 = np.array([tr.time_s[0] for tr in trips])
    return begin_s + (t0 - t0.min()) / time_compression


def write_routes(path: Path, trips: list[Trip], departs: np.ndarray, *, vtype: str = "trace_car") -> int:
    """SUMO routes: one vehicle per matched trip, sorted by departure. Returns how many were written."""
    order = [i for i in np.argsort(departs, kind="stable") if trips[i].status in ("matched", "truncated")
             and trips[i].edges]
    root = ElementTree.Element("routes")
    ElementTree.SubElement(root, "vType", id=vtype, vClass="passenger")
    for i in order:
        tr = trips[i]
        v = ElementTree.SubElement(root, "vehicle", id=tr.trip_id, type=vtype, depart=f"{departs[i]:.2f}",
                                   departLane="best", departPos="base", departSpeed="max")
        ElementTree.SubElement(v, "route", edges=" ".join(tr.edges))
    write_xml(path, root, "vehicles map-matched from GPS traces by iovsim (departure = first GPS point)")
    return len(order)


def write_replay(path: Path, trips: list[Trip], departs: np.ndarray) -> int:
    """Exact-replay file: JSON lines {vehicle_id, route, time_s, x_m, y_m} in simulation time, net metres.

    Only trips that were map-matched (a road within reach): SUMO cannot hold a vehicle far off its roads.
    """
    n = 0
    with open(path, "w") as f:
        for i in np.argsort(departs, kind="stable"):
            tr = trips[i]
            if tr.status not in ("matched", "truncated"):
                continue
            times = departs[i] + (tr.time_s - tr.time_s[0])
            f.write(json.dumps({"vehicle_id": tr.trip_id, "route": tr.edges[:1] or [],
                                "time_s": [round(float(v), 3) for v in times],
                                "x_m": [round(float(v), 2) for v in tr.x_m],
                                "y_m": [round(float(v), 2) for v in tr.y_m]}) + "\n")
            n += 1
    return n


def write_fcd(path: Path, trips: list[Trip], departs: np.ndarray):
    """The cleaned tracks as SUMO FCD XML (net coordinates, simulation time)."""
    rows = []
    for i, tr in enumerate(trips):
        times = departs[i] + (tr.time_s - tr.time_s[0])
        for t, x, y in zip(times, tr.x_m, tr.y_m):
            rows.append((float(t), tr.trip_id, float(x), float(y)))
    rows.sort()
    with open(path, "w", encoding="utf-8") as f:   # streamed: a day of traces does not fit a tree
        out = XMLGenerator(f, encoding="utf-8", short_empty_elements=True)
        out.startDocument()
        out.startElement("fcd-export", {})
        cur = None
        for t, vid, x, y in rows:
            if t != cur:
                if cur is not None:
                    out.ignorableWhitespace("\n    ")
                    out.endElement("timestep")
                out.ignorableWhitespace("\n    ")
                out.startElement("timestep", {"time": f"{t:.2f}"})
                cur = t
            out.ignorableWhitespace("\n        ")
            out.startElement("vehicle", {"id": vid, "x": f"{x:.2f}", "y": f"{y:.2f}"})
            out.endElement("vehicle")
        if cur is not None:
            out.ignorableWhitespace("\n    ")
            out.endElement("timestep")
        out.ignorableWhitespace("\n")
        out.endElement("fcd-export")
        out.endDocument()
        f.write("\n")


# ----------------------------------------------------------------------------- validation

def validate_routes(net_path: str | Path, routes_path: str | Path, out_dir: str | Path, *,
                    stagger_s: float = 1.0) -> dict:
    """Run SUMO (binary, headless) on the routes; count vehicles loaded and inserted.

    Routes SUMO rejects are skipped (`--ignore-route-errors`) and never inserted. To keep this fast
    whatever the traces' time span, SUMO runs a copy whose departures are `stagger_s` apart
    (route validity and insertion do not depend on the departure time on an empty map).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tree = ElementTree.parse(routes_path)
    vehicles = list(tree.getroot().iter("vehicle"))
    for i, v in enumerate(vehicles):
        v.set("depart", f"{i * stagger_s:.2f}")
    copy = out_dir / "validation.rou.xml"
    tree.write(copy)
    stats = out_dir / "validation_statistics.xml"
    end_s = len(vehicles) * stagger_s + 300.0
    cmd = [sumo_binary("sumo"), "-n", str(net_path), "-r", str(copy), "--end", f"{end_s:g}",
           "--ignore-route-errors", "true", "--no-step-log", "true", "--no-warnings", "true",
           "--max-depart-delay", "300", "--statistic-output", str(stats),
           "--log", str(out_dir / "validation_log.txt"), "--time-to-teleport", "60"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not stats.exists():
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise TraceError(f"{routes_path}: SUMO could not run the routes: {tail}")
    veh = ElementTree.parse(stats).getroot().find("vehicles")
    loaded, inserted = int(veh.get("loaded")), int(veh.get("inserted"))
    return {"written": len(vehicles), "loaded": loaded, "inserted": inserted,
            "rejected": len(vehicles) - loaded, "not_inserted": loaded - inserted}


# ----------------------------------------------------------------------------- front door

def parse_columns(columns: str, time_unit: str = "auto") -> CsvFormat:
    """CsvFormat from `id,time,lat,lon` column names (in that order), e.g. `taxi,timestamp,latitude,longitude`."""
    names = [c.strip() for c in columns.split(",")]
    if len(names) != 4 or not all(names):
        raise TraceError(f"columns: expected four names 'id,time,lat,lon', got {columns!r}")
    return CsvFormat(id_col=names[0], time_col=names[1], lat_col=names[2], lon_col=names[3], time_unit=time_unit)


def import_traces(paths, net_path: str | Path, out_dir: str | Path, *, fmt: str = "auto",
                  csv_format: CsvFormat | None = None, columns: str | None = None, time_unit: str = "auto",
                  clean: CleanConfig | None = None, max_speed_mps: float | None = None,
                  gap_s: float | None = None, min_points: int | None = None,
                  begin_s: float = 0.0, time_compression: float = 1.0, departure_span_s: float | None = None,
                  max_trips: int | None = None, delta_m: float = 50.0, fill_gaps_m: float = 2000.0, validate: bool = True,
                  net=None, write_scenario: bool = True) -> ImportReport:
    """Import GPS traces onto a SUMO net: clean, split, map-match, repair, write routes + exact replay.

    Writes into `out_dir`: routes.rou.xml, replay.jsonl, cleaned.fcd.xml, import_report.json and
    (with `write_scenario`) scenario.yaml (routes mode) and scenario_exact.yaml (exact mode).
    CSV columns: `csv_format`, or `columns="id,time,lat,lon"` names with `time_unit` (auto, s, ms, iso).
    Cleaning: `clean`, or the shortcuts `max_speed_mps`, `gap_s`, `min_points`.
    Departures: `time_compression` (24 = a day into an hour), or `departure_span_s` to compress
    whatever span the traces cover into that many seconds; the first departure is at `begin_s`.
    `max_trips` keeps only the first N in-bounds trips (in file order), for quick tests.
    """
    started = _time.perf_counter()
    if csv_format is None and columns:
        csv_format = parse_columns(columns, time_unit)
    clean = _clean_settings(clean, max_speed_mps=max_speed_mps, max_gap_s=gap_s, min_points=min_points)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net_path = Path(net_path).resolve()
    net = net if net is not None else load_net(net_path)
    report = ImportReport(time_compression=time_compression)
    traces = read_traces(paths, fmt, csv_format)
    report.files = sorted({tr.source for tr in traces})
    trips = clean_traces(traces, net, clean, report)
    if max_trips is not None and len(trips) > max_trips:
        trips = trips[:max_trips]
        report.trips_in_bounds = len(trips)
    match_trips(trips, net, report, delta_m=delta_m, fill_gaps_m=fill_gaps_m)
    if departure_span_s is not None and trips:
        if departure_span_s <= 0:
            raise TraceError(f"departure_span_s: expected a positive number of seconds, got {departure_span_s}")
        t0 = [tr.time_s[0] for tr in trips]
        time_compression = max((max(t0) - min(t0)) / departure_span_s, 1e-9) if max(t0) > min(t0) else 1.0
        report.time_compression = time_compression
    departs = departure_times(trips, begin_s=begin_s, time_compression=time_compression)
    if len(departs):
        report.first_depart_s, report.last_depart_s = float(departs.min()), float(departs.max())
    routes = out_dir / "routes.rou.xml"
    report.routes_written = write_routes(routes, trips, departs)
    replay = out_dir / "replay.jsonl"
    write_replay(replay, trips, departs)
    fcd = out_dir / "cleaned.fcd.xml"
    write_fcd(fcd, trips, departs)
    report.routes_file, report.replay_file, report.fcd_file = str(routes), str(replay), str(fcd)
    if validate and report.routes_written:
        v = validate_routes(net_path, routes, out_dir / "validation")
        report.routes_accepted = v["inserted"]
    if write_scenario:
        write_trace_scenarios(out_dir, net_path, routes, replay)
    report.elapsed_s = _time.perf_counter() - started
    (out_dir / "import_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _clean_settings(clean: CleanConfig | None, **shortcuts) -> CleanConfig:
    """A copy of `clean` with the shortcuts that are not None applied, checked against its declared ranges."""
    clean = replace(clean or CleanConfig(), **{k: v for k, v in shortcuts.items() if v is not None})
    problems = field_problems(clean)
    if problems:
        raise TraceError(f"{problems[0][0]}: {problems[0][1]}")
    return clean


def write_trace_scenarios(out_dir: Path, net_path: Path, routes: Path, replay: Path) -> tuple[Path, Path]:
    """scenario.yaml (SUMO drives the matched routes) and scenario_exact.yaml (moveToXY replay)."""
    import os

    import yaml

    def rel(p: Path) -> str:
        try:
            return os.path.relpath(Path(p).resolve(), out_dir.resolve())
        except ValueError:  # other drive (Windows)
            return str(Path(p).resolve())

    common = {"net_file": rel(net_path), "source": "iovsim trajectories import"}
    routes_yaml = out_dir / "scenario.yaml"
    routes_yaml.write_text(yaml.safe_dump({"name": f"{out_dir.name}-routes", **common,
                                           "route_files": [rel(routes)],
                                           "description": "GPS traces map-matched to routes; SUMO drives them"},
                                          sort_keys=False))
    exact_yaml = out_dir / "scenario_exact.yaml"
    exact_yaml.write_text(yaml.safe_dump({"name": f"{out_dir.name}-exact", **common, "route_files": [],
                                          "replay": {"file": rel(replay), "mode": "exact"},
                                          "description": "GPS traces replayed exactly (moveToXY each step)"},
                                         sort_keys=False))
    return routes_yaml, exact_yaml
