"""A truth set for map matching: SUMO drives known routes, its positions are sampled and noised, and the
matched edges are compared with the edges each vehicle really drove.

1. `random_demand` (randomTrips.py + duarouter, seeded) gives `vehicles` routes at least
   `min_distance_m` long; SUMO drives them (1 s steps) and writes FCD (x, y, lane each second).
2. Each vehicle is sampled every `sample_s` from its departure, and every sample gets independent
   Gaussian noise of `noise_m` on x and on y (numpy `default_rng(seed)`).
3. The true edges of a vehicle are the edges of its route from the one it is on at its first sample
   to the one it is on at its last (a sample inside a junction counts the route's next edge at the
   start and its previous edge at the end): exactly what it drove between the first and the last sample.
4. Scores over all vehicles, edges counted once per vehicle (sets):
   precision = sum |matched & true| / sum |matched|, recall = sum |matched & true| / sum |true|.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from iovsim.mobility.mapmatch import match_trip
from iovsim.mobility.osm import random_demand
from iovsim.mobility.scenario import ScenarioError, sumo_binary
from iovsim.mobility.traces_clean import Trip


@dataclass
class TruthTrace:
    """Noisy samples of one simulated vehicle and the edges it drove between the first and last sample."""

    vehicle_id: str
    time_s: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    true_edges: list[str]


def simulate(net_path: Path, work_dir: Path, *, vehicles: int, seed: int, min_distance_m: float) -> tuple[Path, Path]:
    """Routes (randomTrips, seeded) and SUMO's FCD of them; returns (routes, fcd)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    period_s = 3.0
    routes = random_demand(net_path, work_dir / "truth.rou.xml", insertion_period_s=period_s,
                           end_s=vehicles * period_s, seed=seed, min_distance_m=min_distance_m)
    fcd = work_dir / "truth.fcd.xml"
    cmd = [sumo_binary("sumo"), "-n", str(net_path), "-r", str(routes), "--fcd-output", str(fcd),
           "--end", "7200", "--no-step-log", "true", "--no-warnings", "true", "--seed", str(seed),
           "--time-to-teleport", "-1", "--log", str(work_dir / "truth_sumo_log.txt")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not fcd.exists():
        raise ScenarioError(f"{routes}: SUMO could not drive the truth routes (see {work_dir / 'truth_sumo_log.txt'})")
    return routes, fcd


def read_runs(routes: Path, fcd: Path) -> dict[str, tuple[list[str], np.ndarray, list[str]]]:
    """vehicle -> (route edges, FCD rows time/x/y, lane of each row)."""
    route_of = {v.get("id"): v.find("route").get("edges").split()
                for v in ElementTree.parse(routes).getroot().iter("vehicle")}
    rows: dict[str, list] = {}
    for _, el in ElementTree.iterparse(fcd):
        if el.tag == "timestep":
            t = float(el.get("time"))
            for v in el.iter("vehicle"):
                rows.setdefault(v.get("id"), []).append((t, float(v.get("x")), float(v.get("y")), v.get("lane")))
            el.clear()
    return {vid: (route_of[vid], np.array([r[:3] for r in rs]), [r[3] for r in rs]) for vid, rs in rows.items()}


def route_positions(route: list[str], lanes: list[str]) -> list[tuple[int, bool]]:
    """Per FCD row: index in the route of the edge it is on (or just left), and whether inside a junction."""
    out, k = [], 0
    for lane in lanes:
        edge = lane.rsplit("_", 1)[0]
        if edge.startswith(":"):
            out.append((k, True))
            continue
        k = route.index(edge, k)   # routes may pass an edge twice: search forward from the last one
        out.append((k, False))
    return out


def sample_vehicle(vid: str, route: list[str], rows: np.ndarray, lanes: list[str], *, sample_s: float,
                   noise_m: float, rng) -> TruthTrace | None:
    """Samples every `sample_s` from a random whole second of the first period, noised; None if fewer than two."""
    phase = int(rng.integers(0, max(int(sample_s), 1)))
    pick = np.arange(phase, len(rows), max(int(round(sample_s)), 1))   # FCD rows are 1 s apart
    if len(pick) < 2:
        return None
    where = route_positions(route, lanes)
    first_k, first_in = where[pick[0]]
    last_k, _ = where[pick[-1]]
    true = route[first_k + int(first_in): last_k + 1]
    noise = rng.normal(0.0, noise_m, size=(len(pick), 2))
    return TruthTrace(vid, rows[pick, 0], rows[pick, 1] + noise[:, 0], rows[pick, 2] + noise[:, 1], true)


def make_truth_set(net_path: str | Path, work_dir: str | Path, *, vehicles: int = 20, seed: int = 1,
                   sample_s: float = 30.0, noise_m: float = 10.0, min_distance_m: float = 2000.0) -> list[TruthTrace]:
    """Simulate, sample and noise `vehicles` SUMO routes on the net (see the module docstring)."""
    routes, fcd = simulate(Path(net_path), Path(work_dir), vehicles=vehicles, seed=seed, min_distance_m=min_distance_m)
    rng = np.random.default_rng(seed)
    out = []
    for vid, (route, rows, lanes) in sorted(read_runs(routes, fcd).items()):
        tr = sample_vehicle(vid, route, rows, lanes, sample_s=sample_s, noise_m=noise_m, rng=rng)
        if tr is not None:
            out.append(tr)
    return out


def score(truth: list[TruthTrace], matched: list[list[str]]) -> dict:
    """Edge precision and recall over all vehicles (sets of edges per vehicle)."""
    hit = sum(len(set(m) & set(t.true_edges)) for t, m in zip(truth, matched))
    n_matched = sum(len(set(m)) for m in matched)
    n_true = sum(len(set(t.true_edges)) for t in truth)
    return {"vehicles": len(truth), "true_edges": n_true, "matched_edges": n_matched, "correct_edges": hit,
            "precision": hit / max(n_matched, 1), "recall": hit / max(n_true, 1)}


def evaluate(net, truth: list[TruthTrace], **match_kw) -> dict:
    """Match every truth trace (`match_trip` keywords, e.g. matcher="sumolib") and score it."""
    trips = [match_trip(Trip(t.vehicle_id, t.vehicle_id, t.time_s, t.x_m, t.y_m), net, **match_kw) for t in truth]
    out = score(truth, [tr.edges for tr in trips])
    out["truncated"] = sum(tr.status == "truncated" for tr in trips)
    out["unmatched"] = sum(tr.status == "unmatched" for tr in trips)
    return out
