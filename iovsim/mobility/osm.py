"""Bring your own map: an OpenStreetMap extract -> SUMO net, demand, RSUs and a scenario YAML.

`from_osm(osm, out_dir)` writes into `out_dir`:

    <name>.net.xml        netconvert with options suited to vehicular simulation
    routes.rou.xml        randomTrips.py demand (or the user's route files, referenced in place)
    rsus.add.xml, rsus.csv  RSU POIs + coverage polygons (sumo-gui/netedit show them), positions
    coverage.json         share of vehicle-seconds within rsu_radius_m of an RSU in a headless run
    scenario.yaml         what `mobility.scenario` accepts (`iovsim run`)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from iovsim.mobility.scenario import ScenarioError, sumo_binary, sumo_home
from iovsim.schema import field_problems

# netconvert options for vehicular simulation from OSM: join the clusters of nodes OSM draws at big
# junctions, guess on/off-ramps, traffic lights and roundabouts, keep the roads cars use, drop
# pieces not connected to anything, keep street names (sumo-gui shows them).
NETCONVERT_OPTIONS = [
    "--geometry.remove", "--ramps.guess", "--junctions.join", "--tls.guess-signals", "--tls.discard-simple",
    "--tls.join", "--tls.default-type", "actuated", "--roundabouts.guess", "--remove-edges.isolated",
    "--keep-edges.by-vclass", "passenger", "--output.street-names", "--output.original-names",
    "--edges.join", "--no-turnarounds.except-deadend",
]
# Race tracks for passenger cars, layered over SUMO's OSM type map (where highway=raceway is vip-only);
# used only for a map that leaves no road otherwise, so a city's karting track stays out of its net.
RACEWAY_FOR_CARS = """<types>
    <type id="highway.raceway" numLanes="2" speed="83.33" priority="15" oneway="false" allow="vip passenger"/>
</types>
"""
CLOSED_NETWORK_NOTE = ("netconvert left no road for passenger cars; converted again keeping roads that meet no "
                       "junction (a closed ring, a lone street) and race tracks (highway=raceway)")
DEFAULT_MIN_DISTANCE_M = 300.0
FRINGE_NOTE = ("randomTrips.py found no edge to start or end a trip on (a closed network, or dead ends only): "
               "trips start and end on any edge (--allow-fringe)")


def _sumo_env() -> dict:
    """Environment for SUMO tools: SUMO_HOME set and PROJ's database found (lon/lat projection)."""
    env = dict(os.environ)
    home = sumo_home()
    env.setdefault("SUMO_HOME", str(home))
    proj = home / "data" / "proj"
    if proj.is_dir():
        env.setdefault("PROJ_DATA", str(proj))
        env.setdefault("PROJ_LIB", str(proj))
    return env


def _run(cmd: list[str], what: str, source: Path):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_sumo_env())
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        err = [ln for ln in lines if ln.startswith("Error")] or lines[-1:] or [f"exit status {proc.returncode}"]
        raise ScenarioError(f"{source}: {what} failed: {err[0]}")
    return proc


def build_net(osm_path: str | Path, net_path: str | Path, *, extra_options: list[str] | None = None,
              note: Callable[[str], None] | None = None) -> Path:
    """netconvert an OSM file (.osm, .osm.xml, .osm.gz) into a SUMO net geo-referenced in UTM.

    A map that leaves no road for passenger cars is converted once more keeping closed networks
    (CLOSED_NETWORK_NOTE, passed to `note`); if that leaves none either, one line says so."""
    osm_path, net_path = Path(osm_path), Path(net_path)
    if not osm_path.exists():
        raise ScenarioError(f"{osm_path}: OSM file not found")
    head = osm_path.open("rb").read(512)
    if not osm_path.name.endswith(".gz") and b"<osm" not in head:
        raise ScenarioError(f"{osm_path}: expected an OpenStreetMap XML file (<osm ...>)")
    net_path.parent.mkdir(parents=True, exist_ok=True)
    _netconvert(osm_path, net_path, NETCONVERT_OPTIONS, extra_options)
    if _has_roads(net_path):
        return net_path
    # --remove-edges.isolated drops every road that meets no junction, and a closed ring (a race track,
    # a loop road on its own) is such a road; SUMO's OSM type map also keeps race tracks to vip vehicles.
    with tempfile.TemporaryDirectory(prefix="iovsim_types_") as tmp:
        types = Path(tmp) / "raceway.typ.xml"
        types.write_text(RACEWAY_FOR_CARS)
        type_files = f"{sumo_home() / 'data' / 'typemap' / 'osmNetconvert.typ.xml'},{types}"
        options = [o for o in NETCONVERT_OPTIONS if o != "--remove-edges.isolated"]
        _netconvert(osm_path, net_path, [*options, "--type-files", type_files], extra_options)
    if not _has_roads(net_path):
        raise ScenarioError(f"{osm_path}: netconvert kept no road passenger cars may use; expected OSM ways "
                            "tagged highway=motorway, trunk, primary, secondary, tertiary, unclassified, "
                            "residential, living_street or raceway")
    if note:
        note(CLOSED_NETWORK_NOTE)
    return net_path


def _netconvert(osm_path: Path, net_path: Path, options: list[str], extra_options: list[str] | None) -> None:
    net_path.unlink(missing_ok=True)  # a second conversion must not leave the first one's net behind
    cmd = [sumo_binary("netconvert"), "--osm-files", str(osm_path), "-o", str(net_path), *options,
           "--no-warnings", "true", *(extra_options or [])]
    _run(cmd, "netconvert", osm_path)
    if not net_path.exists():
        raise ScenarioError(f"{osm_path}: netconvert wrote no net")


def _has_roads(net_path: Path) -> bool:
    """Whether the net has an edge that is not inside a junction (reading stops at the first one)."""
    from xml.etree import ElementTree

    for _, el in ElementTree.iterparse(net_path):
        if el.tag == "edge" and el.get("function") != "internal":
            return True
        el.clear()
    return False


def random_demand(net_path: str | Path, routes_path: str | Path, *, insertion_period_s: float = 2.0,
                  begin_s: float = 0.0, end_s: float = 3600.0, seed: int = 0, fringe_factor: float = 5.0,
                  min_distance_m: float | None = None, allow_fringe: bool = False,
                  note: Callable[[str], None] | None = None) -> Path:
    """randomTrips.py demand: one car every `insertion_period_s` between begin_s and end_s, routed and
    validated by duarouter (trips without a route are dropped). Trips start and end preferably at the
    map's fringe (`fringe_factor`), so traffic crosses the map rather than appearing in its middle.

    randomTrips starts trips on edges that lead into the map and ends them on edges that lead out of
    it, and a closed network (or one of dead-end roads only) has none: then (or with `allow_fringe`)
    trips may start and end on any edge (its --allow-fringe), and `note` gets FRINGE_NOTE.

    Trips are at least `min_distance_m` long; by default 300 m, and on a map too small for a single
    such trip a quarter of the net's diagonal instead (with a note). A distance given is kept."""
    if insertion_period_s <= 0:
        raise ScenarioError(f"insertion_period_s: expected a positive period in seconds, got {insertion_period_s}")
    if end_s <= begin_s:
        raise ScenarioError(f"end_s: expected more than begin_s ({begin_s:g}), got {end_s:g}")
    if min_distance_m is not None and not min_distance_m >= 0:
        raise ScenarioError(f"min_distance_m: expected a distance of 0 m or more, got {min_distance_m:g}")
    routes_path = Path(routes_path)
    dist = DEFAULT_MIN_DISTANCE_M if min_distance_m is None else min_distance_m
    demand = {"insertion_period_s": insertion_period_s, "begin_s": begin_s, "end_s": end_s, "seed": seed,
              "fringe_factor": fringe_factor}
    fringe = _random_trips(net_path, routes_path, dist, allow_fringe, note, **demand)
    if min_distance_m is None and not _has_vehicle(routes_path):
        shorter = 0.25 * _diagonal_m(Path(net_path))
        if shorter < dist:
            _random_trips(net_path, routes_path, shorter, fringe, note, **demand)
            if note and _has_vehicle(routes_path):
                note(f"no trip {dist:g} m long fits this small map; trips are at least {shorter:.0f} m "
                     "(a quarter of the net's diagonal; --min-distance sets it)")
            dist = shorter
    if not _has_vehicle(routes_path):
        raise ScenarioError(f"{net_path}: randomTrips.py found no trip between connected roads at least "
                            f"{dist:g} m apart (min_distance_m, --min-distance: expected a shorter "
                            "distance for a small map)")
    return routes_path


def _diagonal_m(net_path: Path) -> float:
    """The diagonal of the net's bounding box (its location's convBoundary), in metres."""
    import sumolib

    (x0, y0), (x1, y1) = sumolib.net.readNet(str(net_path)).getBBoxXY()
    return float(np.hypot(x1 - x0, y1 - y0))


def _random_trips(net_path, routes_path: Path, min_distance_m: float, allow_fringe: bool, note, *,
                  insertion_period_s, begin_s, end_s, seed, fringe_factor) -> bool:
    """One randomTrips run (retried with --allow-fringe where it asks for it); whether fringe was allowed."""
    trips = routes_path.with_name(routes_path.name.replace(".rou.xml", "") + ".trips.xml")
    cmd = [sys.executable, str(sumo_home() / "tools" / "randomTrips.py"), "-n", str(net_path), "-o", str(trips),
           "--route-file", str(routes_path), "-b", f"{begin_s:g}", "-e", f"{end_s:g}",
           "-p", f"{insertion_period_s:g}", "--seed", str(seed), "--validate", "--fringe-factor", f"{fringe_factor:g}",
           "--min-distance", f"{min_distance_m:.6g}", "--vehicle-class", "passenger",
           "--prefix", "veh", "--trip-attributes", 'departLane="best" departSpeed="max"']
    try:
        _run(cmd + (["--allow-fringe"] if allow_fringe else []), "randomTrips.py", Path(net_path))
    except ScenarioError as e:
        if allow_fringe or "--allow-fringe" not in str(e):  # randomTrips' advice when no edge can start a trip
            raise
        _run(cmd + ["--allow-fringe"], "randomTrips.py", Path(net_path))
        if note:
            note(FRINGE_NOTE)
        allow_fringe = True
    if not routes_path.exists():
        raise ScenarioError(f"{net_path}: randomTrips.py wrote no routes")
    return allow_fringe


def _has_vehicle(routes_path: Path) -> bool:
    from xml.etree import ElementTree

    return any(el.tag in ("vehicle", "trip") for _, el in ElementTree.iterparse(routes_path))


def warmup_positions(net_path: str | Path, route_files: list[Path], *, duration_s: float = 600.0,
                     begin_s: float = 0.0, seed: int = 0, period_s: float = 10.0) -> np.ndarray:
    """Vehicle positions (K, 2) sampled every period_s during a headless warm-up run (for k-means RSUs)."""
    from xml.etree import ElementTree

    with tempfile.TemporaryDirectory(prefix="iovsim_warmup_") as tmp:
        fcd = Path(tmp) / "fcd.xml"
        cmd = [sumo_binary("sumo"), "-n", str(net_path), "-r", ",".join(str(r) for r in route_files),
               "--begin", f"{begin_s:g}", "--end", f"{begin_s + duration_s:g}", "--seed", str(seed),
               "--fcd-output", str(fcd), "--device.fcd.period", f"{period_s:g}", "--no-step-log", "true",
               "--no-warnings", "true", "--ignore-route-errors", "true", "--log", str(Path(tmp) / "log.txt")]
        _run(cmd, "warm-up run", Path(net_path))
        pts = [(float(v.get("x")), float(v.get("y"))) for _, v in ElementTree.iterparse(fcd) if v.tag == "vehicle"]
    return np.asarray(pts, dtype=float).reshape(-1, 2)


def _print_note(text: str) -> None:
    print(f"iovsim: note: {text}", file=sys.stderr)


def _rel(p: Path, base: Path) -> str:
    try:
        return os.path.relpath(Path(p).resolve(), base.resolve())
    except ValueError:
        return str(Path(p).resolve())


def write_coverage(path: Path, xy: np.ndarray, sites, radius_m: float, *, placement: str, window_s: tuple):
    """coverage.json: the share of sampled vehicle positions within radius_m of an RSU."""
    from iovsim.mobility.coverage import coverage_share

    share = coverage_share(xy, np.array([[s.x_m, s.y_m] for s in sites]), radius_m)
    path.write_text(json.dumps({
        "rsus": len(sites), "placement": placement, "radius_m": radius_m, "window_s": list(window_s),
        "vehicle_samples": int(len(xy)), "coverage_share": round(float(share), 4)}, indent=2) + "\n")


def from_osm(osm_path: str | Path, out_dir: str | Path, *, name: str | None = None,
             insertion_period_s: float = 2.0, begin_s: float = 0.0, end_s: float = 3600.0, seed: int = 0,
             routes: list[str | Path] | None = None, fringe_factor: float = 5.0,
             rsu_placement: str = "regular", rsu_count: int = 6, rsu_spacing_m: float = 500.0,
             rsu_radius_m: float = 300.0, rsu_file: str | Path | None = None, warmup_s: float = 600.0,
             coverage_s: float = 600.0, netconvert_options: list[str] | None = None, allow_fringe: bool = False,
             min_distance_m: float | None = None, notify: Callable[[str], None] | None = None) -> Path:
    """Build a scenario folder from an OSM extract; returns the scenario YAML's path.

    `routes`: the user's route files (referenced in place) instead of randomTrips demand.
    RSUs: `rsu_placement` regular | junctions | kmeans (on a `warmup_s` warm-up run) | hex | file (`rsu_file`).
    Coverage: a headless run of `coverage_s` seconds (0 = skip) measures the share of vehicle-seconds
    within `rsu_radius_m` of an RSU, written to coverage.json.
    A closed network (a ring, a race track) is converted anyway: what was done differently is one line
    each to `notify` (default: stderr) and in the scenario's description.
    """
    from iovsim.mobility.config import RsuConfig
    from iovsim.mobility.placement import place_rsus
    from iovsim.mobility.rsu import write_rsu_additional, write_rsu_csv
    from iovsim.mobility.net import load_net

    osm_path, out_dir = Path(osm_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or osm_path.name.split(".")[0]
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        (notify or _print_note)(f"{osm_path.name}: {text}")

    net_path = build_net(osm_path, out_dir / f"{name}.net.xml", extra_options=netconvert_options, note=note)
    if routes:
        route_files = _user_routes(routes)
    else:
        route_files = [random_demand(net_path, out_dir / "routes.rou.xml", insertion_period_s=insertion_period_s,
                                     begin_s=begin_s, end_s=end_s, seed=seed, fringe_factor=fringe_factor,
                                     min_distance_m=min_distance_m, allow_fringe=allow_fringe, note=note)]
    net = load_net(net_path)
    cfg = RsuConfig(placement=rsu_placement, count=rsu_count, spacing_m=rsu_spacing_m,
                    file=str(rsu_file or ""), coverage_radius_m=rsu_radius_m)
    errors = [f"rsu.{f}: {m}" for f, m in field_problems(cfg)]
    cfg.validate(lambda f, m: errors.append(f"rsu.{f}: {m}"))
    if errors:
        raise ScenarioError(f"{osm_path}: {errors[0]}")
    warm = None
    if rsu_placement == "kmeans":
        warm = warmup_positions(net_path, route_files, duration_s=warmup_s, begin_s=begin_s, seed=seed, period_s=1.0)
    sites = place_rsus(rsu_placement, net, cfg, warmup_xy=warm, seed=seed, base_dir=Path.cwd())
    write_rsu_additional(out_dir / "rsus.add.xml", sites, rsu_radius_m)
    write_rsu_csv(out_dir / "rsus.csv", sites, rsu_radius_m)
    if coverage_s > 0:
        xy = warm if warm is not None and warmup_s == coverage_s else \
            warmup_positions(net_path, route_files, duration_s=coverage_s, begin_s=begin_s, seed=seed, period_s=1.0)
        write_coverage(out_dir / "coverage.json", xy, sites, rsu_radius_m, placement=rsu_placement,
                       window_s=(begin_s, begin_s + coverage_s))
    return _write_scenario_yaml(out_dir, name, osm_path, net_path, route_files, notes)


def _user_routes(routes: list[str | Path]) -> list[Path]:
    route_files = [Path(r) for r in routes]
    for r in route_files:
        if not r.exists():
            raise ScenarioError(f"{r}: route file not found")
    return route_files


def _write_scenario_yaml(out_dir: Path, name: str, osm_path: Path, net_path: Path, route_files: list[Path],
                         notes: list[str]) -> Path:
    """scenario.yaml; the description also keeps what was done differently for this map (`notes`)."""
    data = {
        "name": name,
        "description": "; ".join([f"built by iovsim scenario from-osm from {osm_path.name}", *notes]),
        "source": str(osm_path.resolve()),
        "net_file": _rel(net_path, out_dir),
        "route_files": [_rel(r, out_dir) for r in route_files],
        "additional_files": [],
        "rsu_file": "rsus.add.xml",
    }
    path = out_dir / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
