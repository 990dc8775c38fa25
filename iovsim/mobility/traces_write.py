"""Writing imported trips: SUMO routes, the exact-replay file, FCD, scenario YAMLs; SUMO's acceptance check."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import XMLGenerator

import numpy as np

from iovsim.mobility.fileio import open_text, write_xml
from iovsim.mobility.scenario import sumo_binary
from iovsim.mobility.traces_clean import Trip
from iovsim.mobility.traces_read import TraceError

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
    Gzip-compressed when the name ends in .gz.
    """
    n = 0
    with open_text(path, "w") as f:
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
    """The cleaned tracks as SUMO FCD XML (net coordinates, simulation time); gzip when the name ends in .gz."""
    rows = []
    for i, tr in enumerate(trips):
        times = departs[i] + (tr.time_s - tr.time_s[0])
        for t, x, y in zip(times, tr.x_m, tr.y_m):
            rows.append((float(t), tr.trip_id, float(x), float(y)))
    rows.sort()
    with open_text(path, "w") as f:   # streamed: a day of traces does not fit a tree
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
                    stagger_s: float = 1.0, with_ids: bool = False) -> dict:
    """Run SUMO (binary, headless) on the routes; count vehicles loaded and inserted.

    Routes SUMO rejects are skipped (`--ignore-route-errors`) and never inserted. To keep this fast
    whatever the traces' time span, SUMO runs a copy whose departures are `stagger_s` apart
    (route validity and insertion do not depend on the departure time on an empty map).
    `with_ids`: also return `inserted_ids`, the set of vehicles inserted (from SUMO's tripinfo output,
    unfinished trips included).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open_text(routes_path) as fh:
        tree = ElementTree.parse(fh)
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
    tripinfo = out_dir / "validation_tripinfo.xml"
    if with_ids:
        cmd += ["--tripinfo-output", str(tripinfo), "--tripinfo-output.write-unfinished", "true"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not stats.exists():
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise TraceError(f"{routes_path}: SUMO could not run the routes: {tail}")
    veh = ElementTree.parse(stats).getroot().find("vehicles")
    loaded, inserted = int(veh.get("loaded")), int(veh.get("inserted"))
    out = {"written": len(vehicles), "loaded": loaded, "inserted": inserted,
           "rejected": len(vehicles) - loaded, "not_inserted": loaded - inserted}
    if with_ids:
        out["inserted_ids"] = {el.get("id") for _, el in ElementTree.iterparse(tripinfo)
                               if el.tag == "tripinfo" and float(el.get("depart", "-1")) >= 0}
    return out



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
