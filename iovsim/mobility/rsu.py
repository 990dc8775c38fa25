"""RSU deployment on a SUMO net, and RSUs as SUMO additional files (POIs and coverage polygons)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from iovsim.mobility.fileio import write_xml

HEX_ROAD_STEP_M = 10.0   # roads are sampled this finely to move hexagonal sites onto them

# A qualitative palette; RSU i gets colour i mod len (also used by the GUI and the plots).
RSU_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
              (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127)]


def rsu_color(i: int) -> tuple[int, int, int]:
    """RGB of RSU i (the palette repeats)."""
    return tuple(int(c) for c in RSU_COLORS[int(i) % len(RSU_COLORS)])


@dataclass
class RsuSite:
    id: str
    x_m: float
    y_m: float
    lon: float = float("nan")
    lat: float = float("nan")


def _road_points(net, spacing_m: float):
    """Points every spacing_m/4 along the edges, with a weight favouring big, fast roads."""
    pts, weight = [], []
    for edge in net.getEdges():
        if edge.getFunction() == "internal" or not edge.allows("passenger"):
            continue
        shape = np.asarray(edge.getShape(), dtype=float)
        if len(shape) < 2:
            continue
        seg = np.linalg.norm(np.diff(shape, axis=0), axis=1)
        length = seg.sum()
        if length <= 0:
            continue
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        for s in np.arange(0.0, length, spacing_m / 4.0):
            x = np.interp(s, cum, shape[:, 0])
            y = np.interp(s, cum, shape[:, 1])
            pts.append((x, y))
            weight.append(edge.getSpeed() * edge.getLaneNumber())
    return np.asarray(pts), np.asarray(weight)


def place_regular(net, count: int, spacing_m: float) -> list[RsuSite]:
    """Greedy placement along the busiest roads (speed x lanes): at least spacing_m apart, at most count."""
    pts, weight = _road_points(net, spacing_m)
    if len(pts) == 0:
        raise ValueError("the net has no road a passenger car may use")
    order = np.lexsort((pts[:, 1], pts[:, 0], -weight))  # deterministic tie-break by position
    chosen: list[np.ndarray] = []
    for i in order:
        p = pts[i]
        if all(np.hypot(*(p - c)) >= spacing_m for c in chosen):
            chosen.append(p)
            if len(chosen) >= count:
                break
    return [RsuSite(f"rsu{i}", float(p[0]), float(p[1])) for i, p in enumerate(chosen)]


def place_hex(net, count: int, spacing_m: float) -> list[RsuSite]:
    """A hexagonal layout as 3GPP lays out cells (TR 38.901 section 7.8: sites on a triangular lattice,
    inter-site distance `spacing_m`) over the net's boundary. A lattice site is kept where a road
    passenger cars use passes within `spacing_m / 2`, and moved onto the nearest point of that road
    (street furniture: lamp posts, signal masts); a site that lands within `spacing_m / 2` of one
    already kept is dropped. At most `count`, those with the most road within `spacing_m / 2` first."""
    from scipy.spatial import cKDTree

    pts, _ = _road_points(net, HEX_ROAD_STEP_M * 4.0)
    if len(pts) == 0:
        raise ValueError("the net has no road a passenger car may use")
    xmin, ymin, xmax, ymax = net.getBoundary()
    row_m = spacing_m * np.sqrt(3.0) / 2.0
    lattice = [(x + (spacing_m / 2.0 if k % 2 else 0.0), y)
               for k, y in enumerate(np.arange(ymin, ymax + row_m, row_m))
               for x in np.arange(xmin, xmax + spacing_m, spacing_m)]
    lattice = np.asarray(lattice, dtype=float)
    tree = cKDTree(pts)
    dist, nearest = tree.query(lattice)
    road_m = np.array([len(n) for n in tree.query_ball_point(lattice, spacing_m / 2.0)]) * HEX_ROAD_STEP_M
    ok = np.flatnonzero(dist <= spacing_m / 2.0)
    order = ok[np.lexsort((lattice[ok, 1], lattice[ok, 0], -road_m[ok]))]   # most road first, then by position
    chosen: list[np.ndarray] = []
    for i in order:
        p = pts[nearest[i]]
        if all(np.hypot(*(p - c)) >= spacing_m / 2.0 for c in chosen):
            chosen.append(p)
            if len(chosen) >= count:
                break
    return [RsuSite(f"rsu{i}", float(p[0]), float(p[1])) for i, p in enumerate(chosen)]


def add_lonlat(net, sites: list[RsuSite]) -> list[RsuSite]:
    """Fill lon/lat from the net's geo-reference (where the net has one)."""
    if not net.hasGeoProj():
        return sites
    for s in sites:
        s.lon, s.lat = net.convertXY2LonLat(s.x_m, s.y_m)
    return sites


def circle(x: float, y: float, r: float, n: int = 36) -> list[tuple[float, float]]:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [(x + r * np.cos(t), y + r * np.sin(t)) for t in a]


def write_rsu_additional(path: Path, sites: list[RsuSite], radius_m: float | list[float]):
    """SUMO additional file: a POI per RSU and a coverage polygon (sumo-gui and netedit show both)."""
    radii = radius_m if isinstance(radius_m, (list, tuple, np.ndarray)) else [radius_m] * len(sites)
    root = ElementTree.Element("additional")
    for i, (s, r) in enumerate(zip(sites, radii)):
        rgb = ",".join(map(str, rsu_color(i)))
        ElementTree.SubElement(root, "poi", id=s.id, type=f"RSU {s.id}", color=rgb, layer="10",
                               x=f"{s.x_m:.2f}", y=f"{s.y_m:.2f}", width="12", height="12")
        shape = " ".join(f"{x:.2f},{y:.2f}" for x, y in circle(s.x_m, s.y_m, float(r)))
        ElementTree.SubElement(root, "poly", id=f"{s.id}_coverage", type="coverage", color=f"{rgb},60",
                               fill="1", layer="-1", shape=shape)
    write_xml(path, root, "RSUs written by iovsim")


def write_rsu_csv(path: Path, sites: list[RsuSite], radius_m: float | list[float]):
    radii = radius_m if isinstance(radius_m, (list, tuple, np.ndarray)) else [radius_m] * len(sites)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "x_m", "y_m", "lon", "lat", "radius_m"])
        for s, r in zip(sites, radii):
            w.writerow([s.id, f"{s.x_m:.3f}", f"{s.y_m:.3f}", f"{s.lon:.7f}", f"{s.lat:.7f}", f"{float(r):.1f}"])

