"""Where the sumo-gui view looks (`--view`, the box that follows the busiest area): numbers only."""
import numpy as np
import pytest

from iovsim.viz.gui_view import Follower, ViewSpec, busiest_box, parse_view


def test_parse_view_forms():
    assert parse_view(None) == ViewSpec("auto")
    assert parse_view("net").kind == "net"
    assert parse_view("auto:450") == ViewSpec("auto", width_m=450.0)
    assert parse_view("1200.5,-30,600") == ViewSpec("box", width_m=600.0, x_m=1200.5, y_m=-30.0)
    assert parse_view("rsu:3") == ViewSpec("rsu", target="3")
    assert parse_view("vehicle:veh12") == ViewSpec("vehicle", target="veh12")
    for bad in ("zoom", "1,2", "1,2,-5", "a,b,100", "rsu:x", "vehicle:", "auto:0"):
        with pytest.raises(ValueError, match="--view"):
            parse_view(bad)


def inside(box, xy):
    xy = np.asarray(xy, dtype=float)
    return (xy[:, 0] >= box[0]) & (xy[:, 0] <= box[2]) & (xy[:, 1] >= box[1]) & (xy[:, 1] <= box[3])


def test_busiest_box_holds_the_densest_cluster():
    rng = np.random.default_rng(3)
    spread = rng.uniform(0, 1500, size=(25, 2))                 # vehicles all over that part of the net
    cluster = rng.uniform(0, 1, size=(12, 2)) * [580, 390] + [2500, 2500]  # 12 within one box, apart
    xy = np.vstack([spread, cluster])
    box = busiest_box(xy, np.ones(len(xy)), 600.0, 1.5)
    assert box[2] - box[0] == pytest.approx(600.0) and box[3] - box[1] == pytest.approx(400.0)
    assert inside(box, cluster).all()
    # no box of that size centred on any vehicle holds more of them
    best_elsewhere = max(inside((x - 300, y - 200, x + 300, y + 200), xy).sum() for x, y in xy)
    assert inside(box, xy).sum() >= best_elsewhere


def test_participants_outweigh_idle_vehicles():
    idle = np.array([[0.0, 0.0], [5, 5], [10, 0], [0, 10]])
    busy = np.array([[2000.0, 2000.0], [2010, 2000]])
    xy = np.vstack([idle, busy])
    w = np.array([1, 1, 1, 1, 4, 4], dtype=float)
    assert inside(busiest_box(xy, w, 100.0, 1.0), busy).all()
    assert busiest_box(np.zeros((0, 2)), np.zeros(0), 100.0, 1.0) is None


def test_follower_moves_every_few_seconds_and_only_when_the_area_moved():
    f = Follower(500.0, 1.0, every_s=10.0, min_shift=0.2)
    a = np.array([[0.0, 0.0], [50, 50]])
    first = f.update(0.0, a, [True, False])
    assert first is not None and inside(first, a).all()
    assert f.update(5.0, a + 1000, [True, True]) is None        # too early
    assert f.update(10.0, a + 30, [True, True]) is None         # moved 30 m < 20 % of 500 m
    moved = f.update(20.0, a + 1000, [True, True])
    assert moved is not None and inside(moved, a + 1000).all()
    assert f.update(21.0, a, [False, False]) is None              # round over: wait for the next tick
    at_start = f.update(22.0, a, [False, True])                   # a round starts: move at once
    assert at_start is not None and inside(at_start, a).all()


def test_bad_view_is_one_line_exit_2(tmp_path):
    from conftest import iovsim

    out = iovsim("gui", "--view", "zoom:3", "--out", tmp_path / "r")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--view zoom:3" in lines[0], out.stderr
    assert not (tmp_path / "r").exists()


def test_dense_rsus_get_small_marks_and_no_labels():
    """Small cells every 200 m seen 3 km wide: marks a sixth of the spacing wide, no 'RSU i' labels (a
    carpet of names); four RSUs a kilometre apart keep their labels and view-sized marks."""
    from iovsim.viz.gui import GuiOverlay

    gx, gy = np.meshgrid(np.arange(0.0, 2001.0, 200.0), np.arange(0.0, 2001.0, 200.0))
    dense = GuiOverlay(None, np.c_[gx.ravel(), gy.ravel()], 115.0, [0, 0, 2000, 2000], view=ViewSpec("box", width_m=3000, x_m=1000, y_m=1000))
    assert not dense.rsu_labels and dense.rsu_size_m == pytest.approx(30.0)
    assert dense.coverage_line_m == pytest.approx(4.0)
    sparse = GuiOverlay(None, [[0, 0], [1000, 0], [0, 1000], [1000, 1000]], 420.0, [0, 0, 1000, 1000],
                        view=ViewSpec("box", width_m=3000, x_m=500, y_m=500))
    assert sparse.rsu_labels and sparse.rsu_size_m == pytest.approx(60.0) and sparse.coverage_line_m == pytest.approx(7.5)
