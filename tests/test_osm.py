"""Bring your own map: OSM -> scenario folder (San Francisco; closed networks: a ring, a lone street,
SUMO's race track), and a .sumocfg whose outputs never land beside its inputs (Bologna)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from conftest import iovsim
from iovsim.mobility.config import MobilityConfig
from iovsim.mobility.osm import CLOSED_NETWORK_NOTE, FRINGE_NOTE, build_net, from_osm
from iovsim.mobility.scenario import ScenarioError, build_scenario, load_scenario, sumo_home
from iovsim.mobility.sumo import SumoSession


@pytest.fixture(scope="module")
def sf_osm(shared_data_dir):
    osm = shared_data_dir / "maps" / "sanfrancisco_osm" / "SanFranciscoFiltered.osm"
    if not osm.exists():
        pytest.skip(f"{osm} absent")
    return osm


@pytest.fixture(scope="module")
def sf_scenario(sf_osm, tmp_path_factory):
    out = tmp_path_factory.mktemp("sf_osm")
    return from_osm(sf_osm, out, insertion_period_s=3.0, end_s=400, seed=2, rsu_placement="junctions",
                    rsu_count=5, rsu_spacing_m=600, coverage_s=400)


def test_from_osm_builds_a_scenario_iovsim_accepts(sf_scenario):
    out = sf_scenario.parent
    net = ElementTree.parse(out / "SanFranciscoFiltered.net.xml").getroot()
    edges = [e for e in net.iter("edge") if e.get("function") != "internal"]
    loc = net.find("location")
    print(f"\nSF net: {len(edges)} edges, {sum(1 for _ in net.iter('tlLogic'))} traffic lights, "
          f"proj {loc.get('projParameter')}")
    assert len(edges) > 2000 and "+proj=utm" in loc.get("projParameter")
    assert any(e.get("name") for e in edges)  # --output.street-names
    vehicles = list(ElementTree.parse(out / "routes.rou.xml").getroot().iter("vehicle"))
    assert 80 <= len(vehicles) <= 134  # one every 3 s over 400 s, minus trips duarouter could not route
    pois = list(ElementTree.parse(out / "rsus.add.xml").getroot().iter("poi"))
    polys = list(ElementTree.parse(out / "rsus.add.xml").getroot().iter("poly"))
    assert len(pois) == len(polys) == 5
    cov = json.loads((out / "coverage.json").read_text())
    print(f"coverage of 5 junction RSUs within 300 m over 400 s: {cov['coverage_share']:.3f} "
          f"({cov['vehicle_samples']} vehicle-seconds)")
    assert 0 < cov["coverage_share"] < 1 and cov["vehicle_samples"] > 1000
    sc = build_scenario(MobilityConfig(scenario=str(sf_scenario)), Path("."))
    assert sc.net_file.exists() and sc.route_files[0].exists() and sc.rsu_file.name == "rsus.add.xml"
    with SumoSession(sc, seed=2, end_s=200, max_vehicles=10) as s:
        s.open_enrolment()
        s.run_until(120)
        assert s.api.vehicle.getIDCount() > 10


def test_from_osm_with_user_routes_and_kmeans(sf_osm, sf_scenario, tmp_path):
    routes = sf_scenario.parent / "routes.rou.xml"
    y = from_osm(sf_osm, tmp_path / "mine", routes=[routes], rsu_placement="kmeans", rsu_count=4, warmup_s=200,
                 coverage_s=200)
    assert json.loads((tmp_path / "mine" / "coverage.json").read_text())["placement"] == "kmeans"
    sc = load_scenario(str(y), tmp_path)
    assert sc.route_files == [routes.resolve()] or sc.route_files[0].resolve() == routes.resolve()
    assert not (tmp_path / "mine" / "routes.rou.xml").exists()
    assert len(list(ElementTree.parse(tmp_path / "mine" / "rsus.add.xml").getroot().iter("poi"))) <= 4


def test_from_osm_errors(tmp_path):
    with pytest.raises(ScenarioError, match=r"nothing.osm: OSM file not found"):
        build_net(tmp_path / "nothing.osm", tmp_path / "x.net.xml")
    bad = tmp_path / "bad.osm"
    bad.write_text("hello")
    with pytest.raises(ScenarioError, match=r"bad.osm: expected an OpenStreetMap XML file"):
        build_net(bad, tmp_path / "x.net.xml")


# ----------------------------------------------------------------------------- Bologna .sumocfg

def _listing(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_sumocfg_outputs_go_to_the_run_folder(shared_data_dir, tmp_path):
    cfg = shared_data_dir / "maps" / "bologna_acosta" / "run.sumocfg"
    if not cfg.exists():
        pytest.skip(f"{cfg} absent")
    before = _listing(cfg.parent)
    sc = load_scenario(str(cfg), Path("."))
    assert sc.outputs == {"tripinfo-output": "tripinfos.xml", "log": "sumo_log.txt"}
    out = tmp_path / "run"
    args = sc.output_args(out)
    assert args == ["--tripinfo-output", str((out / "tripinfos.xml").resolve())]
    det = [a for a in sc.additional_files if a.name == "acosta_detectors.add.xml"][0]
    assert det.parent == (out / "inputs").resolve()   # rewritten copy: e1 outputs point into out
    with SumoSession(sc, seed=1, out_dir=out, extra_args=args, end_s=2000) as s:
        s.open_enrolment()
        for _ in range(200):
            s.step()
        inserted = s.api.vehicle.getIDCount()
    after = _listing(cfg.parent)
    written = sorted(p.name for p in out.iterdir())
    print(f"\nBologna: {inserted} vehicles on the map after 200 steps; run folder has {written}; "
          f"shared folder unchanged: {before == after}")
    assert before == after, "SUMO wrote into the input folder"
    assert {"tripinfos.xml", "sumo_log.txt", "e1_output.xml", "inputs"} <= set(written)
    assert inserted > 50
    # calling it again (e.g. a second run folder) rewrites from the originals, not from the copies
    args2 = sc.output_args(tmp_path / "run2")
    assert (tmp_path / "run2" / "inputs" / "acosta_detectors.add.xml").exists() and args2[1].startswith(str(tmp_path))


def test_sumocfg_outputs_in_additionals_and_report(tmp_path):
    """Every output a configuration names is redirected, including error-log and edgeData files."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "net.net.xml").write_text("<net/>")
    (d / "data.add.xml").write_text('<additional><edgeData id="e" file="edges.xml" period="60"/>'
                                    '<rerouter id="r" edges="a" file="intervals.xml"/></additional>')
    (d / "intervals.xml").write_text("<a/>")
    (d / "plain.add.xml").write_text('<additional><vType id="t"/></additional>')
    (d / "s.sumocfg").write_text(
        '<configuration><input><net-file value="net.net.xml"/><additional-files value="data.add.xml plain.add.xml"/>'
        '</input><output><fcd-output value="out/fcd.xml"/><fcd-output.geo value="true"/>'
        '<summary-output value="summary.xml"/></output>'
        '<report><error-log value="err.txt"/><verbose value="true"/></report></configuration>')
    sc = load_scenario(str(d / "s.sumocfg"), tmp_path)
    out = tmp_path / "run"
    args = sc.output_args(out)
    o = out.resolve()
    assert args == ["--fcd-output", str(o / "fcd.xml"), "--summary-output", str(o / "summary.xml"),
                    "--error-log", str(o / "err.txt"), "--fcd-output.geo", "true"]
    root = ElementTree.parse(sc.additional_files[0]).getroot()
    assert root.find("edgeData").get("file") == str(o / "edges.xml")
    assert root.find("rerouter").get("file") == str((d / "intervals.xml").resolve())   # input stays an input
    assert sc.additional_files[1] == d / "plain.add.xml"
    assert os.listdir(d) == os.listdir(d)  # nothing written beside the inputs
    assert sorted(os.listdir(d)) == ["data.add.xml", "intervals.xml", "net.net.xml", "plain.add.xml", "s.sumocfg"]


# ----------------------------------------------------------------------------- closed networks

def _write_osm(path: Path, lonlat: list[tuple[float, float]], tags: dict, closed: bool) -> Path:
    nodes = "".join(f'<node id="{i + 1}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>'
                    for i, (lon, lat) in enumerate(lonlat))
    refs = "".join(f'<nd ref="{i + 1}"/>' for i in [*range(len(lonlat)), *([0] if closed else [])])
    kv = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="iovsim test">'
                    f'{nodes}<way id="100" version="1">{refs}{kv}</way></osm>\n')
    return path


def _ring_osm(path: Path, radius_m: float = 250.0, n: int = 8) -> Path:
    """A one-way loop road of n nodes and nothing else: no junction, no edge entering or leaving the map."""
    lat0, lon0 = 52.0, 13.7
    pts = [(lon0 + radius_m * math.cos(2 * math.pi * i / n) / (111_320 * math.cos(math.radians(lat0))),
            lat0 + radius_m * math.sin(2 * math.pi * i / n) / 111_320) for i in range(n)]
    return _write_osm(path, pts, {"highway": "residential", "oneway": "yes"}, closed=True)


def _vehicles(routes: Path) -> list:
    return list(ElementTree.parse(routes).getroot().iter("vehicle"))


def test_from_osm_on_a_closed_ring(tmp_path):
    notes = []
    y = from_osm(_ring_osm(tmp_path / "ring.osm"), tmp_path / "out", end_s=200, coverage_s=0, notify=notes.append)
    assert notes == [f"ring.osm: {CLOSED_NETWORK_NOTE}"]  # one line says what was done differently
    data = yaml.safe_load(y.read_text())
    assert CLOSED_NETWORK_NOTE in data["description"]
    net = ElementTree.parse(y.parent / data["net_file"]).getroot()
    assert [e for e in net.iter("edge") if e.get("function") != "internal"]
    assert len(_vehicles(y.parent / "routes.rou.xml")) >= 1
    sc = load_scenario(str(y), tmp_path)
    with SumoSession(sc, seed=1, end_s=200, max_vehicles=10) as s:
        s.open_enrolment()
        s.run_until(60)
        assert s.api.vehicle.getIDCount() >= 1


def test_from_osm_dead_end_street_retries_with_allow_fringe(tmp_path, capsys):
    """A lone two-way street: every edge ends in a U-turn, so randomTrips finds no edge to start a trip
    on until it is told --allow-fringe; the retry is announced on stderr."""
    pts = [(13.7 + 0.003 * i, 52.0) for i in range(4)]  # ~600 m
    y = from_osm(_write_osm(tmp_path / "street.osm", pts, {"highway": "residential"}, closed=False),
                 tmp_path / "out", end_s=100, coverage_s=0)
    err = capsys.readouterr().err.splitlines()
    assert f"iovsim: note: street.osm: {FRINGE_NOTE}" in err and len(err) == 2  # and the netconvert note
    assert FRINGE_NOTE in yaml.safe_load(y.read_text())["description"]
    assert len(_vehicles(y.parent / "routes.rou.xml")) >= 1


def test_from_osm_race_track(tmp_path):
    """SUMO's own race track (tools/game/racing/spreewaldring.osm): a closed one-way raceway, vip-only in
    SUMO's OSM type map, about 300 m across."""
    osm = sumo_home() / "tools" / "game" / "racing" / "spreewaldring.osm"
    if not osm.exists():
        pytest.skip(f"{osm} absent")
    # a distance the user gives is kept: no 300 m trip fits, one line naming the option
    out = iovsim("scenario", "from-osm", osm, "--out", tmp_path / "short", "--end", 100, "--min-distance", 300)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 2 and "Traceback" not in out.stderr
    assert "no trip between connected roads at least 300 m apart" in out.stderr and "--min-distance" in out.stderr
    # by default the scenario is written, with a note for each thing done differently
    out = iovsim("scenario", "from-osm", osm, "--out", tmp_path / "race", "--end", 100)
    assert out.returncode == 0, out.stderr
    notes = out.stderr.strip().splitlines()
    assert notes[0] == f"iovsim: note: spreewaldring.osm: {CLOSED_NETWORK_NOTE}" and len(notes) == 2, notes
    assert notes[1].startswith("iovsim: note: spreewaldring.osm: no trip 300 m long fits this small map; trips are at least")
    y = Path(out.stdout.strip().splitlines()[-1])
    assert "a quarter of the net's diagonal" in yaml.safe_load(y.read_text())["description"]
    types = {e.get("type") for e in ElementTree.parse(y.parent / "spreewaldring.net.xml").getroot().iter("edge")}
    assert "highway.raceway" in types
    assert len(_vehicles(y.parent / "routes.rou.xml")) >= 1 and (y.parent / "rsus.add.xml").exists()
