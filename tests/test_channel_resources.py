"""Rates (Shannon with gap and cap, noise, co-channel interference) and bandwidth allocation."""
import math

import numpy as np
import pytest

from iovsim.channel import Channel, allocate_bandwidth
from iovsim.channel import pathloss as plm
from iovsim.channel.config import ChannelConfig

FC = 5.9e9
N0_W_HZ = 10 ** ((-174 - 30) / 10)



def _one(cfg=None, x=200.0):
    cfg = cfg or ChannelConfig(los_model="los", shadowing=False)
    ch = Channel(cfg, np.array([[0.0, 0.0]]), 0)
    return ch, ch.step(0.0, ["v"], np.array([[x, 0.0]]))


def test_uplink_shannon_rate_by_hand():
    ch, link = _one(ChannelConfig(los_model="los", shadowing=False, max_spectral_efficiency_bps_hz=0))
    g = 10 ** (-plm.umi_los_db(200.0, FC) / 10)
    p, b = 0.1, 1e6  # 20 dBm, below the 23 dBm maximum
    snr = p * g / (b * N0_W_HZ * 10 ** 0.5)                 # noise -174 dBm/Hz + NF 5 dB over b
    want = b * math.log2(1 + snr)
    got = ch.uplink_rate_bps(link, np.array([0]), np.array([p]), np.array([b]))[0]
    assert got == pytest.approx(want, rel=1e-4)
    # LinkState SINR: default 23 dBm over the full 20 MHz.
    full = 10 ** (-0.7) * g / (20e6 * N0_W_HZ * 10 ** 0.5)
    assert link.uplink_sinr_db[0] == pytest.approx(10 * math.log10(full), abs=1e-3)
    # Power above the maximum is clipped to it (23 dBm).
    assert ch.uplink_rate_bps(link, np.array([0]), np.array([5.0]), np.array([b]))[0] == pytest.approx(
        b * math.log2(1 + 10 ** (-0.7) * g / (b * N0_W_HZ * 10 ** 0.5)), rel=1e-4)


def test_snr_gap_cap_and_minimum():
    cfg = ChannelConfig(los_model="los", shadowing=False, snr_gap_db=3.0, max_spectral_efficiency_bps_hz=0)
    ch, link = _one(cfg)
    g = 10 ** (-plm.umi_los_db(200.0, FC) / 10)
    snr = 0.1 * g / (1e6 * N0_W_HZ * 10 ** 0.5)
    got = ch.uplink_rate_bps(link, np.array([0]), np.array([0.1]), np.array([1e6]))[0]
    assert got == pytest.approx(1e6 * math.log2(1 + snr / 10 ** 0.3), rel=1e-4)
    ch, link = _one(ChannelConfig(los_model="los", shadowing=False), x=20.0)   # very high SNR: capped at 7.4063
    assert ch.uplink_rate_bps(link, np.array([0]), np.array([0.2]), np.array([1e6]))[0] == pytest.approx(7.4063e6)
    assert ch.downlink_rate_bps(link, np.array([0]), np.array([2e6]))[0] == pytest.approx(2 * 7.4063e6)
    ch, link = _one(ChannelConfig(los_model="los", shadowing=False, min_rsrp_dbm=-200), x=60000.0)
    assert link.serving[0] == 0 and ch.uplink_rate_bps(link, np.array([0]), np.array([0.2]), np.array([20e6]))[0] == 0.0
    assert ch.uplink_rate_bps(link, np.array([0]), np.array([0.2]), np.array([0.0]))[0] == 0.0


def test_downlink_rate_by_hand():
    ch, link = _one(ChannelConfig(los_model="los", shadowing=False, max_spectral_efficiency_bps_hz=0))
    g = 10 ** (-plm.umi_los_db(200.0, FC) / 10)
    sinr = (1.0 / 20e6) * g / (N0_W_HZ * 10 ** 0.9)         # 30 dBm over 20 MHz; vehicle NF 9 dB
    assert link.downlink_sinr_db[0] == pytest.approx(10 * math.log10(sinr), abs=1e-3)
    assert ch.downlink_rate_bps(link, np.array([0]), np.array([5e6]))[0] == pytest.approx(5e6 * math.log2(1 + sinr), rel=1e-4)


def test_cochannel_interference_by_hand_and_reuse():
    rsu_xy = np.array([[0.0, 0.0], [600.0, 0.0]])
    xy = np.array([[150.0, 0.0], [420.0, 0.0]])
    base = dict(los_model="los", shadowing=False, max_spectral_efficiency_bps_hz=0)
    ch = Channel(ChannelConfig(**base), rsu_xy, 0)
    link = ch.step(0.0, ["a", "b"], xy)
    assert list(link.serving) == [0, 1]
    gain = 10 ** (-plm.umi_los_db(np.hypot(xy[:, None, 0] - rsu_xy[None, :, 0], 0), FC) / 10)  # (vehicle, rsu)
    psd_rsu = 1.0 / 20e6
    # Downlink at a: RSU 1 interferes at its full PSD.
    sinr_a = psd_rsu * gain[0, 0] / (N0_W_HZ * 10 ** 0.9 + psd_rsu * gain[0, 1])
    assert link.downlink_sinr_db[0] == pytest.approx(10 * math.log10(sinr_a), abs=1e-3)
    # Uplink at RSU 0: vehicle b (the only one in cell 1) at 23 dBm spread over 20 MHz.
    p = 10 ** (-0.7)
    i0 = p * gain[1, 0] / 20e6
    sinr_ul = p * gain[0, 0] / (20e6 * (N0_W_HZ * 10 ** 0.5 + i0))
    assert link.uplink_sinr_db[0] == pytest.approx(10 * math.log10(sinr_ul), abs=1e-3)
    b = 2e6
    want = b * math.log2(1 + p * gain[0, 0] / (b * (N0_W_HZ * 10 ** 0.5 + i0)))
    assert ch.uplink_rate_bps(link, np.array([0]), np.array([p]), np.array([b]))[0] == pytest.approx(want, rel=1e-4)
    # Reuse 2: the two RSUs are on different channels, no interference; interference off: the same.
    for cfg in (ChannelConfig(frequency_reuse=2, **base), ChannelConfig(interference=False, **base),
                ChannelConfig(reuse_groups=[0, 1], **base)):
        l2 = Channel(cfg, rsu_xy, 0).step(0.0, ["a", "b"], xy)
        assert l2.downlink_sinr_db[0] == pytest.approx(10 * math.log10(psd_rsu * gain[0, 0] / (N0_W_HZ * 10 ** 0.9)), abs=1e-3)
        assert l2.uplink_sinr_db[0] > link.uplink_sinr_db[0]


def test_reuse_groups_spread_neighbours():
    from iovsim.channel.rates import assign_reuse_groups

    xy = np.array([[0, 0], [100, 0], [200, 0], [300, 0], [400, 0], [500, 0]], dtype=float)
    g = assign_reuse_groups(xy, 3)
    assert np.all(g[1:] != g[:-1]) and set(g) == {0, 1, 2}


def _demo(k=9, m=3, seed=0):
    rng = np.random.default_rng(seed)
    rsu_of = np.arange(k) % m
    bits = rng.uniform(1e5, 1e7, k)
    se = rng.uniform(0.5, 6.0, k)
    cap = np.array([20e6, 10e6, 5e6])[:m]
    return rsu_of, bits, se, cap


@pytest.mark.parametrize("mode", ["equal", "proportional", "minmax"])
def test_allocation_never_exceeds_rsu_bandwidth(mode):
    rsu_of, bits, se, cap = _demo()
    bw = allocate_bandwidth(mode, rsu_of, bits, se, cap)
    used = np.bincount(rsu_of, weights=bw, minlength=3)
    assert np.all(used <= cap * (1 + 1e-12)) and np.allclose(used, cap)
    assert np.all(bw > 0)


def test_equal_and_proportional_by_hand():
    rsu_of = np.array([0, 0, 1, 0])
    bits = np.array([1.0, 3.0, 5.0, 4.0])
    cap = np.array([8e6, 2e6])
    assert np.allclose(allocate_bandwidth("equal", rsu_of, bits, np.ones(4), cap), [8e6 / 3, 8e6 / 3, 2e6, 8e6 / 3])
    assert np.allclose(allocate_bandwidth("proportional", rsu_of, bits, np.ones(4), cap), [1e6, 3e6, 2e6, 4e6])


def test_minmax_equalizes_upload_latency():
    rsu_of, bits, se, cap = _demo()
    bw = allocate_bandwidth("minmax", rsu_of, bits, se, cap)
    t = bits / (bw * se)
    for m in range(3):
        tm = t[rsu_of == m]
        assert np.allclose(tm, tm[0], rtol=1e-9)
        # Better (or equal) worst case than equal or proportional shares.
        for other in ("equal", "proportional"):
            bo = allocate_bandwidth(other, rsu_of, bits, se, cap)
            assert tm.max() <= (bits / (bo * se))[rsu_of == m].max() * (1 + 1e-9)


def test_minmax_bisection_with_bandwidth_dependent_rate():
    rsu_xy = np.array([[0.0, 0.0], [800.0, 0.0]])
    xy = np.array([[50.0, 0.0], [200.0, 10.0], [300.0, 0.0], [700.0, 0.0], [760.0, 20.0]])
    ch = Channel(ChannelConfig(los_model="los", shadowing=False), rsu_xy, 0)
    link = ch.step(0.0, [f"v{i}" for i in range(5)], xy)
    idx = np.arange(5)
    p = np.full(5, 0.2)
    bits = np.array([2e6, 4e6, 1e6, 3e6, 3e6])
    bw = allocate_bandwidth("minmax", link.serving, bits, np.ones(5), ch.rsu_bandwidth_hz,
                            rate_bps=lambda b: ch.uplink_rate_bps(link, idx, p, b))
    used = np.bincount(link.serving, weights=bw, minlength=2)
    assert np.all(used <= ch.rsu_bandwidth_hz * (1 + 1e-9))
    t = bits / ch.uplink_rate_bps(link, idx, p, bw)
    for m in range(2):
        tm = t[link.serving == m]
        assert tm.max() / tm.min() < 1.001


def test_allocation_errors():
    with pytest.raises(ValueError):
        allocate_bandwidth("best", np.array([0]), np.ones(1), np.ones(1), np.ones(1))
    with pytest.raises(ValueError):
        allocate_bandwidth("equal", np.array([-1]), np.ones(1), np.ones(1), np.ones(1))
    assert allocate_bandwidth("minmax", np.zeros(0, int), np.zeros(0), np.zeros(0), np.ones(2)).shape == (0,)
    # A participant without a usable link gets nothing; the others share the band.
    bw = allocate_bandwidth("minmax", np.array([0, 0]), np.array([1e6, 1e6]), np.array([0.0, 2.0]), np.array([1e6]))
    assert list(bw) == [0.0, 1e6]
