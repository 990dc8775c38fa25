"""Build the San Francisco real-fleet scenario: 470 Cabspotting cabs at their real times on the SF net.

    python tools/make_sf_fleet.py [--start 2008-05-31T06:00] [--hours 1] [--workers 2]
                                  [--rsu-spacing 200] [--background-period 0] [--out sumo_scenarios/sf_fleet]

Reads `$IOVSIM_SHARED_DATA` (default ../shared/data beside the repository):
maps/sanfrancisco_osm/SanFranciscoFiltered.osm (OSM, ODbL) and traces/cabspotting_sf_fleet (470 cabs,
2008-05-30 12:00 to 2008-06-01 12:00 UTC; Cabspotting, CRAWDAD epfl/mobility: research use, cite
Piorkowski et al. 2009). Every cab's points inside the window [--start, --start + --hours) are
cleaned, split into trips and map-matched (`mobility.traces_fleet`, --workers processes); the
simulation clock is the window's: 0 s is --start, and every trip departs at its real time (no
compression). Writes into --out:

- sf.net.xml.gz: the net (kept when it is there, so routes stay valid; --rebuild-net makes it again);
- routes.rou.xml.gz (routes mode), replay.jsonl.gz (exact mode), cleaned.fcd.xml.gz;
- rsus.csv, rsus.add.xml.gz: RSUs on a 3GPP hexagonal layout (UMi inter-site distance --rsu-spacing);
- background.rou.xml.gz with --background-period P: randomTrips cars every P s (ids `veh...`);
- scenario.yaml, scenario_exact.yaml; import_report.json and import_vehicles.csv (one row per cab);
- build/ (git-ignored): the uncompressed routes and SUMO's acceptance run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from make_sf_traces import sf_inputs  # tools/ is on the path when a tool runs

REPO = Path(__file__).resolve().parents[1]
DEFAULT_START = "2008-05-31T06:00"   # the busiest hour: 406 cabs inside the extract (Friday 23:00 local)


def parse_start(text: str) -> float:
    """Unix seconds of an ISO date-time (UTC unless it says otherwise) or of a number of unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"make_sf_fleet: --start: expected an ISO date-time such as {DEFAULT_START} "
                         f"(UTC) or unix seconds, got {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def ensure_net(osm: Path, out: Path, rebuild: bool) -> Path:
    """out/sf.net.xml.gz, built from the OSM extract unless it is there already."""
    from iovsim.mobility.fileio import gzip_copy
    from iovsim.mobility.osm import build_net

    net_gz = out / "sf.net.xml.gz"
    if net_gz.exists() and not rebuild:
        return net_gz
    return gzip_copy(build_net(osm, out / "build" / "sf.net.xml"), net_gz)


def write_rsus(net, out: Path, spacing_m: float) -> int:
    from iovsim.mobility.rsu import add_lonlat, place_hex, write_rsu_additional, write_rsu_csv

    sites = add_lonlat(net, place_hex(net, 10**5, spacing_m))
    radius_m = spacing_m / np.sqrt(3.0)   # the hexagonal cell's circumradius: the drawn circles tile the map
    write_rsu_csv(out / "rsus.csv", sites, radius_m)
    write_rsu_additional(out / "rsus.add.xml.gz", sites, radius_m)
    return len(sites)


def write_scenarios(out: Path, window: dict, background: bool) -> None:
    import yaml

    bg = ["background.rou.xml.gz"] if background else []
    common = {"net_file": "sf.net.xml.gz", "rsu_file": "rsus.csv", "source": "python tools/make_sf_fleet.py"}
    what = (f"Northern San Francisco (OpenStreetMap, ODbL) with the Cabspotting taxis (CRAWDAD epfl/mobility) "
            f"inside it from {window['start_utc']} UTC for {window['hours']:g} h, at their real times "
            f"(simulation 0 s = {window['start_utc']} UTC)")
    (out / "scenario.yaml").write_text(yaml.safe_dump(
        {"name": "sf_fleet", **common, "route_files": ["routes.rou.xml.gz", *bg],
         "description": what + "; SUMO drives each trip's map-matched route."}, sort_keys=False))
    (out / "scenario_exact.yaml").write_text(yaml.safe_dump(
        {"name": "sf_fleet_exact", **common, "route_files": bg,
         "replay": {"file": "replay.jsonl.gz", "mode": "exact"},
         "description": what + "; each cab follows its GPS track (moveToXY every step)."}, sort_keys=False))


def concurrency(trips, departs) -> dict:
    """Cabs with a trip under way, sampled every minute of the window: most and mean."""
    if not trips:
        return {"max": 0, "mean": 0.0}
    cab = np.unique([tr.vehicle_id for tr in trips], return_inverse=True)[1]
    ends = departs + np.array([tr.duration_s for tr in trips])
    counts = [np.unique(cab[(departs <= t) & (t <= ends)]).size for t in np.arange(0.0, ends.max() + 1.0, 60.0)]
    return {"max": int(max(counts)), "mean": round(float(np.mean(counts)), 1)}


def make(out: Path, *, start_unix_s: float, hours: float, workers: int, rsu_spacing_m: float = 200.0,
         background_period_s: float = 0.0, max_cabs: int | None = None, validate: bool = True,
         rebuild_net: bool = False, cache_dir: str | None = None, seed: int = 0) -> dict:
    from iovsim.mobility.fileio import gzip_copy
    from iovsim.mobility.net import load_net
    from iovsim.mobility.traces_fleet import (FleetSettings, departures_in_window, import_fleet, set_accepted,
                                              write_vehicle_csv)
    from iovsim.mobility.traces_write import validate_routes, write_fcd, write_replay, write_routes

    osm, cabs = sf_inputs("make_sf_fleet", "cabspotting_sf_fleet")
    out.mkdir(parents=True, exist_ok=True)
    (out / "build").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    net_path = ensure_net(osm, out, rebuild_net)
    net = load_net(net_path)
    files = sorted(f for f in cabs.iterdir() if f.name.startswith("new_") and f.suffix == ".txt")[:max_cabs]
    settings = FleetSettings(start_unix_s, start_unix_s + hours * 3600.0)
    rows, trips, report = import_fleet(files, net_path, settings, workers=workers, cache_dir=cache_dir, net=net)
    import_s = time.perf_counter() - t0
    departs = departures_in_window(trips, start_unix_s)
    routes_plain = out / "build" / "routes.rou.xml"
    report.routes_written = write_routes(routes_plain, trips, departs)
    if validate and report.routes_written:
        v = validate_routes(net_path, routes_plain, out / "build" / "validation", with_ids=True)
        report.routes_accepted = v["inserted"]
        set_accepted(rows, trips, v["inserted_ids"], settings.id_prefix)
    gzip_copy(routes_plain, out / "routes.rou.xml.gz")
    write_replay(out / "replay.jsonl.gz", trips, departs)
    write_fcd(out / "cleaned.fcd.xml.gz", trips, departs)
    if len(departs):
        report.first_depart_s, report.last_depart_s = float(departs.min()), float(departs.max())
    n_rsus = write_rsus(net, out, rsu_spacing_m)
    if background_period_s > 0:
        from iovsim.mobility.osm import random_demand

        bg = random_demand(net_path, out / "build" / "background.rou.xml", insertion_period_s=background_period_s,
                           end_s=hours * 3600.0, seed=seed)
        gzip_copy(bg, out / "background.rou.xml.gz")
    else:
        (out / "background.rou.xml.gz").unlink(missing_ok=True)
    window = {"start_unix_s": start_unix_s, "hours": hours,
              "start_utc": datetime.fromtimestamp(start_unix_s, timezone.utc).strftime("%Y-%m-%d %H:%M")}
    write_scenarios(out, window, background_period_s > 0)
    matched = [tr for tr in trips if tr.status in ("matched", "truncated")]
    report.files = []   # 470 paths on this machine; the folder is named below
    summary = {"window": window, "cab_folder": "traces/cabspotting_sf_fleet (under $IOVSIM_SHARED_DATA)",
               "cab_files": len(files), "cabs_with_trips": len({tr.vehicle_id for tr in trips}),
               "cabs_under_way": concurrency(matched, departures_in_window(matched, start_unix_s)),
               "rsus": n_rsus, "rsu_spacing_m": rsu_spacing_m, "workers": workers,
               "import_s": round(import_s, 1), "total_s": round(time.perf_counter() - t0, 1),
               "routes_cut_share": round(report.trips_truncated / max(report.trips_matched, 1), 4),
               "background_period_s": background_period_s}
    (out / "import_report.json").write_text(json.dumps({"fleet": summary, **report.to_dict()}, indent=2) + "\n")
    write_vehicle_csv(out / "import_vehicles.csv", rows)
    return {"summary": summary, "report": report}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "sumo_scenarios" / "sf_fleet"))
    ap.add_argument("--start", default=DEFAULT_START, help="window start, ISO date-time (UTC) or unix seconds")
    ap.add_argument("--hours", type=float, default=1.0, help="window length in hours")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="import processes (1 = serial)")
    ap.add_argument("--rsu-spacing", type=float, default=200.0, help="RSU inter-site distance in m (3GPP UMi: 200)")
    ap.add_argument("--background-period", type=float, default=0.0,
                    help="background cars: one every this many seconds (randomTrips; 0 = none)")
    ap.add_argument("--max-cabs", type=int, default=None, help="only the first N cab files (quick builds)")
    ap.add_argument("--no-validate", action="store_true", help="skip SUMO's acceptance run")
    ap.add_argument("--rebuild-net", action="store_true", help="netconvert the OSM extract again")
    ap.add_argument("--cache-dir", default=None, help="where the matcher's net index is kept (~/.cache/iovsim)")
    a = ap.parse_args(argv)
    if a.hours <= 0 or a.workers < 1 or a.rsu_spacing <= 0 or a.background_period < 0:
        raise SystemExit("make_sf_fleet: expected --hours > 0, --workers >= 1, --rsu-spacing > 0, --background-period >= 0")
    res = make(Path(a.out), start_unix_s=parse_start(a.start), hours=a.hours, workers=a.workers,
               rsu_spacing_m=a.rsu_spacing, background_period_s=a.background_period, max_cabs=a.max_cabs,
               validate=not a.no_validate, rebuild_net=a.rebuild_net, cache_dir=a.cache_dir)
    print(res["report"].summary())
    print(json.dumps(res["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
