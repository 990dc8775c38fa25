"""Two GPS units interleaved under one vehicle id (iovsim.mobility.traces_tracks): the cleaner keeps one
consistent track, never a zig-zag between the two, and says so per vehicle in import_report.json.
On a synthetic file made here and on the real Cabspotting cab with the most jumps (upthin)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from iovsim.mobility import trajectories as T

from conftest import grid_net_file

MAX_SPEED = 60.0


def zigzags(trip, far_m: float = 500.0) -> int:
    """Out-and-back hops: a point more than far_m from both neighbours, which are much nearer each other."""
    x, y = trip.x_m, trip.y_m
    d = np.hypot(np.diff(x), np.diff(y))
    if len(d) < 2:
        return 0
    back = np.hypot(x[2:] - x[:-2], y[2:] - y[:-2])
    m = np.minimum(d[:-1], d[1:])
    return int(np.sum((m > far_m) & (back < 0.5 * m)))


def fastest_step(trips) -> float:
    return max(float(np.max(np.hypot(np.diff(t.x_m), np.diff(t.y_m)) / np.diff(t.time_s))) for t in trips)


@pytest.fixture(scope="module")
def big_grid(tmp_path_factory):
    """An 11x11 grid of 200 m blocks (2 km square) made by netgenerate, x/y only."""
    return grid_net_file(tmp_path_factory.mktemp("grid") / "grid.net.xml", 11)


def interleaved_cab(path):
    """Unit A drives two laps of the ring 800 m round the centre at 8 m/s, a fix every 60 s; unit B lies
    in the centre and reports 25 s after each of A's fixes. Hops between them (800-1130 m in 25 or 35 s)
    are 23-45 m/s: under the 60 m/s limit, so a point-by-point jump filter keeps the zig-zag."""
    rng = np.random.default_rng(11)
    ring = np.array([(200, 200), (1800, 200), (1800, 1800), (200, 1800), (200, 200)], dtype=float)
    seg = np.hypot(*np.diff(ring, axis=0).T)
    s = np.arange(0.0, 2 * seg.sum(), 8.0 * 60) % seg.sum()
    a_xy = np.column_stack([np.interp(s, np.r_[0, np.cumsum(seg)], ring[:, k]) for k in range(2)])
    a_xy += rng.normal(0, 3.0, a_xy.shape)
    t0 = 1212153110.0
    a = [(t0 + 60 * k, x, y) for k, (x, y) in enumerate(a_xy)]
    b = [(t + 25, 1000 + rng.normal(0, 3), 1000 + rng.normal(0, 3)) for t, _, _ in a[:-1]]
    rows = sorted(a + b)
    lines = ["<fcd-export>"] + [f'<timestep time="{t:.0f}"><vehicle id="cab" x="{x:.2f}" y="{y:.2f}"/></timestep>'
                                for t, x, y in rows]
    path.write_text("\n".join(lines + ["</fcd-export>"]))
    return {(round(t), round(x, 2), round(y, 2)) for t, x, y in a}, len(b)


def test_synthetic_interleaved_file_keeps_the_moving_unit_only(big_grid, tmp_path):
    a_points, n_b = interleaved_cab(tmp_path / "cab.fcd.xml")
    net = T.load_net(big_grid)
    report = T.ImportReport()
    trips = T.clean_traces(T.read_traces(tmp_path / "cab.fcd.xml"), net, T.CleanConfig(max_speed_mps=MAX_SPEED), report)
    kept = {(round(t), round(x, 2), round(y, 2)) for tr in trips for t, x, y in zip(tr.time_s, tr.x_m, tr.y_m)}
    print(f"\nsynthetic: {len(a_points)} fixes of A, {n_b} of B; kept {len(kept)} in {len(trips)} trip(s); "
          f"dropped {report.dropped_points}; interleaved {report.interleaved}")
    assert kept == a_points                                   # one consistent track: all of A, none of B
    assert len(trips) == 1 and fastest_step(trips) <= MAX_SPEED and zigzags(trips[0]) == 0
    assert report.interleaved == {"cab": {"jumps_over_max_speed": 0, "second_device_points": n_b,
                                          "points_kept": len(a_points)}}
    assert report.dropped_points["second_device"] == n_b


def test_import_report_names_the_interleaved_vehicle(big_grid, tmp_path):
    interleaved_cab(tmp_path / "cab.fcd.xml")
    rep = T.import_traces(tmp_path / "cab.fcd.xml", big_grid, tmp_path / "out", validate=False, write_scenario=False)
    saved = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert saved["interleaved"]["cab"]["second_device_points"] == rep.dropped_points["second_device"] > 0
    assert "two devices interleaved: 1 vehicle(s) (cab)" in rep.summary()
    assert rep.routes_written == 1


def test_one_unit_with_a_jittery_fix_is_not_two_devices(big_grid):
    """A single unit: a fix 80 m off for one second is an impossible jump, not a second device."""
    net = T.load_net(big_grid)
    t = np.arange(0.0, 1200.0, 30.0)
    x, y = 100.0 + 1.5 * t, np.full(len(t), 400.0)
    t, x, y = np.insert(t, 10, t[9] + 1), np.insert(x, 10, x[9]), np.insert(y, 10, 480.0)
    report = T.ImportReport()
    trips = T.clean_traces([T.RawTrace("car", "mem", t, x_m=x, y_m=y)], net, T.CleanConfig(), report)
    assert len(trips) == 1 and len(trips[0].time_s) == len(t) - 1
    assert report.dropped_points["speed_jump"] == 1 and not report.interleaved


def test_real_cab_with_two_units_keeps_one_consistent_track(shared_data_dir, sf_net):
    """new_upthin.txt: 562 steps over 60 m/s in the 48 h, hundreds of hops of ~1 km between a parked and a
    driving unit (most under 60 m/s). The importer's cleaner before this kept 196 such zig-zags."""
    cab = shared_data_dir / "traces" / "cabspotting_sf_fleet" / "new_upthin.txt"
    if not cab.exists():
        pytest.skip(f"Cabspotting fleet file absent under {shared_data_dir}")
    net = T.load_net(sf_net)
    report = T.ImportReport()
    trips = T.clean_traces(T.read_traces(cab), net, T.CleanConfig(max_speed_mps=MAX_SPEED), report)
    info = report.interleaved.get("upthin")
    print(f"\nupthin: {report.points_read} points, {len(trips)} trips, {report.points_kept} points kept, "
          f"dropped {report.dropped_points}, interleaved {info}, fastest kept step {fastest_step(trips):.1f} m/s, "
          f"zig-zags {sum(zigzags(tr) for tr in trips)}")
    assert info is not None and info["jumps_over_max_speed"] > 500 and info["second_device_points"] > 300
    assert fastest_step(trips) <= MAX_SPEED
    assert sum(zigzags(tr) for tr in trips) == 0
    assert report.points_kept > 1500   # the driving unit's points stay (2,525 read, 49 off the map)
