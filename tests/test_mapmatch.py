"""Map matching against a truth set SUMO makes (iovsim.mobility.match_truth): SUMO drives known routes on
the San Francisco net, its positions are sampled every 30 s with 10 m of Gaussian noise on x and y, and the
matched edges must have precision and recall of at least 0.95. Plus the matcher's parts on a small grid."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from iovsim.mobility import match_truth
from iovsim.mobility.mapmatch import match_trip
from iovsim.mobility.mapmatch_hmm import HmmParams, NetIndex, hmm_match, moving_points
from iovsim.mobility.net import load_net
from iovsim.mobility.scenario import ScenarioError, sumo_binary
from iovsim.mobility.traces_clean import Trip

from conftest import grid_net_file


@pytest.mark.slow
def test_hmm_matches_sumo_routes_with_precision_and_recall_over_095(sf_net, tmp_path):
    """20 vehicles (seed 7, not one the matcher was tuned on), about 350 noisy samples; ~25 s."""
    truth = match_truth.make_truth_set(sf_net, tmp_path, vehicles=20, seed=7, sample_s=30.0, noise_m=10.0)
    assert len(truth) == 20 and sum(len(t.time_s) for t in truth) > 200
    assert all(np.all(np.diff(t.time_s) == 30.0) for t in truth)
    net = load_net(sf_net)
    r = match_truth.evaluate(net, truth)   # the importer's default matcher
    print(f"\nTRUTH SET: {r['vehicles']} vehicles, {r['true_edges']} true edges: precision {r['precision']:.3f}, "
          f"recall {r['recall']:.3f}, truncated {r['truncated']}")
    assert r["precision"] >= 0.95 and r["recall"] >= 0.95
    assert r["truncated"] == 0 and r["unmatched"] == 0


def test_truth_edges_are_those_driven_between_first_and_last_sample():
    route = ["a", "b", "c", "d", "e", "b", "f"]   # passes b twice
    lanes = ["a_0", "a_0", ":j1_0_0", "b_0", "c_1", ":j3_0_0", "d_0", "e_0", "b_0", "f_0", "f_0"]
    where = match_truth.route_positions(route, lanes)
    assert [k for k, _ in where] == [0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 6]
    rows = np.column_stack([np.arange(11.0), np.zeros(11), np.zeros(11)])
    rng = np.random.default_rng(0)
    # samples every 2 rows from a random phase; one that lands inside a junction counts the next edge
    tr = match_truth.sample_vehicle("v", route, rows, lanes, sample_s=2.0, noise_m=0.0, rng=rng)
    first, last = int(tr.time_s[0]), int(tr.time_s[-1])
    k0, in0 = where[first]
    assert tr.true_edges == route[k0 + int(in0): where[last][0] + 1]
    s = match_truth.score([tr], [tr.true_edges + ["zz"]])
    assert s["recall"] == 1.0 and s["precision"] == pytest.approx(len(set(tr.true_edges)) / (len(set(tr.true_edges)) + 1))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 5x5 grid (200 m blocks, two lanes each way) made by netgenerate, x/y only."""
    return load_net(grid_net_file(tmp_path_factory.mktemp("grid") / "grid.net.xml", 5, "--default.lanenumber", "2"))


def test_hmm_on_a_grid_follows_the_drive_and_its_direction(grid):
    """East along y=200 then north along x=600, noisy every ~70 m: the route is the edges driven, in order."""
    rng = np.random.default_rng(3)
    path = [(x, 200.0) for x in np.arange(30.0, 600.0, 70.0)] + [(600.0, y) for y in np.arange(260.0, 780.0, 70.0)]
    xy = np.asarray(path) + rng.normal(0, 5.0, size=(len(path), 2))
    pieces, left_out = hmm_match(xy, grid)
    assert len(pieces) == 1 and left_out == 0
    ids = [e.getID() for e in pieces[0]]
    nodes = [(e.getFromNode().getCoord(), e.getToNode().getCoord()) for e in pieces[0]]
    assert nodes[0][0] == (0.0, 200.0) and nodes[-1][1] == (600.0, 800.0), ids
    assert all(a[1] == b[0] for a, b in zip(nodes, nodes[1:]))              # connected, no detour
    assert len(ids) == 6 and len(set(ids)) == 6
    # the same points driven backwards match the opposite edges
    back = [e.getID() for e in hmm_match(xy[::-1], grid)[0][0]]
    assert not set(back) & set(ids)


def test_standing_vehicle_does_not_drive_round_the_block(grid):
    """Fixes of a car waiting at a junction scatter on both sides of it; the route must not loop."""
    rng = np.random.default_rng(5)
    xy = np.array([(100.0 + 60 * k, 400.0) for k in range(5)] + [(399.0, 400.0)] * 8
                  + [(400.0 + 60 * k, 400.0) for k in range(1, 5)])
    xy = xy + rng.normal(0, 10.0, size=xy.shape)
    assert len(moving_points(xy, HmmParams().backtrack_m)) < len(xy)
    trip = match_trip(Trip("t", "t", np.arange(len(xy)) * 30.0, xy[:, 0], xy[:, 1]), grid)
    assert trip.status == "matched" and trip.edges == ["A2B2", "B2C2", "C2D2", "D2E2"], trip.edges


def test_candidates_are_the_nearest_edges_within_the_radius(grid):
    index = NetIndex.of(grid, "passenger")
    assert NetIndex.of(grid, "passenger") is index   # built once per net
    (edges, pos, dist), (far, _, _) = index.candidates(np.array([[250.0, 203.0], [100.0, 100.0]]), 20.0, 8)
    assert len(far) == 0                     # the middle of a block is further than 20 m from any road
    assert np.all(dist <= 20.0) and np.all(np.diff(dist) >= 0) and len(edges) >= 2
    from sumolib.geomhelper import positionAtShapeOffset

    for k in range(2):   # the two directions of the street at y=200: positions along their drawn shapes
        e = index.edges[edges[k]]
        assert {e.getFromNode().getCoord()[1], e.getToNode().getCoord()[1]} == {200.0}
        assert positionAtShapeOffset(e.getShape(), pos[k])[0] == pytest.approx(250.0, abs=0.5)


def test_unknown_matcher_is_one_line(grid):
    with pytest.raises(ScenarioError, match=r"^matcher: expected one of hmm, sumolib, got 'osrm'$"):
        match_trip(Trip("t", "t", np.arange(3.0), np.zeros(3), np.zeros(3)), grid, matcher="osrm")


def test_a_lone_fix_on_a_road_no_route_reaches_is_left_out_not_a_cut(tmp_path):
    """A one-way street 1.5 km long, and 100 m north of it a short street joined to nothing (as where the
    map's extract cut a ramp off). One fix lands on the lone street: the route stays whole."""
    (tmp_path / "n.nod.xml").write_text(
        '<nodes><node id="a" x="0" y="0"/><node id="b" x="500" y="0"/><node id="c" x="1000" y="0"/>'
        '<node id="d" x="1500" y="0"/><node id="p" x="600" y="100"/><node id="q" x="900" y="100"/></nodes>')
    (tmp_path / "e.edg.xml").write_text(
        '<edges><edge id="ab" from="a" to="b"/><edge id="bc" from="b" to="c"/><edge id="cd" from="c" to="d"/>'
        '<edge id="lone" from="p" to="q"/></edges>')
    net_path = tmp_path / "line.net.xml"
    subprocess.run([sumo_binary("netconvert"), "--node-files", str(tmp_path / "n.nod.xml"), "--edge-files",
                    str(tmp_path / "e.edg.xml"), "-o", str(net_path)], check=True, capture_output=True)
    net = load_net(net_path)
    x = np.arange(50.0, 1500.0, 100.0)
    y = np.where(x == 750.0, 100.0, 0.0)
    trip = match_trip(Trip("t", "t", np.arange(len(x)) * 10.0, x, y), net)
    assert trip.status == "matched" and trip.edges == ["ab", "bc", "cd"] and trip.unreachable_points == 1


def test_a_net_without_roads_for_cars_leaves_the_trip_unmatched(tmp_path):
    (tmp_path / "n.nod.xml").write_text('<nodes><node id="a" x="0" y="0"/><node id="b" x="500" y="0"/></nodes>')
    (tmp_path / "e.edg.xml").write_text('<edges><edge id="ab" from="a" to="b" allow="pedestrian"/></edges>')
    net_path = tmp_path / "walk.net.xml"
    subprocess.run([sumo_binary("netconvert"), "--node-files", str(tmp_path / "n.nod.xml"), "--edge-files",
                    str(tmp_path / "e.edg.xml"), "-o", str(net_path)], check=True, capture_output=True)
    trip = match_trip(Trip("t", "t", np.arange(5.0), np.arange(5.0) * 50, np.zeros(5)), load_net(net_path))
    assert trip.status == "unmatched" and trip.edges == []
