"""Real vehicle trajectories: read GPS traces, clean them, map-match them to a SUMO net, write routes.

Pipeline (`import_traces`): read (CSV with configurable columns/units, Cabspotting, SUMO FCD XML;
`traces_read`) → project lon/lat to net x/y → clean (duplicates, time reversals, impossible jumps,
points off the map) → split trips on long gaps → drop short trips (`traces_clean`) → map-match
(`mapmatch`) → write (`traces_write`):

- `routes.rou.xml`: one vehicle per trip, SUMO drives it (car-following), departure from the trace;
- `replay.jsonl`: one JSON object per trip with the cleaned GPS track in net coordinates, for exact
  replay (`mobility.replay.ExactReplay`, moveToXY at every step);
- `cleaned.fcd.xml`: the cleaned tracks as SUMO FCD (sumo-gui / SUMO tools read it);
- `import_report.json`: what was read, dropped (and why), matched, repaired and accepted (`traces_report`).

Times: departures may be compressed (`time_compression`, e.g. 24 puts a day of departures into an
hour) and shifted so the first departure is at `begin_s`; the timeline inside a trip is never
compressed, so speeds stay real. The names of the step modules are importable from here too.
"""
from __future__ import annotations

import json
import time as _time
from dataclasses import replace
from pathlib import Path

from iovsim.mobility.mapmatch import MATCHERS, match_trip, match_trips  # noqa: F401 - the module's public names
from iovsim.mobility.mapmatch_pool import match_in
from iovsim.mobility.net import load_net  # noqa: F401
from iovsim.mobility.traces_clean import CleanConfig, Trip, clean_trace, clean_traces, project  # noqa: F401
from iovsim.mobility.traces_read import (TIME_UNITS, TRACE_FORMATS, CsvFormat, RawTrace, TraceError,  # noqa: F401
                                         _detect_format, parse_columns, read_cabspotting, read_csv_traces,
                                         read_fcd, read_traces)
from iovsim.mobility.traces_report import DROP_REASONS, ImportReport  # noqa: F401
from iovsim.mobility.traces_write import (departure_times, validate_routes, write_fcd,  # noqa: F401
                                          write_replay, write_routes, write_trace_scenarios)
from iovsim.schema import field_problems


def import_traces(paths, net_path: str | Path, out_dir: str | Path, *, fmt: str = "auto",
                  csv_format: CsvFormat | None = None, columns: str | None = None, time_unit: str = "auto",
                  clean: CleanConfig | None = None, max_speed_mps: float | None = None,
                  gap_s: float | None = None, min_points: int | None = None,
                  begin_s: float = 0.0, time_compression: float = 1.0, departure_span_s: float | None = None,
                  max_trips: int | None = None, matcher: str = "hmm", delta_m: float = 50.0,
                  fill_gaps_m: float = 2000.0, validate: bool = True, net=None, write_scenario: bool = True,
                  workers: int = 1) -> ImportReport:
    """Import GPS traces onto a SUMO net: clean, split, map-match, repair, write routes + exact replay.

    Writes into `out_dir`: routes.rou.xml, replay.jsonl, cleaned.fcd.xml, import_report.json and
    (with `write_scenario`) scenario.yaml (routes mode) and scenario_exact.yaml (exact mode).
    CSV columns: `csv_format`, or `columns="id,time,lat,lon"` names with `time_unit` (auto, s, ms, iso).
    Cleaning: `clean`, or the shortcuts `max_speed_mps`, `gap_s`, `min_points`.
    Departures: `time_compression` (24 = a day into an hour), or `departure_span_s` to compress
    whatever span the traces cover into that many seconds; the first departure is at `begin_s`.
    `max_trips` keeps only the first N in-bounds trips (in file order), for quick tests.
    Map matching: `matcher` hmm (default) or sumolib, candidates within `delta_m`, routes between two
    points at most `fill_gaps_m` long (see `mapmatch`); `workers` > 1 matches the trips in that many
    processes (`mapmatch_pool`: the same routes, in the same order).
    """
    started = _time.perf_counter()
    if matcher not in MATCHERS:
        raise TraceError(f"matcher: expected one of {', '.join(MATCHERS)}, got {matcher!r}")
    if csv_format is None and columns:
        csv_format = parse_columns(columns, time_unit)
    clean = _clean_settings(clean, max_speed_mps=max_speed_mps, max_gap_s=gap_s, min_points=min_points)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net_path = Path(net_path).resolve()
    net = net if net is not None else load_net(net_path)
    report = ImportReport(time_compression=time_compression, matcher=matcher)
    traces = read_traces(paths, fmt, csv_format)
    report.files = sorted({tr.source for tr in traces})
    trips = clean_traces(traces, net, clean, report)
    if max_trips is not None and len(trips) > max_trips:
        trips = trips[:max_trips]
        report.trips_in_bounds = len(trips)
    match_in(workers, trips, net, net_path, report, matcher=matcher, delta_m=delta_m, fill_gaps_m=fill_gaps_m)
    if departure_span_s is not None and trips:
        time_compression = report.time_compression = _compression_for_span(trips, departure_span_s)
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


def _compression_for_span(trips: list[Trip], departure_span_s: float) -> float:
    """The time compression that puts the trips' first departures within `departure_span_s`."""
    if departure_span_s <= 0:
        raise TraceError(f"departure_span_s: expected a positive number of seconds, got {departure_span_s}")
    t0 = [tr.time_s[0] for tr in trips]
    return max((max(t0) - min(t0)) / departure_span_s, 1e-9) if max(t0) > min(t0) else 1.0


def _clean_settings(clean: CleanConfig | None, **shortcuts) -> CleanConfig:
    """A copy of `clean` with the shortcuts that are not None applied, checked against its declared ranges."""
    clean = replace(clean or CleanConfig(), **{k: v for k, v in shortcuts.items() if v is not None})
    problems = field_problems(clean)
    if problems:
        raise TraceError(f"{problems[0][0]}: {problems[0][1]}")
    return clean
