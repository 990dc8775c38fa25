"""GPS traces: readers and their errors, cleaning, and on the real San Francisco data: map matching that
SUMO accepts (>= 80% of in-bounds trips) and exact replay within 15 m of the GPS track."""
from __future__ import annotations

import json

import numpy as np
import pytest

from iovsim.mobility import trajectories as T
from iovsim.mobility.replay import read_replay
from iovsim.mobility.scenario import ScenarioError, load_scenario

from conftest import grid_net_file

SF_TRIPS = 60  # first in-bounds trips of the 4 cabs: keeps each test well under a minute


# ----------------------------------------------------------------------------- small synthetic net

@pytest.fixture(scope="module")
def grid_net(tmp_path_factory):
    """A 4x4 grid (200 m blocks) made by netgenerate: x/y only, no geo-reference."""
    return grid_net_file(tmp_path_factory.mktemp("grid") / "grid.net.xml", 4, "--no-turnarounds", "false")


def write_fcd(path, rows):
    """rows: (time, id, x, y)."""
    by_t = {}
    for t, vid, x, y in rows:
        by_t.setdefault(t, []).append((vid, x, y))
    lines = ["<fcd-export>"]
    for t in sorted(by_t):
        lines.append(f'<timestep time="{t}">')
        lines += [f'<vehicle id="{v}" x="{x}" y="{y}"/>' for v, x, y in by_t[t]]
        lines.append("</timestep>")
    path.write_text("\n".join(lines + ["</fcd-export>"]))


def test_csv_errors_name_file_column_and_line(tmp_path):
    p = tmp_path / "traces.csv"
    p.write_text("id,time,lat,lon\ncar,0,37.79,-122.42\ncar,10,123.4,-122.42\n")
    with pytest.raises(ScenarioError) as e:
        T.read_csv_traces(p)
    msg = str(e.value)
    assert "traces.csv" in msg and "'lat'" in msg and "[-90, 90]" in msg and "123.4" in msg and "line 3" in msg
    assert "\n" not in msg
    p.write_text("vehicle,t,lat,lon\ncar,0,37.79,-122.42\n")
    with pytest.raises(ScenarioError, match=r"traces.csv: column 'id' missing"):
        T.read_csv_traces(p)
    p.write_text("id,time,lat,lon\ncar,noon,37.79,-122.42\n")
    with pytest.raises(ScenarioError, match=r"column 'time' at line 2: expected a number of seconds"):
        T.read_csv_traces(p, T.CsvFormat(time_unit="s"))
    with pytest.raises(ScenarioError, match=r"column 'time' at line 2: expected an ISO 8601 datetime, got 'noon'"):
        T.read_csv_traces(p)
    p.write_text("id,time,lat,lon\ncar,1211033530000,37.79,-122.42\ncar,1211033590000,37.79,-122.42\n")
    assert list(T.read_csv_traces(p)[0].time_s) == [1211033530.0, 1211033590.0]   # ms detected


def test_csv_custom_columns_iso_time_and_semicolons(tmp_path):
    p = tmp_path / "taxi.csv"
    p.write_text("taxi;timestamp;latitude;longitude\n"
                 "a;2008-05-17T10:00:00Z;37.79;-122.42\n"
                 "a;2008-05-17T10:01:00;37.791;-122.421\n"
                 "b;2008-05-17T10:00:30+00:00;37.80;-122.41\n")
    traces = T.read_csv_traces(p, T.parse_columns("taxi,timestamp,latitude,longitude"))
    assert {t.vehicle_id for t in traces} == {"a", "b"}
    a = next(t for t in traces if t.vehicle_id == "a")
    assert a.time_s[1] - a.time_s[0] == 60.0 and a.lat[1] == pytest.approx(37.791)


def test_cabspotting_reader_sorts_oldest_first(tmp_path):
    p = tmp_path / "new_cab.txt"
    p.write_text("37.75 -122.39 0 1211033674\n37.76 -122.39 1 1211033614\n37.77 -122.39 0 1211033530\n")
    tr = T.read_cabspotting(p)
    assert tr.vehicle_id == "cab" and list(np.diff(tr.time_s) > 0) == [True, True]
    assert T._detect_format(p) == "cabspotting"
    p.write_text("37.75 -122.39 0\n")
    with pytest.raises(ScenarioError, match=r"new_cab.txt: line 1: expected 4 fields"):
        T.read_cabspotting(p)


def test_cleaning_counts_every_reason(grid_net, tmp_path):
    net = T.load_net(grid_net)
    rows = []
    t = 0
    # a good drive east along y=0 (10 m/s), with one duplicate, one time reversal and one teleport
    for k in range(30):
        rows.append((t, "v", 10.0 * k * 2, 0.0))
        t += 2
    fcd_rows = list(rows)
    write_fcd(tmp_path / "a.xml", fcd_rows)
    tr = T.read_fcd(tmp_path / "a.xml")[0]
    # inject faults directly (FCD groups by time, so build the raw trace by hand)
    time_s = list(tr.time_s)
    x = list(tr.x_m)
    y = list(tr.y_m)
    time_s.insert(5, time_s[4]); x.insert(5, x[4]); y.insert(5, y[4])             # duplicate
    time_s.insert(10, time_s[9] - 5); x.insert(10, x[9]); y.insert(10, y[9])      # time reversal
    time_s.insert(15, time_s[14] + 1); x.insert(15, x[14]); y.insert(15, 400.0)  # 400 m in 1 s
    time_s.insert(20, time_s[19] + 1); x.insert(20, 99999.0); y.insert(20, 0)      # off the map
    # a long gap then a short second piece (3 points): split, then dropped as short
    last = time_s[-1]
    time_s += [last + 1000, last + 1010, last + 1020]; x += [0, 10, 20]; y += [200, 200, 200]
    raw = T.RawTrace("v", "a.xml", np.array(time_s, float), x_m=np.array(x, float), y_m=np.array(y, float))
    report = T.ImportReport()
    trips = T.clean_traces([raw], net, T.CleanConfig(min_points=5, min_duration_s=10), report)
    d = report.dropped_points
    print("dropped:", d, "trips:", len(trips))
    assert d["duplicate"] == 1 and d["time_reversal"] == 1 and d["speed_jump"] == 1 and d["off_map"] == 1
    assert d["short_trip"] == 3 and report.trips_short == 1
    assert len(trips) == 2  # the excursion off the map also splits the drive
    assert all(np.all(np.diff(tr.time_s) > 0) for tr in trips)


def test_traces_entirely_off_the_map_raise(grid_net, tmp_path):
    write_fcd(tmp_path / "far.xml", [(t, "v", 50000.0 + t, 50000.0) for t in range(10)])
    with pytest.raises(ScenarioError, match=r"far.xml: no point falls on the map"):
        T.import_traces(tmp_path / "far.xml", grid_net, tmp_path / "out", validate=False)


def test_grid_import_routes_and_exact_replay(grid_net, tmp_path):
    """FCD in x/y on a grid: matched, SUMO accepts the route, exact replay reproduces it."""
    rows = [(t, "car", 5.0 * t, 0.0) for t in range(0, 100, 5)]            # east along the bottom row
    rows += [(100 + t, "car", 500.0 + 0.0, 5.0 * t) for t in range(5, 60, 5)]  # then north
    write_fcd(tmp_path / "car.xml", rows)
    rep = T.import_traces(tmp_path / "car.xml", grid_net, tmp_path / "out", time_compression=1.0, begin_s=10)
    print(rep.summary())
    assert rep.trips_in_bounds == 1 and rep.routes_written == 1 and rep.routes_accepted == 1
    assert rep.first_depart_s == 10
    sc = load_scenario(str(tmp_path / "out" / "scenario.yaml"), tmp_path)
    assert sc.route_files and sc.net_file.resolve() == grid_net.resolve()
    ex = load_scenario(str(tmp_path / "out" / "scenario_exact.yaml"), tmp_path)
    assert ex.replay["mode"] == "exact" and ex.replay["file"].endswith("replay.jsonl")
    report_json = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert report_json["acceptance"] == 1.0
    # the exact scenario through the session the engine uses: positions on the track, arrival reported
    from iovsim.mobility.replay import ReplaySession

    track = read_replay(ex.replay["file"])[0]
    session = ReplaySession(ex, seed=1, end_s=track.time_s[-1] + 5, max_vehicles=5)
    seen, arrived, err = 0, [], []
    with session as s:
        s.open_enrolment()
        while not s.finished():
            snap = s.step()
            arrived += snap.arrived
            for vid, xy in zip(snap.vehicle_ids, snap.xy_m):
                seen += 1
                err.append(np.hypot(xy[0] - np.interp(snap.time_s, track.time_s, track.x_m),
                                    xy[1] - np.interp(snap.time_s, track.time_s, track.y_m)))
    print(f"grid exact replay: {seen} vehicle-steps, max error {max(err):.3f} m")
    assert arrived == [track.vehicle_id] and seen >= track.time_s[-1] - track.time_s[0] - 1
    assert max(err) < 0.01


# ----------------------------------------------------------------------------- San Francisco, real data

@pytest.fixture(scope="module")
def sf(shared_data_dir, sf_net, tmp_path_factory):
    cabs = shared_data_dir / "traces" / "cabspotting_sf"
    if not cabs.exists():
        pytest.skip(f"Cabspotting traces absent under {shared_data_dir}")
    d = tmp_path_factory.mktemp("sf")
    net_path = sf_net
    net = T.load_net(net_path)
    rep = T.import_traces(cabs, net_path, d / "import", net=net, max_trips=SF_TRIPS)
    return {"net_path": net_path, "net": net, "report": rep, "dir": d / "import", "cabs": cabs}


def test_sf_trips_become_routes_sumo_accepts(sf):
    rep = sf["report"]
    print("\n" + rep.summary())
    print(f"ACCEPTANCE: {rep.routes_accepted}/{rep.trips_in_bounds} in-bounds trips = {100 * rep.acceptance:.1f}% "
          f"(matched {rep.trips_matched}, repaired {rep.trips_repaired}, truncated {rep.trips_truncated}, "
          f"unmatched {rep.trips_unmatched})")
    assert rep.points_read == 88445 and rep.vehicles == 4
    assert rep.dropped_points["off_map"] > 0.3 * rep.points_read   # ~43% of the points are outside the extract
    assert rep.trips_in_bounds == SF_TRIPS
    assert rep.acceptance >= 0.80
    assert T.validate_routes(sf["net_path"], rep.routes_file, sf["dir"] / "v2")["rejected"] == 0


def test_sf_time_compression_keeps_order_and_span(sf, tmp_path):
    rep = T.import_traces(sf["cabs"], sf["net_path"], tmp_path, net=sf["net"], max_trips=20, time_compression=24,
                          begin_s=100, validate=False)
    departs = [float(line.split('depart="')[1].split('"')[0])
               for line in open(rep.routes_file) if "<vehicle " in line]
    assert departs == sorted(departs) and departs[0] >= 100
    plain = sf["report"]
    assert rep.last_depart_s - 100 < (plain.last_depart_s - plain.first_depart_s) / 24 + 1
    tracks = read_replay(rep.replay_file)
    # inside a trip the GPS timeline is not compressed: speeds stay real
    assert all(np.all(np.diff(tr.time_s) > 0) for tr in tracks)


def test_sf_exact_replay_within_15_m(sf):
    from iovsim.mobility.replay import ReplaySession

    tracks = [tr for tr in read_replay(sf["report"].replay_file) if tr.time_s[-1] - tr.time_s[0] <= 1200][:12]
    assert len(tracks) >= 5
    # re-base the tracks a few seconds apart so the test simulates minutes, not the traces' weeks
    for k, tr in enumerate(tracks):
        tr.time_s = tr.time_s - tr.time_s[0] + 3.0 * k + 0.5
    by_id = {tr.vehicle_id: tr for tr in tracks}
    end = max(tr.time_s[-1] for tr in tracks) + 5
    sc = load_scenario(str(sf["net_path"].parent), sf["net_path"].parent)
    sc.route_files = []
    sc.replay = {"file": sf["report"].replay_file, "mode": "exact"}
    session = ReplaySession(sc, seed=1, end_s=end)
    session.replay.tracks = tracks
    errors, seen, arrived, departed = [], set(), [], []
    with session as s:
        s.open_enrolment()
        while not s.finished():
            snap = s.step()
            for vid, xy in zip(snap.vehicle_ids, snap.xy_m):
                tr = by_id[vid]
                gx = np.interp(snap.time_s, tr.time_s, tr.x_m)   # the GPS track, interpolated here
                gy = np.interp(snap.time_s, tr.time_s, tr.y_m)
                e = float(np.hypot(xy[0] - gx, xy[1] - gy))
                errors.append(e)
                seen.add(vid)
            arrived += snap.arrived
            departed += snap.departed
            assert all(v in snap.vehicle_ids for v in snap.departed)
    errors = np.asarray(errors)
    print(f"\nEXACT REPLAY: {len(seen)} vehicles, {len(errors)} vehicle-steps, position error vs interpolated GPS: "
          f"max {errors.max():.3f} m, mean {errors.mean():.3f} m")
    assert len(seen) == len(tracks) and not session.replay.skipped
    assert errors.max() <= 15.0
    assert sorted(arrived) == sorted(by_id) == sorted(session.replay.finished) == sorted(departed)


def test_sample_csv_with_iso_times_on_sf(sf, tmp_path):
    """trajectories/samples/sf_synthetic_gps.csv (made by the project from a SUMO run on the SF net)."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "trajectories" / "samples" / "sf_synthetic_gps.csv"
    rep = T.import_traces(sample, sf["net_path"], tmp_path, net=sf["net"], fmt="csv",
                          columns="vehicle,timestamp,latitude,longitude", time_unit="iso", begin_s=60)
    print("\n" + rep.summary())
    assert rep.vehicles == 6 and rep.dropped_points["off_map"] == 0
    assert rep.routes_accepted == rep.trips_in_bounds >= 5
    assert rep.first_depart_s == 60
    assert len(read_replay(rep.replay_file)) == rep.routes_written


def test_written_xml_escapes_ids_and_reads_back(tmp_path):
    """Vehicle and RSU ids with XML specials survive routes, FCD and RSU additional files."""
    from xml.etree import ElementTree

    from iovsim.mobility.rsu import RsuSite, write_rsu_additional

    odd = 'cab "7" & <co>'
    trips = [T.Trip(odd, "cab", np.array([0.0, 2.0]), np.array([1.0, 3.0]), np.array([5.0, 6.0]),
                    edges=["e1", "e2"], status="matched")]
    T.write_routes(tmp_path / "r.rou.xml", trips, np.array([4.0]))
    v = ElementTree.parse(tmp_path / "r.rou.xml").getroot().find("vehicle")
    assert (v.get("id"), v.get("depart"), v.find("route").get("edges")) == (odd, "4.00", "e1 e2")
    T.write_fcd(tmp_path / "c.fcd.xml", trips, np.array([4.0]))
    (back,) = T.read_fcd(tmp_path / "c.fcd.xml", geo=False)
    assert back.vehicle_id == odd and list(back.time_s) == [4.0, 6.0] and list(back.x_m) == [1.0, 3.0]
    write_rsu_additional(tmp_path / "rsus.add.xml", [RsuSite("r&1", 10.0, 20.0)], 50.0)
    poi = ElementTree.parse(tmp_path / "rsus.add.xml").getroot().find("poi")
    assert (poi.get("id"), poi.get("x"), poi.get("color")) == ("r&1", "10.00", "31,119,180")


def test_csv_dialect_is_sniffed_and_bad_degrees_name_the_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("id;time;lat;lon\nv;0;37.5;-122.4\n")
    (tr,) = T.read_csv_traces(p)
    assert tr.vehicle_id == "v" and tr.lat[0] == 37.5 and tr.lon[0] == -122.4
    p.write_text("id\ttime\tlat\tlon\nv\t0\tnan\t-122.4\n")
    with pytest.raises(ScenarioError, match=r"t.csv: line 2: column 'lat': expected degrees in \[-90, 90\], got nan"):
        T.read_csv_traces(p)


def test_unreadable_net_is_one_line_naming_the_file(tmp_path):
    from iovsim.mobility.net import load_net

    bad = tmp_path / "cut.net.xml"
    bad.write_text('<?xml version="1.0"?>\n<net version="1.20">\n<edge id="a"')
    with pytest.raises(ScenarioError) as e:
        load_net(bad)
    assert str(e.value).startswith(f"{bad}: not a readable SUMO net") and "\n" not in str(e.value)


def test_cli_workers_match_the_serial_routes(sf, tmp_path):
    """`iovsim trajectories import --workers 2` writes the routes and report of one process."""
    from iovsim.cli import main

    outs = {}
    for n in (1, 2):
        out = tmp_path / f"w{n}"
        rc = main(["trajectories", "import", str(sf["cabs"]), "--net", str(sf["net_path"]), "--out", str(out),
                   "--max-trips", "12", "--workers", str(n), "--no-validate"])
        assert rc == 0
        outs[n] = out
    assert (outs[1] / "routes.rou.xml").read_bytes() == (outs[2] / "routes.rou.xml").read_bytes()
    rep = [json.loads((outs[n] / "import_report.json").read_text()) for n in (1, 2)]
    drop = ("elapsed_s", "files", "routes_file", "replay_file", "fcd_file", "scenario_file", "out_dir")
    assert {k: v for k, v in rep[0].items() if k not in drop and "file" not in k} == \
        {k: v for k, v in rep[1].items() if k not in drop and "file" not in k}
    assert rep[0]["trips_matched"] >= 10
