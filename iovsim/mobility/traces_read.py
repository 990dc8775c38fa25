"""Reading GPS traces: CSV (configurable columns and time units), Cabspotting, SUMO FCD XML.

Every reader returns `RawTrace`s (one per vehicle, points in file order); bad input is a one-line
`TraceError` naming the file, the column or field, the line and what was expected.
"""
from __future__ import annotations

import csv
import math
import typing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree

import numpy as np

from iovsim.mobility.fileio import sniff_dialect
from iovsim.mobility.net import check_lonlat
from iovsim.mobility.scenario import ScenarioError

TimeUnit = Literal["auto", "s", "ms", "iso"]
TraceFormat = Literal["auto", "csv", "cabspotting", "fcd"]
TIME_UNITS = typing.get_args(TimeUnit)
TRACE_FORMATS = typing.get_args(TraceFormat)


class TraceError(ScenarioError):
    """Unreadable or impossible trace input (one line: file, column/field, what was expected)."""



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


def parse_columns(columns: str, time_unit: str = "auto") -> CsvFormat:
    """CsvFormat from `id,time,lat,lon` column names (in that order), e.g. `taxi,timestamp,latitude,longitude`."""
    names = [c.strip() for c in columns.split(",")]
    if len(names) != 4 or not all(names):
        raise TraceError(f"columns: expected four names 'id,time,lat,lon', got {columns!r}")
    return CsvFormat(id_col=names[0], time_col=names[1], lat_col=names[2], lon_col=names[3], time_unit=time_unit)
