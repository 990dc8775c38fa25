"""Path loss and LOS probability against values computed by hand from 3GPP TR 38.901.

Table 7.4.1-1 (path loss, UMi-Street Canyon and UMa) and Table 7.4.2-1 (LOS probability), with
f_c = 5.9 GHz, h_BS = 10 m (UMi) / 25 m (UMa), h_UT = 1.5 m, h_E = 1 m, c = 3e8 m/s.
"""
import math

import numpy as np
import pytest

from iovsim.channel import Channel
from iovsim.channel import pathloss as plm
from iovsim.channel.config import ChannelConfig

FC = 5.9e9



def umi_by_hand(d2d, fc_ghz=5.9, hbs=10.0, hut=1.5):
    """TR 38.901 Table 7.4.1-1, UMi-Street Canyon, written out term by term."""
    d3d = math.sqrt(d2d ** 2 + (hbs - hut) ** 2)
    dbp = 4 * (hbs - 1) * (hut - 1) * fc_ghz * 1e9 / 3e8
    pl1 = 32.4 + 21 * math.log10(d3d) + 20 * math.log10(fc_ghz)
    pl2 = 32.4 + 40 * math.log10(d3d) + 20 * math.log10(fc_ghz) - 9.5 * math.log10(dbp ** 2 + (hbs - hut) ** 2)
    los = pl1 if d2d <= dbp else pl2
    nlos_p = 35.3 * math.log10(d3d) + 22.4 + 21.3 * math.log10(fc_ghz) - 0.3 * (hut - 1.5)
    return los, max(los, nlos_p)


def uma_by_hand(d2d, fc_ghz=5.9, hbs=25.0, hut=1.5):
    d3d = math.sqrt(d2d ** 2 + (hbs - hut) ** 2)
    dbp = 4 * (hbs - 1) * (hut - 1) * fc_ghz * 1e9 / 3e8
    pl1 = 28.0 + 22 * math.log10(d3d) + 20 * math.log10(fc_ghz)
    pl2 = 28.0 + 40 * math.log10(d3d) + 20 * math.log10(fc_ghz) - 9 * math.log10(dbp ** 2 + (hbs - hut) ** 2)
    los = pl1 if d2d <= dbp else pl2
    nlos_p = 13.54 + 39.08 * math.log10(d3d) + 20 * math.log10(fc_ghz) - 0.6 * (hut - 1.5)
    return los, max(los, nlos_p)


# (d2D m, UMi LOS dB, UMi NLOS dB) evaluated on paper from Table 7.4.1-1 (d'_BP = 354 m).
UMI_TABLE = [(50, 83.625, 99.011), (200, 96.147, 120.059), (354, 101.349, 128.803),
             (600, 110.511, 136.889), (1000, 119.384, 144.720)]


@pytest.mark.parametrize("d2d,los,nlos", UMI_TABLE)
def test_umi_matches_hand_values(d2d, los, nlos):
    assert plm.umi_los_db(d2d, FC) == pytest.approx(los, abs=2e-3)
    assert plm.umi_nlos_db(d2d, FC) == pytest.approx(nlos, abs=2e-3)
    assert umi_by_hand(d2d) == pytest.approx((los, nlos), abs=2e-3)


@pytest.mark.parametrize("d2d", [15.0, 35.0, 120.0, 400.0, 1200.0, 4000.0])
def test_uma_matches_formulas(d2d):
    los, nlos = uma_by_hand(d2d)
    assert plm.uma_los_db(d2d, FC) == pytest.approx(los, abs=1e-9)
    assert plm.uma_nlos_db(d2d, FC) == pytest.approx(nlos, abs=1e-9)


def test_breakpoint_distance_and_slope_change():
    # d'_BP = 4 h'_BS h'_UT f_c / c = 4 * 9 * 0.5 * 5.9e9 / 3e8 = 354 m (UMi).
    dbp = plm.breakpoint_distance_m(FC, 10.0, 1.5)
    assert dbp == pytest.approx(354.0)
    # Continuous at the breakpoint; slope 21 dB/decade before, 40 dB/decade well beyond (in d3D).
    eps = 1e-6
    assert plm.umi_los_db(dbp - eps, FC) == pytest.approx(plm.umi_los_db(dbp + eps, FC), abs=1e-4)
    slope_before = plm.umi_los_db(200.0, FC) - plm.umi_los_db(20.0, FC)
    slope_after = plm.umi_los_db(4000.0, FC) - plm.umi_los_db(400.0, FC)
    assert 19.5 < slope_before < 21.0
    assert slope_after == pytest.approx(40.0, abs=0.05)
    # UMa: d'_BP = 4 * 24 * 0.5 * 5.9e9 / 3e8 = 944 m.
    assert plm.breakpoint_distance_m(FC, 25.0, 1.5) == pytest.approx(944.0)


def test_nlos_never_below_los():
    d = np.geomspace(10, 5000, 200)
    assert np.all(plm.umi_nlos_db(d, FC) >= plm.umi_los_db(d, FC))
    assert np.all(plm.uma_nlos_db(d, FC) >= plm.uma_los_db(d, FC))


def test_freespace():
    # Friis: 20 log10(4 pi d f / c); at 100 m and 5.9 GHz = 87.86 dB; +6.02 dB per doubling.
    assert plm.freespace_db(100.0, FC) == pytest.approx(20 * math.log10(4 * math.pi * 100 * FC / 299792458), abs=1e-9)
    assert plm.freespace_db(100.0, FC) == pytest.approx(87.86, abs=0.01)
    assert plm.freespace_db(200.0, FC) - plm.freespace_db(100.0, FC) == pytest.approx(6.0206, abs=1e-3)
    # UMi LOS before the breakpoint is close to free space (within a few dB at 5.9 GHz).
    assert abs(plm.umi_los_db(100.0, FC) - plm.freespace_db(math.hypot(100, 8.5), FC)) < 3.0


# Table 7.4.2-1 by hand: UMi Pr = 18/d + exp(-d/36)(1 - 18/d); UMa with 63 m and C'(h_UT) = 0 for h_UT <= 13 m.
@pytest.mark.parametrize("d,umi,uma", [
    (10.0, 1.0, 1.0), (18.0, 1.0, 1.0),
    (50.0, 18 / 50 + math.exp(-50 / 36) * (1 - 18 / 50), 18 / 50 + math.exp(-50 / 63) * (1 - 18 / 50)),
    (100.0, 0.18 + math.exp(-100 / 36) * 0.82, 0.18 + math.exp(-100 / 63) * 0.82),
    (500.0, 0.036 + math.exp(-500 / 36) * 0.964, 0.036 + math.exp(-500 / 63) * 0.964),
])
def test_los_probability_hand_values(d, umi, uma):
    assert plm.los_probability("umi", d) == pytest.approx(umi, rel=1e-12)
    assert plm.los_probability("uma", d) == pytest.approx(uma, rel=1e-12)


def test_los_probability_literal_values():
    assert plm.los_probability("umi", 50.0) == pytest.approx(0.51959, abs=1e-5)
    assert plm.los_probability("umi", 200.0) == pytest.approx(0.09352, abs=1e-5)
    # UMa with a 20 m high UT: C'(h_UT) = ((20 - 13) / 10)^1.5 enlarges Pr.
    c = (0.7) ** 1.5
    base = 18 / 100 + math.exp(-100 / 63) * (1 - 18 / 100)
    assert plm.los_probability("uma", 100.0, h_ut_m=20.0) == pytest.approx(base * (1 + c * 1.25 * 1.0 * math.exp(-100 / 150)))


@pytest.mark.parametrize("model,h_bs", [("umi", 10.0), ("uma", 25.0)])
@pytest.mark.parametrize("los_model", ["los", "nlos"])
def test_channel_step_uses_the_same_path_loss(model, h_bs, los_model):
    """The vectorized step (float32, formulas in ln d3D^2) agrees with the reference functions."""
    rsu_xy = np.array([[0.0, 0.0], [3000.0, 0.0], [0.0, 2500.0]])
    ch = Channel(ChannelConfig(pathloss_model=model, los_model=los_model, shadowing=False, rsu_height_m=h_bs), rsu_xy, seed=1)
    d = np.geomspace(1.0, 5000.0, 60)
    xy = np.c_[d, np.zeros_like(d)]
    link = ch.step(0.0, [f"v{i}" for i in range(len(d))], xy)
    d2d = np.hypot(xy[:, None, 0] - rsu_xy[None, :, 0], xy[:, None, 1] - rsu_xy[None, :, 1])
    ref = plm.pathloss_db(model, d2d, FC, h_bs, 1.5, np.full(d2d.shape, los_model == "los"))
    assert np.allclose(link.pathloss_db, ref, atol=0.01)
    assert np.allclose(link.rsrp_dbm, 30.0 - ref, atol=0.01)


def test_channel_freespace_and_expected_models():
    rsu_xy = np.array([[0.0, 0.0]])
    d = np.array([20.0, 80.0, 300.0, 900.0])
    xy = np.c_[d, np.zeros_like(d)]
    ids = [f"v{i}" for i in range(len(d))]
    fs = Channel(ChannelConfig(pathloss_model="freespace", shadowing=True), rsu_xy, 1).step(0.0, ids, xy)
    assert np.allclose(fs.pathloss_db[:, 0], plm.freespace_db(np.hypot(d, 8.5), FC), atol=0.01)  # no shadowing in free space
    ex = Channel(ChannelConfig(los_model="expected", shadowing=False), rsu_xy, 1).step(0.0, ids, xy)
    p = plm.los_probability("umi", d)
    want = p * plm.umi_los_db(d, FC) + (1 - p) * plm.umi_nlos_db(d, FC)
    assert np.allclose(ex.pathloss_db[:, 0], want, atol=0.02)


def test_v2v_models():
    # TR 37.885 Table 6.2.1-1: highway LOS = 32.4 + 20 log10 d + 20 log10 fc; urban LOS = 38.77 + 16.7 log10 d + 18.2 log10 fc.
    assert plm.v2v_los_db("highway", 100.0, FC) == pytest.approx(32.4 + 40 + 20 * math.log10(5.9))
    assert plm.v2v_los_db("urban", 100.0, FC) == pytest.approx(38.77 + 33.4 + 18.2 * math.log10(5.9))
    assert plm.v2v_nlos_db(100.0, FC) == pytest.approx(36.85 + 60 + 18.9 * math.log10(5.9))
    # NLOSv blockage (equal 1.6 m antennas and blocker: case 3): mean 5 + max(0, 15 log10 d - 41) dB.
    assert plm.v2v_pathloss_db("highway", 100.0, FC, "nlosv") == pytest.approx(plm.v2v_los_db("highway", 100.0, FC) + 5.0)
    assert plm.v2v_blockage_loss_db(1000.0) == pytest.approx(5.0 + 4.0)
    assert plm.v2v_blockage_loss_db(100.0, 1.5, 1.5, blocker_height_m=3.0) == pytest.approx(9.0)
    assert plm.v2v_blockage_loss_db(100.0, 2.0, 2.0) == 0.0
    draws = plm.v2v_blockage_loss_db(np.full(200_000, 100.0), rng=np.random.default_rng(0))
    assert draws.mean() == pytest.approx(5.0, abs=0.05) and draws.std() == pytest.approx(4.0, abs=0.1)
    # Table 6.2.1-2 by hand.
    d = np.array([0.0, 100.0, 475.0, 600.0, 2000.0])
    p = plm.v2v_los_probability("highway", d)
    assert p[1] == pytest.approx(2.1013e-6 * 1e4 - 0.2 + 1.0193)
    assert p[3] == pytest.approx(0.54 - 0.125)
    assert p[0] == 1.0 and p[-1] == 0.0
    assert plm.v2v_los_probability("urban", 200.0) == pytest.approx(1.05 * math.exp(-2.28))
    with pytest.raises(ValueError):
        plm.v2v_los_db("rural", 10.0, FC)


@pytest.mark.parametrize("model", ["umi", "uma"])
@pytest.mark.parametrize("h_bs,h_ut", [(10.0, 1.5), (25.0, 1.5), (6.0, 2.5), (25.0, 12.0)])
@pytest.mark.parametrize("los_model", ["stochastic", "los", "nlos"])
def test_kernel_matches_reference_over_a_grid(model, h_bs, h_ut, los_model):
    """The float32 step kernel against the float64 TR 38.901 functions: distances from 1 m to 5 km
    (below and beyond d'_BP), several antenna heights, and each link's own LOS state."""
    cfg = ChannelConfig(pathloss_model=model, los_model=los_model, shadowing=False, rsu_height_m=h_bs,
                        vehicle_height_m=h_ut)
    rsu_xy = np.array([[0.0, 0.0], [2000.0, 700.0]])
    d = np.geomspace(1.0, 5000.0, 400)
    xy = np.c_[d * np.cos(d), d * np.sin(d)]
    link = Channel(cfg, rsu_xy, seed=3).step(0.0, [f"v{i}" for i in range(d.size)], xy)
    d2d = np.hypot(xy[:, None, 0] - rsu_xy[None, :, 0], xy[:, None, 1] - rsu_xy[None, :, 1])
    ref = plm.pathloss_db(model, d2d, FC, h_bs, h_ut, np.asarray(link.los))
    assert np.abs(link.pathloss_db - ref).max() < 0.01
    if los_model == "stochastic":
        assert link.los.any() and not link.los.all()
    f_los, f_nlos = {"umi": (plm.umi_los_db, plm.umi_nlos_db), "uma": (plm.uma_los_db, plm.uma_nlos_db)}[model]
    by_hand = {"umi": umi_by_hand, "uma": uma_by_hand}[model]
    for dd in (15.0, 300.0, 1500.0):
        assert (f_los(dd, FC, h_bs, h_ut), f_nlos(dd, FC, h_bs, h_ut)) == pytest.approx(by_hand(dd, 5.9, h_bs, h_ut), abs=1e-9)
