"""Small-scale fading (`channel.fading`): closed forms from many draws, time correlation, and the
default `none` leaving every number as it was."""
import numpy as np
import pytest
from scipy.special import exp1, j0

from iovsim.channel import Channel
from iovsim.channel.config import ChannelConfig
from iovsim.channel.fading import SPEED_OF_LIGHT_M_S, Fading, exceed_probability

N = 40_000
RSU = np.array([[0.0, 0.0]])
BW_HZ = 1e6
P_W = 0.2


def _cfg(**kw):
    # One RSU, no shadowing, a forced LOS state: every vehicle at the same spot has the same mean SINR.
    base = dict(shadowing=False, los_model="nlos", snr_gap_db=0.0, max_spectral_efficiency_bps_hz=0.0, min_sinr_db=-100.0)
    return ChannelConfig(**{**base, **kw})


def _one_step(cfg, n=N, seed=3, x_m=200.0):
    ch = Channel(cfg, RSU, seed)
    link = ch.step(0.0, [f"v{i}" for i in range(n)], np.tile([[x_m, 0.0]], (n, 1)))
    return ch, link, np.arange(n)


def _within(est, expected, se, k=4.0):
    assert abs(est - expected) <= k * se, (est, expected, se)


def test_rayleigh_outage_matches_closed_form():
    """P(SNR |h|^2 < gamma) = 1 - exp(-gamma / mean SNR), read as the share of steps a transfer gets rate 0."""
    ch, link, idx = _one_step(_cfg(fading="rayleigh"))
    mean_snr = float(ch.uplink_sinr(link, idx[:1], P_W, BW_HZ)[0])
    gamma = 0.4 * mean_snr
    ch.radio.min_sinr = gamma   # outage threshold (min_sinr_db) placed at 0.4 x the mean SNR
    rate = ch.uplink_rate_bps(link, idx, P_W, BW_HZ, instantaneous=True)
    p = 1.0 - np.exp(-gamma / mean_snr)
    _within(np.mean(rate == 0.0), p, np.sqrt(p * (1 - p) / N))


def test_rayleigh_mean_rate_matches_ergodic_capacity():
    """E[B log2(1 + SNR |h|^2)] = B e^{1/SNR} E1(1/SNR) / ln 2 for Rayleigh fading."""
    ch, link, idx = _one_step(_cfg(fading="rayleigh"))
    snr = float(ch.uplink_sinr(link, idx[:1], P_W, BW_HZ)[0])
    rate = ch.uplink_rate_bps(link, idx, P_W, BW_HZ, instantaneous=True)
    expected = BW_HZ * np.exp(1 / snr) * exp1(1 / snr) / np.log(2)
    _within(rate.mean(), expected, rate.std() / np.sqrt(N))
    assert rate.mean() < ch.uplink_rate_bps(link, idx[:1], P_W, BW_HZ)[0]   # Jensen: below the mean-SNR rate


@pytest.mark.parametrize("k_db", [9.0, 3.0])
def test_rician_los_links_have_unit_power_the_right_k_and_tail(k_db):
    _, link, _ = _one_step(_cfg(fading="rician", rician_k_db=k_db, los_model="los"))
    k = 10 ** (k_db / 10)
    for g in (link.uplink_fading, link.downlink_fading):
        var = (1 + 2 * k) / (1 + k) ** 2        # Var |h|^2 of unit-mean Rician
        _within(g.mean(), 1.0, np.sqrt(var / N))
        m4c = np.mean((g - g.mean()) ** 4)       # the sample variance's standard error from the data
        _within(g.var(), var, np.sqrt((m4c - g.var() ** 2) / N))
        for x in (0.3, 0.7, 1.5):
            p = float(exceed_probability(x, k))
            _within(np.mean(g >= x), p, np.sqrt(p * (1 - p) / N))


def test_rician_uses_rayleigh_on_nlos_links():
    _, link, _ = _one_step(_cfg(fading="rician", los_model="nlos"))
    p = float(np.exp(-0.5))
    _within(np.mean(link.uplink_fading >= 0.5), p, np.sqrt(p * (1 - p) / N))
    assert np.all(exceed_probability([0.5, 2.0], 0.0) == np.exp(-np.array([0.5, 2.0])))
    assert list(exceed_probability([0.5, 1.0, 2.0], np.inf)) == [1.0, 1.0, 0.0]


def _two_steps(cfg, moved_m, n=N, seed=5):
    ch = Channel(cfg, RSU, seed)
    ids = [f"v{i}" for i in range(n)]
    xy = np.tile([[200.0, 0.0]], (n, 1))
    a = ch.step(0.0, ids, xy)
    s_a = ch.fading.diffuse.copy()
    b = ch.step(1.0, ids, xy + [[moved_m, 0.0]])
    return a, b, s_a, ch.fading.diffuse.copy()


def test_one_step_correlation_is_clarke_j0():
    """E[s_t s*_{t-1}] = J0(2 pi d / wavelength) = J0(2 pi f_D dt), and for Rayleigh corr(|h_t|^2, |h_{t-1}|^2) = J0^2."""
    wavelength = SPEED_OF_LIGHT_M_S / 5.9e9
    d = 1.0 / (2 * np.pi) * wavelength       # 2 pi d / wavelength = 1: J0 = 0.765
    rho = j0(1.0)
    a, b, s_a, s_b = _two_steps(_cfg(fading="rayleigh"), d)
    for col in (0, 1):
        c = np.mean(s_b[:, col] * np.conj(s_a[:, col]))
        _within(c.real, rho, 1 / np.sqrt(N))
        _within(c.imag, 0.0, 1 / np.sqrt(N))
    r = np.corrcoef(a.uplink_fading, b.uplink_fading)[0, 1]
    _within(r, rho ** 2, 2 / np.sqrt(N))
    # Uplink and downlink are independent processes.
    _within(np.corrcoef(b.uplink_fading, b.downlink_fading)[0, 1], 0.0, 1 / np.sqrt(N))


def test_standing_vehicle_keeps_its_fading_and_a_new_serving_rsu_draws_afresh():
    a, b, _, _ = _two_steps(_cfg(fading="rayleigh"), 0.0, n=1000)
    assert np.array_equal(a.uplink_fading, b.uplink_fading) and np.array_equal(a.downlink_fading, b.downlink_fading)
    f = Fading("rayleigh", 9.0, 5.9e9, np.random.default_rng(0))
    n = N
    los, rows, zero = np.zeros(n, bool), np.arange(n), np.zeros(n)
    g1, _ = f.advance(np.zeros(n, int), los, np.full(n, np.inf), rows, np.zeros(n, bool))
    serving = np.where(rows % 2 == 0, 0, 1)           # odd rows hand over to RSU 1
    g2, _ = f.advance(serving, los, zero, rows, np.ones(n, bool))
    even, odd = rows % 2 == 0, rows % 2 == 1
    assert np.array_equal(g1[even], g2[even])
    _within(np.corrcoef(g1[odd], g2[odd])[0, 1], 0.0, 1 / np.sqrt(n / 2))


def test_fading_off_leaves_every_number_as_it_was():
    """`none`: no fading arrays, instantaneous rates are the mean rates bit for bit. On: path loss,
    association and the mean rates (what strategies plan with) are unchanged, bit for bit (own stream)."""
    cfg = ChannelConfig()
    rsu = np.array([[0.0, 0.0], [400.0, 0.0], [800.0, 100.0]])
    rng = np.random.default_rng(1)
    n = 300
    ids = [f"v{i}" for i in range(n)]
    off, on = Channel(cfg, rsu, 7), Channel(ChannelConfig(fading="rician"), rsu, 7)
    xy = rng.uniform([-100, -200], [900, 200], (n, 2))
    for t in range(4):
        xy = xy + rng.normal(0, 8, (n, 2))
        lo, ln = off.step(float(t), ids, xy), on.step(float(t), ids, xy)
        assert lo.uplink_fading is None and lo.downlink_fading is None and ln.uplink_fading is not None
        idx, p, b = np.arange(n), np.full(n, 0.2), np.full(n, 2e6)
        assert np.array_equal(off.uplink_rate_bps(lo, idx, p, b), off.uplink_rate_bps(lo, idx, p, b, instantaneous=True))
        assert np.array_equal(off.downlink_rate_bps(lo, idx, b), off.downlink_rate_bps(lo, idx, b, instantaneous=True))
        for name in ("pathloss_db", "rsrp_dbm", "serving", "uplink_sinr_db", "downlink_sinr_db"):
            assert np.array_equal(getattr(lo, name), getattr(ln, name)), name
        assert np.array_equal(off.uplink_rate_bps(lo, idx, p, b), on.uplink_rate_bps(ln, idx, p, b))
        assert off.fading_k_factor(lo) is None
        k = on.fading_k_factor(ln)
        los = ln.los[np.arange(n), np.maximum(ln.serving, 0)]
        assert np.array_equal(k, np.where(los, 10 ** 0.9, 0.0))


def test_same_seed_same_fades_other_seed_other_fades():
    cfg = _cfg(fading="rayleigh")
    a, b, c = (_one_step(cfg, n=500, seed=s)[1] for s in (4, 4, 5))
    assert np.array_equal(a.uplink_fading, b.uplink_fading)
    assert not np.array_equal(a.uplink_fading, c.uplink_fading)
