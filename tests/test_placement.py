"""RSU placement methods, user RSU files (lon/lat and x/y, CSV and POIs), off-map errors, coverage share."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sumolib

from iovsim.mobility.config import RsuConfig
from iovsim.mobility.coverage import coverage_share, covered
from iovsim.mobility.placement import PlacementError, kmeans, place_rsus, read_rsu_file
from iovsim.mobility.rsu import write_rsu_additional, write_rsu_csv
from iovsim.mobility.scenario import ScenarioError, sumo_home


@pytest.fixture(scope="module")
def bologna(shared_data_dir):
    p = shared_data_dir / "maps" / "bologna_acosta" / "acosta_buslanes.net.xml"
    if not p.exists():
        pytest.skip(f"{p} absent")
    return sumolib.net.readNet(str(p))


@pytest.fixture(scope="module")
def a10kw():
    return sumolib.net.readNet(str(sumo_home() / "tools" / "game" / "A10KW" / "osm.net.xml"))


def spacing_ok(sites, spacing):
    xy = np.array([[s.x_m, s.y_m] for s in sites])
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    return np.all(d[~np.eye(len(xy), dtype=bool)] >= spacing - 1e-6)


def test_regular_and_junctions_respect_count_and_spacing(bologna):
    for method in ("regular", "junctions"):
        sites = place_rsus(method, bologna, RsuConfig(placement=method, count=4, spacing_m=250))
        print(method, [(s.id, round(s.x_m), round(s.y_m), round(s.lon, 5), round(s.lat, 5)) for s in sites])
        assert 1 <= len(sites) <= 4 and spacing_ok(sites, 250)
        assert all(np.isfinite(s.lon) and 44 < s.lat < 45 for s in sites)   # Bologna
    tls = {n.getID() for n in bologna.getNodes() if n.getType().startswith("traffic_light")}
    first = place_rsus("junctions", bologna, RsuConfig(count=1, spacing_m=250))[0]
    node_xy = {n.getID(): n.getCoord() for n in bologna.getNodes()}
    nearest = min(node_xy, key=lambda k: np.hypot(node_xy[k][0] - first.x_m, node_xy[k][1] - first.y_m))
    assert nearest in tls  # traffic lights come first


def test_kmeans_is_seeded_and_follows_density(a10kw):
    rng = np.random.default_rng(0)
    b = a10kw.getBoundary()
    centres = np.array([[b[0] + 300, b[1] + 300], [b[2] - 300, b[3] - 300], [b[0] + 300, b[3] - 300]])
    pts = np.concatenate([c + rng.normal(0, 30, (200, 2)) for c in centres])
    s1 = place_rsus("kmeans", a10kw, RsuConfig(placement="kmeans", count=3, spacing_m=100), warmup_xy=pts, seed=4)
    s2 = place_rsus("kmeans", a10kw, RsuConfig(placement="kmeans", count=3, spacing_m=100), warmup_xy=pts, seed=4)
    assert [(a.x_m, a.y_m) for a in s1] == [(a.x_m, a.y_m) for a in s2]
    got = np.array([[s.x_m, s.y_m] for s in s1])
    assert len(got) == 3
    assert np.all(np.min(np.hypot(*(got[:, None] - centres[None]).transpose(2, 0, 1)), axis=0) < 20)
    # spacing merges centres that are too close
    merged = place_rsus("kmeans", a10kw, RsuConfig(count=6, spacing_m=500), warmup_xy=pts, seed=1)
    assert spacing_ok(merged, 500)
    with pytest.raises(PlacementError, match="warm-up"):
        place_rsus("kmeans", a10kw, RsuConfig(placement="kmeans"), warmup_xy=np.zeros((0, 2)))
    assert len(kmeans(np.ones((5, 2)), 3)) == 1


def test_rsu_file_lonlat_csv_xy_csv_and_pois(bologna, tmp_path):
    ref = place_rsus("regular", bologna, RsuConfig(count=3, spacing_m=200))
    (tmp_path / "ll.csv").write_text("name;Latitude;Longitude\n" +
                                     "\n".join(f"{s.id};{s.lat};{s.lon}" for s in ref) + "\n")
    got = read_rsu_file(tmp_path / "ll.csv", bologna)
    assert [g.id for g in got] == [s.id for s in ref]
    assert np.allclose([[g.x_m, g.y_m] for g in got], [[s.x_m, s.y_m] for s in ref], atol=0.01)
    (tmp_path / "xy.csv").write_text("x,y\n" + "\n".join(f"{s.x_m},{s.y_m}" for s in ref) + "\n")
    assert len(read_rsu_file(tmp_path / "xy.csv", bologna)) == 3
    write_rsu_additional(tmp_path / "rsus.add.xml", ref, 150)      # our own POI file round-trips
    pois = place_rsus("file", bologna, RsuConfig(placement="file", file="rsus.add.xml"), base_dir=tmp_path)
    assert [(round(p.x_m, 2), round(p.y_m, 2)) for p in pois] == [(round(s.x_m, 2), round(s.y_m, 2)) for s in ref]
    (tmp_path / "geo.add.xml").write_text(f'<additional><poi id="a" lon="{ref[0].lon}" lat="{ref[0].lat}"/></additional>')
    assert abs(read_rsu_file(tmp_path / "geo.add.xml", bologna)[0].x_m - ref[0].x_m) < 0.01
    write_rsu_csv(tmp_path / "rsus.csv", ref, 150)
    back = read_rsu_file(tmp_path / "rsus.csv", bologna)      # our own rsus.csv round-trips (via its lon/lat)
    assert [g.id for g in back] == [s.id for s in ref]
    assert np.allclose([[g.x_m, g.y_m] for g in back], [[s.x_m, s.y_m] for s in ref], atol=0.02)


def test_rsu_file_errors_are_one_line_and_name_the_row(bologna, tmp_path):
    p = tmp_path / "rsus.csv"
    p.write_text("lon,lat\n11.316,44.497\n-122.42,37.79\n")      # the second is in San Francisco
    with pytest.raises(ScenarioError) as e:
        read_rsu_file(p, bologna)
    msg = str(e.value)
    print(msg)
    assert "rsus.csv: line 3" in msg and "off the map" in msg and "lon -122.42" in msg and "lon 11.3" in msg and "\n" not in msg
    p.write_text("lon,lat\n11.37,144.49\n")
    with pytest.raises(ScenarioError, match=r"rsus.csv: line 2: field 'lat': expected degrees in \[-90, 90\], got 144.49"):
        read_rsu_file(p, bologna)
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ScenarioError, match=r"rsus.csv: header: expected columns lon,lat or x,y"):
        read_rsu_file(p, bologna)
    p.write_text("x,y\n1e7,0\n")
    with pytest.raises(ScenarioError, match=r"rsus.csv: line 2: position x 1e\+07, y 0 is off the map"):
        read_rsu_file(p, bologna)
    p.write_text("x,y\nabc,0\n")
    with pytest.raises(ScenarioError, match=r"rsus.csv: line 2: columns 'x,y': expected numbers"):
        read_rsu_file(p, bologna)
    (tmp_path / "p.add.xml").write_text('<additional><poi id="far" x="-99999" y="5"/></additional>')
    with pytest.raises(ScenarioError, match=r"p.add.xml: poi 'far': position x -99999, y 5 is off the map"):
        read_rsu_file(tmp_path / "p.add.xml", bologna)
    with pytest.raises(ScenarioError, match=r"missing.csv: RSU file not found"):
        read_rsu_file(tmp_path / "missing.csv", bologna)
    with pytest.raises(ScenarioError, match=r"expected one of regular, junctions, kmeans, hex, file"):
        place_rsus("hexagons", bologna, RsuConfig())


def test_coverage_share_counts_vehicle_seconds():
    rsu = np.array([[0.0, 0.0], [1000.0, 0.0]])
    frames = [np.array([[10.0, 0.0], [500.0, 0.0]]),       # 1 of 2 covered
              np.array([[990.0, 5.0]]),                     # 1 of 1
              np.zeros((0, 2))]                              # nobody on the map
    assert coverage_share(frames, rsu, 100.0) == pytest.approx(2 / 3)
    assert coverage_share(np.vstack(frames[:2]), rsu, 100.0) == pytest.approx(2 / 3)
    assert coverage_share([], rsu, 100.0) == 0.0
    assert list(covered(frames[0], rsu, [600.0, 1.0])) == [True, True]   # per-RSU radii


def test_coverage_on_real_traffic(a10kw):
    """Coverage of SUMO traffic with regular RSUs grows with the radius (sanity on real positions)."""
    from iovsim.mobility.config import MobilityConfig
    from iovsim.mobility.scenario import build_scenario
    from iovsim.mobility.sumo import SumoSession

    from conftest import A10KW_ROUTES

    sc = build_scenario(MobilityConfig(net_file="sumo:tools/game/A10KW/osm.net.xml", route_files=A10KW_ROUTES), Path("."))
    sites = place_rsus("regular", a10kw, RsuConfig(count=5, spacing_m=400))
    rsu_xy = np.array([[s.x_m, s.y_m] for s in sites])
    frames = []
    with SumoSession(sc, seed=3, max_vehicles=0, end_s=400, extra_args=["--ignore-route-errors", "true"]) as s:
        s.open_enrolment()
        while not s.finished():
            frames.append(s.step().xy_m.copy())
    shares = [coverage_share(frames, rsu_xy, r) for r in (100, 300, 1000)]
    print(f"\nA10KW coverage with 5 regular RSUs at 100/300/1000 m: {[round(x, 3) for x in shares]}")
    assert 0 <= shares[0] <= shares[1] <= shares[2] <= 1 and shares[2] > 0.3


def test_hex_layout_keeps_the_lattice_sites_near_a_road_on_the_road(tmp_path):
    """One straight road, 1 km along y = 0: the lattice row on it (x = 0, 200, ..., 1000) is kept; the
    next row, 173 m away, is further than spacing/2 from the road and dropped. With count 3 the three
    sites with the most road within 100 m (the inner ones, by position on a tie) are kept."""
    import subprocess

    from iovsim.mobility.scenario import sumo_binary

    (tmp_path / "n.nod.xml").write_text('<nodes><node id="a" x="0" y="0"/><node id="b" x="1000" y="0"/></nodes>')
    (tmp_path / "e.edg.xml").write_text('<edges><edge id="ab" from="a" to="b"/></edges>')
    path = tmp_path / "line.net.xml"
    subprocess.run([sumo_binary("netconvert"), "--node-files", str(tmp_path / "n.nod.xml"), "--edge-files",
                    str(tmp_path / "e.edg.xml"), "-o", str(path)], check=True, capture_output=True)
    net = sumolib.net.readNet(str(path))
    sites = place_rsus("hex", net, RsuConfig(placement="hex", count=100, spacing_m=200))
    x = sorted(s.x_m for s in sites)
    assert len(sites) == 6 and np.allclose(x, [0, 200, 400, 600, 800, 1000], atol=10.0), x
    assert all(abs(s.y_m) < 5.0 for s in sites)   # on the road (its lane is drawn 1.6 m off the axis)
    three = place_rsus("hex", net, RsuConfig(placement="hex", count=3, spacing_m=200))
    assert np.allclose(sorted(s.x_m for s in three), [200, 400, 600], atol=10.0)
