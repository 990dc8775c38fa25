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


def build_net(osm_path: str | Path, net_path: str | Path, *, extra_options: list[str] | None = None) -> Path:
    """netconvert an OSM file (.osm, .osm.xml, .osm.gz) into a SUMO net geo-referenced in UTM."""
    osm_path, net_path = Path(osm_path), Path(net_path)
    if not osm_path.exists():
        raise ScenarioError(f"{osm_path}: OSM file not found")
    head = osm_path.open("rb").read(512)
    if not osm_path.name.endswith(".gz") and b"<osm" not in head:
        raise ScenarioError(f"{osm_path}: expected an OpenStreetMap XML file (<osm ...>)")
    net_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sumo_binary("netconvert"), "--osm-files", str(osm_path), "-o", str(net_path),
           *NETCONVERT_OPTIONS, "--no-warnings", "true", *(extra_options or [])]
    _run(cmd, "netconvert", osm_path)
    if not net_path.exists():
        raise ScenarioError(f"{osm_path}: netconvert wrote no net")
    return net_path


def random_demand(net_path: str | Path, routes_path: str | Path, *, insertion_period_s: float = 2.0,
                  begin_s: float = 0.0, end_s: float = 3600.0, seed: int = 0, fringe_factor: float = 5.0,
                  min_distance_m: float = 300.0) -> Path:
    """randomTrips.py demand: one car every `insertion_period_s` between begin_s and end_s, routed and
    validated by duarouter (trips without a route are dropped). Trips start and end preferably at the
    map's fringe (`fringe_factor`), so traffic crosses the map rather than appearing in its middle."""
    if insertion_period_s <= 0:
        raise ScenarioError(f"insertion_period_s: expected a positive period in seconds, got {insertion_period_s}")
    if end_s <= begin_s:
        raise ScenarioError(f"end_s: expected more than begin_s ({begin_s:g}), got {end_s:g}")
    routes_path = Path(routes_path)
    trips = routes_path.with_name(routes_path.name.replace(".rou.xml", "") + ".trips.xml")
    cmd = [sys.executable, str(sumo_home() / "tools" / "randomTrips.py"), "-n", str(net_path), "-o", str(trips),
           "--route-file", str(routes_path), "-b", f"{begin_s:g}", "-e", f"{end_s:g}",
           "-p", f"{insertion_period_s:g}", "--seed", str(seed), "--validate", "--fringe-factor", f"{fringe_factor:g}",
           "--min-distance", f"{min_distance_m:g}", "--vehicle-class", "passenger",
           "--prefix", "veh", "--trip-attributes", 'departLane="best" departSpeed="max"']
    _run(cmd, "randomTrips.py", Path(net_path))
    if not routes_path.exists():
        raise ScenarioError(f"{net_path}: randomTrips.py wrote no routes")
    return routes_path


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
             coverage_s: float = 600.0, netconvert_options: list[str] | None = None) -> Path:
    """Build a scenario folder from an OSM extract; returns the scenario YAML's path.

    `routes`: the user's route files (referenced in place) instead of randomTrips demand.
    RSUs: `rsu_placement` regular | junctions | kmeans (on a `warmup_s` warm-up run) | file (`rsu_file`).
    Coverage: a headless run of `coverage_s` seconds (0 = skip) measures the share of vehicle-seconds
    within `rsu_radius_m` of an RSU, written to coverage.json.
    """
    from iovsim.mobility.config import RsuConfig
    from iovsim.mobility.placement import place_rsus
    from iovsim.mobility.rsu import write_rsu_additional, write_rsu_csv
    from iovsim.mobility.net import load_net

    osm_path, out_dir = Path(osm_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or osm_path.name.split(".")[0]
    net_path = build_net(osm_path, out_dir / f"{name}.net.xml", extra_options=netconvert_options)
    if routes:
        route_files = [Path(r) for r in routes]
        for r in route_files:
            if not r.exists():
                raise ScenarioError(f"{r}: route file not found")
    else:
        route_files = [random_demand(net_path, out_dir / "routes.rou.xml", insertion_period_s=insertion_period_s,
                                     begin_s=begin_s, end_s=end_s, seed=seed, fringe_factor=fringe_factor)]
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
    data = {
        "name": name,
        "description": f"built by iovsim scenario from-osm from {osm_path.name}",
        "source": str(osm_path.resolve()),
        "net_file": _rel(net_path, out_dir),
        "route_files": [_rel(r, out_dir) for r in route_files],
        "additional_files": [],
        "rsu_file": "rsus.add.xml",
    }
    path = out_dir / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
