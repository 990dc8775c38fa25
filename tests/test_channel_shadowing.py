"""Shadow fading and LOS-state statistics over many samples (TR 38.901 Tables 7.4.1-1, 7.5-6, 7.6.3.1-2)."""
import math

import numpy as np
import pytest

from iovsim.channel import Channel
from iovsim.channel import pathloss as plm
from iovsim.channel.config import ChannelConfig



def _run(cfg, step_m, steps=6, n=4000, seed=3):
    """n vehicles on parallel tracks past one RSU, each moving step_m per step; returns (shadow dB, los) per step."""
    rsu = np.array([[0.0, 0.0]])
    ch = Channel(cfg, rsu, seed)
    ids = [f"v{i}" for i in range(n)]
    y = np.linspace(50.0, 400.0, n)
    out, los = [], []
    for k in range(steps):
        xy = np.c_[np.full(n, 100.0 + k * step_m), y]
        link = ch.step(float(k), ids, xy)
        d2d = np.hypot(xy[:, 0], xy[:, 1])
        mean = plm.pathloss_db(cfg.pathloss_model, d2d, cfg.carrier_frequency_hz, 10.0, 1.5, link.los[:, 0])
        out.append(link.pathloss_db[:, 0] - mean)
        los.append(link.los[:, 0].copy())
    return np.array(out), np.array(los)


@pytest.mark.parametrize("state,sigma,dcor", [("nlos", 7.82, 13.0), ("los", 4.0, 10.0)])
def test_umi_shadowing_mean_std_and_correlation(state, sigma, dcor):
    sh, _ = _run(ChannelConfig(los_model=state), step_m=dcor)
    flat = sh.ravel()
    assert abs(flat.mean()) < 0.05 * sigma
    assert flat.std() == pytest.approx(sigma, rel=0.03)
    # One step = one decorrelation distance: correlation e^-1 (Gudmundson's exponential model).
    r = np.mean([np.corrcoef(sh[k], sh[k + 1])[0, 1] for k in range(len(sh) - 1)])
    assert r == pytest.approx(math.exp(-1), abs=0.03)


def test_uma_shadowing_and_correlation_at_half_distance():
    sh, _ = _run(ChannelConfig(pathloss_model="uma", los_model="nlos"), step_m=25.0)
    assert sh.std() == pytest.approx(6.0, rel=0.03)
    r = np.mean([np.corrcoef(sh[k], sh[k + 1])[0, 1] for k in range(len(sh) - 1)])
    assert r == pytest.approx(math.exp(-0.5), abs=0.03)  # 25 m of the 50 m NLOS decorrelation distance


def test_standing_vehicle_keeps_its_shadowing_and_overrides_apply():
    sh, _ = _run(ChannelConfig(los_model="nlos", shadowing_std_db=5.0, shadowing_decorrelation_m=20.0), step_m=0.0, steps=3, n=500)
    assert np.allclose(sh[0], sh[1], atol=1e-4) and np.allclose(sh[1], sh[2], atol=1e-4)
    sh, _ = _run(ChannelConfig(los_model="nlos", shadowing_std_db=5.0, shadowing_decorrelation_m=20.0), step_m=20.0)
    assert sh.std() == pytest.approx(5.0, rel=0.03)
    assert np.corrcoef(sh[0], sh[1])[0, 1] == pytest.approx(math.exp(-1), abs=0.04)
    sh, _ = _run(ChannelConfig(los_model="nlos", shadowing=False), step_m=10.0, steps=2, n=100)
    assert np.allclose(sh, 0.0, atol=1e-3)  # float32 path loss


def test_stochastic_los_share_and_persistence():
    cfg = ChannelConfig(los_model="stochastic", shadowing=False)
    n = 6000
    rsu = np.array([[0.0, 0.0]])
    ch = Channel(cfg, rsu, 11)
    ids = [f"v{i}" for i in range(n)]
    xy = np.c_[np.full(n, 60.0), np.zeros(n)]
    a = ch.step(0.0, ids, xy).los[:, 0].copy()
    expect = plm.los_probability("umi", np.hypot(60.0, 0.0))
    assert a.mean() == pytest.approx(expect, abs=0.02)
    # Moving 50 m across a circle at the same distance (same Pr_LOS): the state is kept with
    # probability exp(-1), else redrawn, so P(same state) = e^-1 + (1 - e^-1)(p^2 + (1-p)^2).
    ang = 50.0 / 60.0
    b = ch.step(1.0, ids, np.c_[np.full(n, 60.0 * math.cos(ang)), np.full(n, 60.0 * math.sin(ang))]).los[:, 0]
    same = (a == b).mean()
    want = math.exp(-1) + (1 - math.exp(-1)) * (expect ** 2 + (1 - expect) ** 2)
    assert same == pytest.approx(want, abs=0.02)


def test_deterministic_for_the_same_seed_and_steps():
    def trace(seed):
        rsu = np.array([[0.0, 0.0], [400.0, 0.0]])
        ch = Channel(ChannelConfig(), rsu, seed)
        out = []
        for k in range(5):
            xy = np.c_[np.arange(10) * 40.0 + 10 * k, np.full(10, 30.0)]
            out.append(ch.step(float(k), [f"v{i}" for i in range(10)], xy).pathloss_db)
        return np.array(out)

    assert np.array_equal(trace(5), trace(5))
    assert not np.array_equal(trace(5), trace(6))


@pytest.mark.parametrize("by_threshold", [True, False])
def test_uma_tall_ut_los_share_both_draw_paths(by_threshold):
    # u < Pr_LOS(d) is drawn as d^2 < D(u)^2 when Pr_LOS decreases with d (always, in practice), else directly.
    cfg = ChannelConfig(pathloss_model="uma", vehicle_height_m=20.0, shadowing=False, rsu_height_m=25.0)
    ch = Channel(cfg, np.array([[0.0, 0.0]]), 2)
    ch.kernel.los_by_threshold = by_threshold
    n = 6000
    ids = [f"v{i}" for i in range(n)]
    link = ch.step(0.0, ids, np.c_[np.full(n, 150.0), np.zeros(n)])
    want = float(plm.los_probability("uma", 150.0, 20.0))
    assert link.los[:, 0].mean() == pytest.approx(want, abs=0.02)
    link = ch.step(1.0, ids, np.c_[np.full(n, 150.0 * math.cos(0.5)), np.full(n, 150.0 * math.sin(0.5))])
    assert link.los[:, 0].mean() == pytest.approx(want, abs=0.02)


@pytest.mark.parametrize("los_model", ["stochastic", "expected"])
def test_standing_vehicles_shortcut_is_exact(los_model):
    """Rows of vehicles that did not move are copied from the previous step instead of recomputed:
    the links equal, bit for bit, those of a channel that recomputes every row; vehicles leave and
    arrive in between, and the row blocks are small so that several blocks are processed."""
    rng = np.random.default_rng(0)
    rsu = rng.uniform(0, 2000, (12, 2))
    cfg = ChannelConfig(los_model=los_model)
    a, b = Channel(cfg, rsu, 5), Channel(cfg, rsu, 5)
    a.kernel.block_links = b.kernel.block_links = 12 * 40
    xy = {f"v{i}": rng.uniform(0, 2000, 2) for i in range(300)}
    nxt = 300
    for k in range(8):
        for v in list(xy)[:: 17 + k]:
            del xy[v]
        for _ in range(10):
            xy[f"v{nxt}"] = rng.uniform(0, 2000, 2)
            nxt += 1
        for v in xy:
            if rng.random() < 0.5:  # half the vehicles stand still
                xy[v] = xy[v] + rng.normal(0, 8, 2)
        ids = list(xy)
        pos = np.array([xy[v] for v in ids])
        b.kernel.pl_state = None  # forces the full computation
        la, lb = a.step(float(k), ids, pos), b.step(float(k), ids, pos)
        for f in ("pathloss_db", "rsrp_dbm", "los", "serving", "uplink_sinr_db", "downlink_sinr_db"):
            assert np.array_equal(getattr(la, f), getattr(lb, f)), (k, f)
        assert np.array_equal(a.kernel.g, b.kernel.g) and np.array_equal(a.kernel.u, b.kernel.u)
        assert [(e.vehicle_id, e.to_rsu) for e in la.handovers] == [(e.vehicle_id, e.to_rsu) for e in lb.handovers]
