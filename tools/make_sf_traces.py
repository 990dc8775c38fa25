"""Build the San Francisco trajectory scenario from the real data (not shipped: it is made here).

    python tools/make_sf_traces.py [--out sumo_scenarios/sf_traces/build] [--span 3600] [--max-trips N]

Reads `$IOVSIM_SHARED_DATA` (default ../shared/data beside the repository):
maps/sanfrancisco_osm/SanFranciscoFiltered.osm (OSM, ODbL) and traces/cabspotting_sf (Cabspotting,
CRAWDAD epfl/mobility; cite Piorkowski et al. 2009). Writes into --out: sf.net.xml, routes.rou.xml,
replay.jsonl, cleaned.fcd.xml, import_report.json. The four cabs' trips over about three weeks are
compressed so their departures span --span seconds (a busy hour: ~100 cabs on the map at once);
inside a trip the GPS timeline is kept, so speeds stay real.
`sumo_scenarios/sf_traces/scenario.yaml` (routes) and `scenario_exact.yaml` (exact replay) point here.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    return Path(os.environ.get("IOVSIM_SHARED_DATA", REPO.parent / "shared" / "data"))


def sf_inputs(tool: str, traces: str) -> tuple[Path, Path]:
    """The San Francisco OSM extract and the Cabspotting folder `traces` under the shared data; a
    missing one ends `tool` with one line naming it."""
    data = shared_data()
    osm = data / "maps" / "sanfrancisco_osm" / "SanFranciscoFiltered.osm"
    cabs = data / "traces" / traces
    for p in (osm, cabs):
        if not p.exists():
            raise SystemExit(f"{tool}: {p} not found (set IOVSIM_SHARED_DATA to the shared data folder)")
    return osm, cabs


def make(out: Path, *, span_s: float = 3600.0, max_trips: int | None = None, begin_s: float = 0.0,
         validate: bool = True):
    from iovsim.mobility.osm import build_net
    from iovsim.mobility.trajectories import import_traces, load_net

    osm, cabs = sf_inputs("make_sf_traces", "cabspotting_sf")
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    net_path = build_net(osm, out / "sf.net.xml")
    print(f"net: {net_path} ({time.perf_counter() - t:.1f} s)")
    net = load_net(net_path)
    report = import_traces(cabs, net_path, out, net=net, departure_span_s=span_s, begin_s=begin_s,
                           max_trips=max_trips, validate=validate, write_scenario=False)
    print(report.summary())
    print(f"import: {report.elapsed_s:.1f} s; report in {out / 'import_report.json'}")
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "sumo_scenarios" / "sf_traces" / "build"))
    ap.add_argument("--span", type=float, default=3600.0, help="seconds the departures are compressed into")
    ap.add_argument("--max-trips", type=int, default=None, help="only the first N in-bounds trips (quick builds)")
    ap.add_argument("--no-validate", action="store_true", help="skip the SUMO acceptance run")
    a = ap.parse_args(argv)
    make(Path(a.out), span_s=a.span, max_trips=a.max_trips, validate=not a.no_validate)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
