"""Real SUMO sessions: subscriptions, enrolment, determinism, libsumo and traci agree."""
from pathlib import Path

import numpy as np
import pytest

from iovsim.mobility.config import MobilityConfig
from iovsim.mobility.scenario import ScenarioError, build_scenario, load_scenario
from iovsim.mobility.sumo import SumoSession

from conftest import A10KW_ROUTES


def a10kw():
    return build_scenario(MobilityConfig(net_file="sumo:tools/game/A10KW/osm.net.xml", route_files=A10KW_ROUTES), Path("."))


def trace(backend, steps=150, cap=10, seed=3, tmp=None):
    s = SumoSession(a10kw(), seed=seed, backend=backend, max_vehicles=cap, out_dir=tmp,
                    extra_args=["--ignore-route-errors", "true"]).start()
    try:
        s.run_until(60)
        s.open_enrolment()
        out = []
        for _ in range(steps):
            snap = s.step()
            assert len(snap.vehicle_ids) <= cap
            out.append((snap.time_s, tuple(snap.vehicle_ids), snap.xy_m.copy(), snap.speed_mps.copy()))
        return out, s.enrolled
    finally:
        s.close()


def test_subscriptions_match_getters(tmp_path):
    s = SumoSession(a10kw(), seed=1, max_vehicles=5, out_dir=tmp_path, extra_args=["--ignore-route-errors", "true"]).start()
    try:
        s.run_until(30)
        s.open_enrolment()
        snap = s.step()
        assert len(snap.vehicle_ids) == 5 and snap.departed  # vehicles on the map joined first
        for i, v in enumerate(snap.vehicle_ids):
            assert np.allclose(snap.xy_m[i], s.api.vehicle.getPosition(v))
            assert snap.edge[i] == s.api.vehicle.getRoadID(v)
        assert (tmp_path / "sumo_log.txt").exists()
    finally:
        s.close()


def test_fleet_is_replenished_and_deterministic(tmp_path):
    a, enrolled_a = trace("libsumo", tmp=tmp_path / "a")
    b, enrolled_b = trace("libsumo", tmp=tmp_path / "b")
    assert enrolled_a == enrolled_b and len(enrolled_a) > 10  # vehicles left and others joined
    for (ta, ia, xa, va), (tb, ib, xb, vb) in zip(a, b):
        assert ta == tb and ia == ib and np.array_equal(xa, xb) and np.array_equal(va, vb)


def test_traci_backend_gives_the_same_traffic(tmp_path):
    a, _ = trace("libsumo", steps=40, tmp=tmp_path / "a")
    b, _ = trace("traci", steps=40, tmp=tmp_path / "b")
    for (ta, ia, xa, _), (tb, ib, xb, _) in zip(a, b):
        assert ta == tb and ia == ib and np.allclose(xa, xb)


def test_unknown_scenario_is_a_clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="scenario not found"):
        load_scenario("nowhere/x.sumocfg", tmp_path)


def test_only_vehicles_with_the_id_prefix_join_the_fleet(tmp_path):
    """A10KW has cars (veh...) and trucks (truck...): with id_prefix 'truck' only trucks join, up to the cap."""
    s = SumoSession(a10kw(), seed=2, max_vehicles=6, out_dir=tmp_path, id_prefix="truck",
                    extra_args=["--ignore-route-errors", "true"]).start()
    try:
        s.run_until(120)
        assert any(not v.startswith("truck") for v in s.api.vehicle.getIDList())   # cars are on the map
        s.open_enrolment()
        s.run_until(300)
        assert s.enrolled and all(v.startswith("truck") for v in s.enrolled), s.enrolled
    finally:
        s.close()


def test_libsumo_needs_no_sumo_binary(tmp_path, monkeypatch):
    """The libsumo wheel alone (no eclipse-sumo, so no bin/sumo) runs a session: the first word of the
    command is only a program name to it. traci starts the binary, so it still needs one."""
    import iovsim.mobility.sumo as sumo_mod

    def no_binary(name="sumo"):
        raise ScenarioError(f"SUMO binary {name} not found under /nowhere/bin")

    monkeypatch.setattr(sumo_mod, "sumo_binary", no_binary)
    s = SumoSession(a10kw(), seed=1, max_vehicles=3, out_dir=tmp_path, extra_args=["--ignore-route-errors", "true"])
    assert s.command()[0] == "sumo"
    s.start()
    try:
        s.run_until(30)
        s.open_enrolment()
        assert len(s.step().vehicle_ids) == 3
    finally:
        s.close()
    with pytest.raises(ScenarioError, match="SUMO binary sumo not found"):
        SumoSession(a10kw(), seed=1, backend="traci").command()
