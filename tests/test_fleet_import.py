"""The fleet import (iovsim.mobility.traces_fleet, tools/make_sf_fleet.py): per-vehicle report counts on a
hand-made trace, parallel workers give the serial routes on real cabs, the compiled route search gives
what the plain Python one gives, the net index cache reads back what was built."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from iovsim.mobility import mapmatch_routes
from iovsim.mobility.mapmatch_hmm import NetIndex
from iovsim.mobility.net import load_net
from iovsim.mobility.netindex_cache import cache_path, cached_index
from iovsim.mobility.scenario import sumo_binary
from iovsim.mobility.traces_fleet import (CSV_COLUMNS, FleetSettings, departures_in_window, import_fleet,
                                          set_accepted, write_vehicle_csv)
from iovsim.mobility.traces_write import validate_routes, write_routes

from conftest import grid_net_file

REPO = Path(__file__).resolve().parents[1]
WINDOW = 1212213600.0   # 2008-05-31 06:00 UTC, the busiest hour


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 5x5 grid, 200 m blocks (x, y in 0..800 m), no geo-reference."""
    return grid_net_file(tmp_path_factory.mktemp("grid") / "grid.net.xml", 5)


def write_fcd(path: Path, rows):
    lines = ["<fcd-export>"]
    for t, x, y in rows:
        lines += [f'<timestep time="{t}">', f'<vehicle id="v" x="{x}" y="{y}"/>', "</timestep>"]
    path.write_text("\n".join(lines + ["</fcd-export>"]))


def hand_made_trace(path: Path):
    """One vehicle, fixes every 10 s; the window is [1000, 2000):
    - t 900, 950: before the window (not counted);
    - t 1000..1100: east along y = 200 at 5 m/s, x 50..550 (11 fixes), but the fix at 1050 is at
      (800, 800), 790 m from the fixes around it in 10 s: an impossible jump;
    - t 1400..1500: north along x = 400, y 50..550 (11 fixes), after a 300 s gap: a second trip;
    - t 1700: at (5000, 5000), off the map;
    - t 1800, 1810, 1820: three fixes, too few for a trip (min 5);
    - t 2000, 2010: at and after the window's end (not counted)."""
    rows = [(900, 40.0, 200.0), (950, 45.0, 200.0)]
    rows += [(t, 50.0 + 5 * (t - 1000), 200.0) if t != 1050 else (t, 800.0, 800.0) for t in range(1000, 1101, 10)]
    rows += [(t, 400.0, 50.0 + 5 * (t - 1400)) for t in range(1400, 1501, 10)]
    rows += [(1700, 5000.0, 5000.0), (1800, 600.0, 600.0), (1810, 600.0, 620.0), (1820, 600.0, 640.0)]
    rows += [(2000, 700.0, 400.0), (2010, 700.0, 450.0)]
    write_fcd(path, rows)


def test_vehicle_row_counts_a_hand_made_trace(grid, tmp_path):
    src = tmp_path / "v.fcd.xml"
    hand_made_trace(src)
    settings = FleetSettings(1000.0, 2000.0)
    rows, trips, report = import_fleet([src], grid, settings, workers=1, cache_dir=tmp_path / "cache")
    (row,) = rows
    assert row.vehicle == "v"
    assert row.points == 11 + 11 + 1 + 3            # inside [1000, 2000)
    assert row.off_map == 1 and row.jumps_removed == 1 and row.second_device == 0
    assert row.points_kept == 10 + 11 and row.trips == 2
    assert row.routes_matched == 2 and row.routes_cut == 0 and row.unmatched == 0 and row.repaired == 0
    assert report.dropped_points["short_trip"] == 3 and report.trips_short == 1
    assert [t.trip_id for t in trips] == ["cab_v_0", "cab_v_1"]
    assert list(departures_in_window(trips, 1000.0)) == [0.0, 400.0]   # real times, the window's clock
    assert trips[0].edges[0].endswith("1") and trips[1].edges[-1].startswith("C")   # y = 200 row, x = 400 column
    routes = tmp_path / "routes.rou.xml"
    assert write_routes(routes, trips, departures_in_window(trips, 1000.0)) == 2
    v = validate_routes(grid, routes, tmp_path / "validation", with_ids=True)
    assert v["inserted_ids"] == {"cab_v_0", "cab_v_1"}
    set_accepted(rows, trips, v["inserted_ids"], settings.id_prefix)
    assert row.routes_accepted == 2
    out = tmp_path / "import_vehicles.csv"
    write_vehicle_csv(out, rows)
    with open(out, newline="") as f:
        (line,) = list(csv.DictReader(f))
    assert tuple(line) == CSV_COLUMNS
    assert (line["points"], line["points_kept"], line["trips"], line["routes_accepted"], line["jumps_removed"]) == \
        ("26", "21", "2", "2", "1")


def test_a_vehicle_with_no_point_on_the_map_in_the_window_has_an_empty_row(grid, tmp_path):
    src = tmp_path / "far.fcd.xml"
    write_fcd(src, [(t, 5000.0, 5000.0) for t in range(1000, 1100, 10)] + [(3000, 100.0, 200.0)])
    (row,), trips, report = import_fleet([src], grid, FleetSettings(1000.0, 2000.0), workers=1,
                                         cache_dir=tmp_path / "cache")
    assert trips == [] and row.points == 10 and row.off_map == 10 and row.trips == 0 and report.vehicles == 1


# ----------------------------------------------------------------------------- real cabs

@pytest.fixture(scope="module")
def sf(shared_data_dir, sf_net, tmp_path_factory):
    cabs = shared_data_dir / "traces" / "cabspotting_sf_fleet"
    if not cabs.exists():
        pytest.skip(f"the Cabspotting fleet absent under {shared_data_dir}")
    d = tmp_path_factory.mktemp("sf_fleet")
    net = sf_net
    # a handful of cabs busy in the window, and upthin, whose file interleaves two GPS units
    names = ("abboip", "acduou", "ankped", "ecforj", "eoffrij", "upthin")
    return net, [cabs / f"new_{n}.txt" for n in names], d


def test_parallel_import_gives_the_serial_routes(sf):
    net_path, files, d = sf
    settings = FleetSettings(WINDOW, WINDOW + 3600.0)
    rows1, trips1, rep1 = import_fleet(files, net_path, settings, workers=1, cache_dir=d / "cache")
    rows2, trips2, rep2 = import_fleet(files, net_path, settings, workers=2, cache_dir=d / "cache")
    print(f"\n{len(trips1)} trips of {len(files)} cabs: serial {rep1.elapsed_s:.1f} s, 2 workers {rep2.elapsed_s:.1f} s")
    assert len(trips1) >= 6 and rep1.trips_matched >= 6
    assert [(t.trip_id, t.status, t.edges, t.repaired_gaps) for t in trips1] == \
        [(t.trip_id, t.status, t.edges, t.repaired_gaps) for t in trips2]
    strip = [{k: v for k, v in vars(r).items() if k != "time_s"} for r in rows1]
    assert strip == [{k: v for k, v in vars(r).items() if k != "time_s"} for r in rows2]
    assert [r.vehicle for r in rows1] == ["abboip", "acduou", "ankped", "ecforj", "eoffrij", "upthin"]
    assert rep1.to_dict() | {"elapsed_s": 0} == rep2.to_dict() | {"elapsed_s": 0}
    assert "cab_upthin" in rep1.interleaved


def test_compiled_route_search_is_the_plain_python_one(sf):
    net_path, _, _ = sf
    index = NetIndex.build(load_net(net_path), "passenger")
    args = (*index.csr, index.length_m, index.time_s)
    rng = np.random.default_rng(1)
    for src in rng.integers(len(index.edges), size=20):
        targets = np.unique(rng.integers(len(index.edges), size=6))
        for fastest in (True, False):
            a = mapmatch_routes._reach_compiled(*args, np.int64(src), 1200.0, fastest, targets)
            b = mapmatch_routes._reach(*args, np.int64(src), 1200.0, fastest, targets)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
        far = int(np.argmax(np.isinf(a[0]) & (np.arange(len(a[0])) != src)))
        assert mapmatch_routes.reachable(*index.csr[:2], int(src), far) == \
            bool(mapmatch_routes._reachable(index.csr[0], index.csr[1], np.int64(src), np.int64(far)))


def test_net_index_cache_reads_back_what_was_built_and_rebuilds_a_bad_file(sf, tmp_path):
    net_path, _, _ = sf
    built, hit = cached_index(load_net(net_path), net_path, "passenger", tmp_path)
    assert not hit and cache_path(net_path, "passenger", tmp_path).exists()
    net = load_net(net_path)
    read, hit = cached_index(net, net_path, "passenger", tmp_path)
    assert hit and NetIndex.of(net, "passenger") is read
    assert [e.getID() for e in read.edges] == [e.getID() for e in built.edges]
    assert all(np.array_equal(a, b) for a, b in zip(read.arrays().values(), built.arrays().values()))
    cache_path(net_path, "passenger", tmp_path).write_bytes(b"not an npz")
    _, hit = cached_index(load_net(net_path), net_path, "passenger", tmp_path)
    assert not hit


def test_make_sf_fleet_small_build_with_background_traffic_kept_out_of_the_fleet(sf, tmp_path):
    from iovsim.mobility.replay import ReplaySession
    from iovsim.mobility.scenario import load_scenario
    from iovsim.mobility.sumo import SumoSession

    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_sf_fleet
    finally:
        sys.path.pop(0)
    res = make_sf_fleet.make(tmp_path, start_unix_s=WINDOW, hours=0.25, workers=1, max_cabs=12,
                             background_period_s=20.0)
    rep = res["report"]
    assert rep.routes_accepted is not None and rep.routes_accepted >= 0.9 * rep.trips_matched > 0
    assert res["summary"]["rsus"] > 500   # a 200 m hexagonal layout over the whole net
    with open(tmp_path / "import_vehicles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and sum(int(r["routes_accepted"]) for r in rows) == rep.routes_accepted
    for name, cls in (("scenario.yaml", SumoSession), ("scenario_exact.yaml", ReplaySession)):
        sc = load_scenario(str(tmp_path / name), tmp_path)
        assert sc.net_file.name == "sf.net.xml.gz" and sc.rsu_file.name == "rsus.csv"
        assert "background.rou.xml.gz" in [p.name for p in sc.route_files]
        with cls(sc, seed=1, end_s=400, id_prefix="cab_", extra_args=["--time-to-teleport", "-1"]) as s:
            s.open_enrolment()
            seen = set()
            while not s.finished():
                s.step()
                seen |= set(s.api.vehicle.getIDList())
        assert any(v.startswith("veh") for v in seen)                  # background cars drove
        assert s.enrolled and all(v.startswith("cab_") for v in s.enrolled), (name, s.enrolled)


def test_exact_replay_survives_a_vehicle_sumo_removed(grid, tmp_path):
    """A replayed cab that SUMO removes before its track ends (as a jam teleport does at fleet scale) is
    reported as having left, not a crash at the next moveToXY ('Vehicle ... is not known')."""
    import json

    import libsumo

    from iovsim.mobility.replay import ExactReplay

    t = list(range(0, 100, 5))
    tracks = [{"vehicle_id": vid, "route": ["A1B1"], "time_s": t, "x_m": [5.0 + 2 * k for k in t], "y_m": [y] * len(t)}
              for vid, y in (("a", 201.6), ("b", 198.4))]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(d) + "\n" for d in tracks))
    libsumo.start([sumo_binary("sumo"), "-n", str(grid), "--no-step-log", "true", "--no-warnings", "true"])
    try:
        replay = ExactReplay(tmp_path / "r.jsonl").attach(libsumo)
        left = {}
        for k in range(120):
            replay.before_step()
            libsumo.simulationStep()
            for vid in replay.after_step():
                left[vid] = libsumo.simulation.getTime()
            if k == 20:
                libsumo.vehicle.remove("a")   # not through the replay
    finally:
        libsumo.close()
    assert replay.cut == ["a"] and left["a"] == 22.0   # noticed at the next step
    assert replay.finished == ["b"] and left["b"] >= 95.0
