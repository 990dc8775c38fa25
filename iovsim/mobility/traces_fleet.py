"""Importing a fleet: every vehicle's GPS trace cut to one time window, cleaned and map-matched in
parallel worker processes, with a report row per vehicle.

`import_fleet(files, net_path, settings, workers=N)` runs one job per trace file (a Cabspotting
file is one cab). Each job, in a worker that loaded the net once (and the matcher's index from
`netindex_cache`), keeps the points inside [start, end) of the window, then cleans, splits and
map-matches them exactly as `trajectories.import_traces` does (`traces_clean`, `mapmatch`). The
results come back in file order whatever the order they finish in, so N workers give the trips
and routes one worker gives (tested). Departure times are left to the caller: the window's own
clock (`departures_in_window`) keeps the fleet's real times, without compression.

Worker processes are started with `spawn` (no inherited threads or locks); each reads the net
itself (~1 s) and the index from the cache, which the parent fills first. As always with `spawn`, a
script that calls `import_fleet(..., workers=2)` must do so under `if __name__ == "__main__":`.
"""
from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from iovsim.mobility.mapmatch import match_trips
from iovsim.mobility.mapmatch_pool import WORKER, net_pool
from iovsim.mobility.traces_clean import CleanConfig, Trip, clean_traces, project
from iovsim.mobility.traces_read import RawTrace, read_traces
from iovsim.mobility.traces_report import ImportReport, merge_reports


@dataclass(frozen=True)
class FleetSettings:
    """What every job of one fleet import does."""

    start_unix_s: float
    end_unix_s: float
    id_prefix: str = "cab_"
    """Put before each vehicle id (trips are `<prefix><vehicle>_<k>`), so a run can tell the fleet
    from background traffic (`mobility.fl_id_prefix`)."""
    clean: CleanConfig = field(default_factory=CleanConfig)
    matcher: str = "hmm"
    delta_m: float = 50.0
    fill_gaps_m: float = 2000.0


@dataclass
class VehicleRow:
    """One vehicle's line of the per-vehicle import report (`import_vehicles.csv`)."""

    vehicle: str
    points: int = 0            # points of the file inside the window
    points_kept: int = 0       # in the trips kept (on the map, clean, long enough)
    trips: int = 0             # trips kept (in bounds)
    routes_matched: int = 0    # trips matched to a route (cut or not)
    routes_accepted: int | None = None   # routes SUMO inserted (None: not validated)
    routes_cut: int = 0        # cut to their longest connected piece
    repaired: int = 0          # gaps joined by the shortest path, whole route kept
    unmatched: int = 0         # trips with no road within reach
    jumps_removed: int = 0     # points dropped as impossible jumps (speed_jump)
    second_device: int = 0     # points dropped as another GPS unit's
    off_map: int = 0           # points outside the net
    lone_fixes: int = 0        # fixes the matcher left out (no route joins them)
    time_s: float = 0.0        # wall-clock seconds this vehicle's cleaning and matching took


CSV_COLUMNS = tuple(f.name for f in fields(VehicleRow))


def clip_to_window(trace: RawTrace, start_s: float, end_s: float, id_prefix: str = "") -> RawTrace:
    """The points of `trace` with start_s <= time < end_s, the vehicle id prefixed."""
    keep = (trace.time_s >= start_s) & (trace.time_s < end_s)

    def cut(a):
        return None if a is None else a[keep]

    return replace(trace, vehicle_id=id_prefix + trace.vehicle_id, time_s=trace.time_s[keep], lon=cut(trace.lon),
                   lat=cut(trace.lat), x_m=cut(trace.x_m), y_m=cut(trace.y_m), line=cut(trace.line))


def import_vehicle(trace: RawTrace, net, settings: FleetSettings) -> tuple[VehicleRow, list[Trip], ImportReport]:
    """Clip one vehicle's trace to the window, clean, split and match it; its row, trips and report."""
    started = time.perf_counter()
    clipped = clip_to_window(trace, settings.start_unix_s, settings.end_unix_s, settings.id_prefix)
    report = ImportReport(matcher=settings.matcher)
    report.files = [trace.source]
    row = VehicleRow(trace.vehicle_id, points=len(clipped))
    if not _any_on_map(clipped, net):   # normal in a fleet (parked elsewhere, off the extract): no trips
        report.points_read = report.dropped_points["off_map"] = row.off_map = len(clipped)
        report.vehicles = 1
        return row, [], report
    trips = clean_traces([clipped], net, settings.clean, report)
    match_trips(trips, net, report, matcher=settings.matcher, delta_m=settings.delta_m,
                fill_gaps_m=settings.fill_gaps_m)
    d = report.dropped_points
    row.points_kept, row.trips = report.points_kept, report.trips_in_bounds
    row.routes_matched, row.routes_cut = report.trips_matched, report.trips_truncated
    row.repaired, row.unmatched, row.lone_fixes = report.trips_repaired, report.trips_unmatched, report.points_unreachable
    row.jumps_removed, row.second_device, row.off_map = d["speed_jump"], d["second_device"], d["off_map"]
    row.time_s = report.elapsed_s = time.perf_counter() - started
    return row, trips, report


def _any_on_map(trace: RawTrace, net) -> bool:
    if not len(trace):
        return False
    x, y = project(trace, net)
    xmin, ymin, xmax, ymax = net.getBoundary()
    return bool(np.any((x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)))


def import_file(path: str | Path, net, settings: FleetSettings) -> list[tuple[VehicleRow, list[Trip], ImportReport]]:
    """Every vehicle of one trace file (a Cabspotting file is one cab)."""
    return [import_vehicle(tr, net, settings) for tr in read_traces(path)]


def _job(path: str):
    return import_file(path, WORKER["net"], WORKER["settings"])


def import_fleet(files: list[Path], net_path: str | Path, settings: FleetSettings, *, workers: int = 1,
                 cache_dir: str | Path | None = None, net=None) -> tuple[list[VehicleRow], list[Trip], ImportReport]:
    """Import every file for the window: rows (file order), trips (file order, then time) and the summed
    report. `workers` > 1 runs the files in that many processes; 1 runs them here, one after the other."""
    from iovsim.mobility.net import load_net
    from iovsim.mobility.netindex_cache import cached_index

    started = time.perf_counter()
    files = [str(f) for f in files]
    net = net if net is not None else load_net(net_path)
    if workers <= 1:
        cached_index(net, net_path, "passenger", cache_dir)
        results = [import_file(f, net, settings) for f in files]
    else:
        # biggest files first, so that no worker is left with a long one at the end
        order = sorted(range(len(files)), key=lambda i: -Path(files[i]).stat().st_size)
        with net_pool(workers, net, net_path, cache_dir, settings=settings) as pool:
            futures = {i: pool.submit(_job, files[i]) for i in order}
            results = [futures[i].result() for i in range(len(files))]
    rows, trips, reports = [], [], []
    for per_file in results:
        for row, vehicle_trips, report in per_file:
            rows.append(row)
            trips += vehicle_trips
            reports.append(report)
    report = merge_reports(reports, matcher=settings.matcher)
    report.elapsed_s = time.perf_counter() - started
    return rows, trips, report


def departures_in_window(trips: list[Trip], start_unix_s: float) -> np.ndarray:
    """Simulation departure of each trip on the window's own clock: seconds since the window's start
    (real times, no compression)."""
    return np.array([tr.time_s[0] - start_unix_s for tr in trips], dtype=float)


def set_accepted(rows: list[VehicleRow], trips: list[Trip], inserted_ids: set[str], id_prefix: str) -> None:
    """Fill each row's routes_accepted from the ids of the vehicles SUMO inserted."""
    per_vehicle: dict[str, int] = {}
    for tr in trips:
        per_vehicle[tr.vehicle_id] = per_vehicle.get(tr.vehicle_id, 0) + (tr.trip_id in inserted_ids)
    for row in rows:
        row.routes_accepted = per_vehicle.get(id_prefix + row.vehicle, 0)


def write_vehicle_csv(path: str | Path, rows: list[VehicleRow]) -> None:
    """import_vehicles.csv: one row per vehicle (its id as in the trace file), columns CSV_COLUMNS."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for row in rows:
            d = asdict(row)
            d["time_s"] = f"{row.time_s:.3f}"
            d["routes_accepted"] = "" if row.routes_accepted is None else row.routes_accepted
            w.writerow(d)
