"""The San Francisco trajectory recipe (tools/make_sf_traces.py): a small build, SUMO drives the cabs'
routes, vehicles move between RSUs (handovers), coverage is reported."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from iovsim.config import load_config
from iovsim.mobility.config import RsuConfig
from iovsim.mobility.coverage import coverage_share
from iovsim.mobility.placement import place_rsus
from iovsim.mobility.scenario import Scenario
from iovsim.mobility.sumo import SumoSession

REPO = Path(__file__).resolve().parents[1]


def test_sf_traces_configs_load():
    for name in ("sf_traces.yaml", "sf_traces_exact.yaml"):
        cfg = load_config(REPO / "sumo_scenarios" / name)
        # a relative path in the config resolves against the config's folder (absolute after loading)
        scenario = Path(cfg.mobility.scenario)
        assert scenario.is_absolute() and scenario.parent == REPO / "sumo_scenarios" / "sf_traces"
        assert scenario.name.startswith("scenario") and scenario.exists()


def test_sf_traces_recipe_small_build_has_handovers(shared_data_dir, tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_sf_traces
    finally:
        sys.path.pop(0)
    rep = make_sf_traces.make(tmp_path, span_s=600, max_trips=80)
    print(f"\nrecipe: {rep.routes_accepted}/{rep.trips_in_bounds} trips accepted, compression {rep.time_compression:.0f}x")
    assert rep.acceptance >= 0.8
    sc = Scenario(net_file=tmp_path / "sf.net.xml", route_files=[tmp_path / "routes.rou.xml"], name="sf_traces")
    from iovsim.mobility.trajectories import load_net

    net = load_net(sc.net_file)
    sites = place_rsus("junctions", net, RsuConfig(placement="junctions", count=8, spacing_m=900))
    rsu_xy = np.array([[s.x_m, s.y_m] for s in sites])
    frames, serving, handovers = [], {}, 0
    with SumoSession(sc, seed=1, end_s=900, max_vehicles=0, extra_args=["--ignore-route-errors", "true"]) as s:
        s.open_enrolment()
        while not s.finished():
            snap = s.step()
            frames.append(snap.xy_m.copy())
            if len(snap.vehicle_ids):
                d = np.hypot(*(snap.xy_m[:, None, :] - rsu_xy[None]).transpose(2, 0, 1))
                for vid, j in zip(snap.vehicle_ids, np.argmin(d, axis=1)):
                    handovers += int(vid in serving and serving[vid] != j)
                    serving[vid] = j
    share = coverage_share(frames, rsu_xy, 500.0)
    peak = max(len(f) for f in frames)
    print(f"recipe run: {len(serving)} cabs, peak {peak} on the map, {handovers} nearest-RSU changes, "
          f"coverage within 500 m: {share:.2f}")
    assert len(serving) >= 40 and handovers > 10 and 0 < share <= 1
