"""RSU placement methods: regular spacing along roads, major junctions, k-means on vehicle density, a
3GPP hexagonal layout, a user file.

`place_rsus(method, net, cfg)` is the one entry point; every method returns `RsuSite`s in net
coordinates with lon/lat filled where the net is geo-referenced. User positions may be lon/lat
or net x/y; positions off the map raise a one-line `PlacementError` naming the file and the row.
"""
from __future__ import annotations

import csv
import typing
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from iovsim.mobility.config import RsuPlacement
from iovsim.mobility.fileio import sniff_dialect
from iovsim.mobility.net import check_lonlat
from iovsim.mobility.rsu import RsuSite, add_lonlat, place_hex, place_regular
from iovsim.mobility.scenario import ScenarioError

METHODS = typing.get_args(RsuPlacement)
OFF_MAP_MARGIN_M = 500.0


class PlacementError(ScenarioError):
    """RSU placement input that cannot be used (one line: file, row/field, what was expected)."""


def place_rsus(method: str, net, cfg, *, warmup_xy: np.ndarray | None = None, seed: int = 0,
               base_dir: Path | None = None) -> list[RsuSite]:
    """RSU sites by `method` (regular, junctions, kmeans, hex, file) under an `RsuConfig`.

    kmeans needs `warmup_xy` (K, 2): vehicle positions sampled during a warm-up run.
    `cfg.file` (placement `file`) is resolved against `base_dir` when relative.
    """
    if method == "regular":
        sites = place_regular(net, cfg.count, cfg.spacing_m)
    elif method == "junctions":
        sites = place_junctions(net, cfg.count, cfg.spacing_m)
    elif method == "hex":
        sites = place_hex(net, cfg.count, cfg.spacing_m)
    elif method == "kmeans":
        if warmup_xy is None or len(warmup_xy) == 0:
            raise PlacementError("rsu.placement kmeans: no vehicle positions from the warm-up "
                                 "(expected warmup_xy with at least one (x, y) row)")
        sites = place_kmeans(warmup_xy, cfg.count, seed=seed, min_spacing_m=cfg.spacing_m)
    elif method == "file":
        if not cfg.file:
            raise PlacementError("rsu.file: expected a CSV or POI file when placement is 'file'")
        path = Path(cfg.file)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        sites = read_rsu_file(path, net)
    else:
        raise PlacementError(f"rsu.placement: expected one of {', '.join(METHODS)}, got {method!r}")
    return add_lonlat(net, sites)


# ----------------------------------------------------------------------------- junctions

def junction_scores(net) -> tuple[list, np.ndarray]:
    """Nodes passenger cars use and a score: traffic lights first, then node degree (in + out edges)."""
    nodes, score = [], []
    for node in net.getNodes():
        if node.getType() in ("dead_end",) or node.getType().startswith("internal"):
            continue
        edges = [e for e in node.getIncoming() + node.getOutgoing() if e.allows("passenger")]
        if not edges:
            continue
        lanes = sum(e.getLaneNumber() for e in edges)
        tls = 1 if node.getType().startswith("traffic_light") else 0
        nodes.append(node)
        score.append(tls * 1e6 + len(edges) * 1e3 + lanes)
    return nodes, np.asarray(score, dtype=float)


def place_junctions(net, count: int, spacing_m: float) -> list[RsuSite]:
    """At major junctions: signalised first, then by degree; at least spacing_m apart, at most count."""
    nodes, score = junction_scores(net)
    if not nodes:
        raise PlacementError("rsu.placement junctions: the net has no junction a passenger car uses")
    xy = np.asarray([n.getCoord()[:2] for n in nodes], dtype=float)
    order = np.lexsort((xy[:, 1], xy[:, 0], -score))
    chosen: list[int] = []
    for i in order:
        if all(np.hypot(*(xy[i] - xy[j])) >= spacing_m for j in chosen):
            chosen.append(int(i))
            if len(chosen) >= count:
                break
    return [RsuSite(f"rsu{k}", float(xy[i, 0]), float(xy[i, 1])) for k, i in enumerate(chosen)]


# ----------------------------------------------------------------------------- k-means

def kmeans(points: np.ndarray, k: int, *, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """Plain Lloyd k-means with k-means++ seeding (numpy, seeded). Returns (k', 2) centres, k' <= k."""
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise PlacementError(f"warm-up positions: expected an array of shape (K, 2), got {pts.shape}")
    uniq = np.unique(pts, axis=0)
    k = min(k, len(uniq))
    rng = np.random.default_rng([seed, 7])
    centres = [pts[rng.integers(len(pts))]]
    for _ in range(1, k):
        d2 = np.min(((pts[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        if d2.sum() <= 0:
            break
        centres.append(pts[rng.choice(len(pts), p=d2 / d2.sum())])
    c = np.asarray(centres)
    for _ in range(iterations):
        label = np.argmin(((pts[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.asarray([pts[label == j].mean(axis=0) if np.any(label == j) else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    return c


def place_kmeans(warmup_xy: np.ndarray, count: int, *, seed: int = 0, min_spacing_m: float = 0.0) -> list[RsuSite]:
    """RSUs at the k-means centres of vehicle positions (dense traffic gets more RSUs).

    Centres closer than min_spacing_m are merged (the busier one is kept), so spacing is respected.
    """
    pts = np.asarray(warmup_xy, dtype=float)
    c = kmeans(pts, count, seed=seed)
    label = np.argmin(((pts[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    weight = np.bincount(label, minlength=len(c))
    kept: list[int] = []
    for j in np.lexsort((c[:, 1], c[:, 0], -weight)):
        if all(np.hypot(*(c[j] - c[i])) >= min_spacing_m for i in kept):
            kept.append(int(j))
    return [RsuSite(f"rsu{k}", float(c[j, 0]), float(c[j, 1])) for k, j in enumerate(kept)]


# ----------------------------------------------------------------------------- user files

def _check_on_map(net, x: float, y: float, where: str, given: str):
    xmin, ymin, xmax, ymax = net.getBoundary()
    m = OFF_MAP_MARGIN_M
    if not (xmin - m <= x <= xmax + m and ymin - m <= y <= ymax + m):
        extent = f"x {xmin:.0f}..{xmax:.0f}, y {ymin:.0f}..{ymax:.0f}"
        if net.hasGeoProj():
            lon0, lat0 = net.convertXY2LonLat(xmin, ymin)
            lon1, lat1 = net.convertXY2LonLat(xmax, ymax)
            extent = f"lon {lon0:.5f}..{lon1:.5f}, lat {lat0:.5f}..{lat1:.5f}"
        raise PlacementError(f"{where}: position {given} is off the map (the map covers {extent})")


def lonlat_to_xy(net, lon: float, lat: float, where: str) -> tuple[float, float]:
    """Net x/y of a lon/lat position; one-line errors for bad degrees, no geo-reference, off the map."""
    check_lonlat(lon, lat, where, error=PlacementError)
    if not net.hasGeoProj():
        raise PlacementError(f"{where}: lon/lat given but the net has no geo-reference; give x/y in net metres")
    x, y = net.convertLonLat2XY(lon, lat)
    _check_on_map(net, float(x), float(y), where, f"lon {lon:g}, lat {lat:g}")
    return float(x), float(y)


LON_NAMES = ("lon", "longitude", "lng", "long")
LAT_NAMES = ("lat", "latitude")
X_NAMES = ("x", "x_m")
Y_NAMES = ("y", "y_m")
ID_NAMES = ("id", "name", "rsu")


def read_rsu_file(path: str | Path, net) -> list[RsuSite]:
    """RSUs from a CSV (lon,lat or x,y columns; header names detected) or a SUMO additional of POIs."""
    path = Path(path)
    if not path.exists():
        raise PlacementError(f"{path}: RSU file not found")
    head = path.read_text(errors="replace").lstrip()[:1]
    sites = _read_poi_file(path, net) if head == "<" else _read_rsu_csv(path, net)
    if not sites:
        raise PlacementError(f"{path}: no RSU positions found")
    return sites


def _find(header: list[str], names) -> int | None:
    low = [h.strip().lower() for h in header]
    for n in names:
        if n in low:
            return low.index(n)
    return None


def _read_rsu_csv(path: Path, net) -> list[RsuSite]:
    expected = "expected a CSV with lon,lat or x,y columns, or a SUMO additional file of POIs"
    try:
        text = path.read_text(encoding="utf-8-sig")
        dialect = sniff_dialect(text)
        rows = list(csv.reader(text.splitlines(), dialect))
    except UnicodeDecodeError as e:
        raise PlacementError(f"{path}: byte {e.start}: not UTF-8 text ({expected})") from None
    except csv.Error as e:
        raise PlacementError(f"{path}: not a readable CSV ({e}; {expected})") from None
    if not rows:
        raise PlacementError(f"{path}: empty file (expected a header with lon,lat or x,y columns)")
    header = rows[0]
    ilon, ilat, ix, iy, iid = (_find(header, LON_NAMES), _find(header, LAT_NAMES), _find(header, X_NAMES),
                               _find(header, Y_NAMES), _find(header, ID_NAMES))
    geo = ilon is not None and ilat is not None
    if not geo and (ix is None or iy is None):
        raise PlacementError(f"{path}: header: expected columns lon,lat or x,y, got {','.join(header)}")
    sites = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{path}: line {n}"
        try:
            a, b = (float(row[ilon]), float(row[ilat])) if geo else (float(row[ix]), float(row[iy]))
        except (ValueError, IndexError):
            cols = "lon,lat" if geo else "x,y"
            raise PlacementError(f"{where}: columns '{cols}': expected numbers, got {dialect.delimiter.join(row)!r}") from None
        if geo:
            x, y = lonlat_to_xy(net, a, b, where)
        else:
            _check_on_map(net, a, b, where, f"x {a:g}, y {b:g}")
            x, y = a, b
        rid = row[iid].strip() if iid is not None and iid < len(row) and row[iid].strip() else f"rsu{len(sites)}"
        sites.append(RsuSite(rid, x, y))
    return sites


def _read_poi_file(path: Path, net) -> list[RsuSite]:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as e:
        raise PlacementError(f"{path}: not a readable SUMO additional file ({e})") from None
    sites = []
    for k, poi in enumerate(root.iter("poi")):
        pid = poi.get("id") or f"rsu{k}"
        where = f"{path}: poi '{pid}'"
        try:
            if poi.get("lon") is not None and poi.get("lat") is not None:
                x, y = lonlat_to_xy(net, float(poi.get("lon")), float(poi.get("lat")), where)
            elif poi.get("x") is not None and poi.get("y") is not None:
                x, y = float(poi.get("x")), float(poi.get("y"))
                _check_on_map(net, x, y, where, f"x {x:g}, y {y:g}")
            else:
                raise PlacementError(f"{where}: expected attributes x,y or lon,lat")
        except ValueError as e:
            if isinstance(e, PlacementError):
                raise
            raise PlacementError(f"{where}: attributes x,y / lon,lat: expected numbers") from None
        sites.append(RsuSite(pid, x, y))
    return sites
