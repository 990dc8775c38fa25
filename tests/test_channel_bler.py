"""Block errors and HARQ (`channel.bler: table`) and the config checks of the radio-link options."""
import math

import numpy as np
import pytest
import yaml

from iovsim.channel import Channel
from iovsim.channel.bler import BlockErrors
from iovsim.channel.config import CQI_EFFICIENCY_BPS_HZ, CQI_SINR_DB, ChannelConfig
from iovsim.config import ConfigError, load_config

from conftest import iovsim


def _db(x):
    return 10 ** (x / 10)


def test_bler_is_ten_percent_at_each_threshold_and_falls_over_the_waterfall():
    be = BlockErrors.from_config(ChannelConfig())
    m = np.arange(len(CQI_SINR_DB))
    assert np.allclose(be.bler(np.asarray(CQI_SINR_DB), m), 0.1)
    # 90 % -> 10 % over bler_waterfall_db (1.5 dB) below the threshold.
    assert np.allclose(be.bler(np.asarray(CQI_SINR_DB) - 1.5, m), 0.9)
    assert np.all(np.diff(be.bler(np.linspace(-10, 10, 50), 3)) < 0)


def test_link_adaptation_picks_the_highest_mcs_under_the_mean_sinr():
    be = BlockErrors.from_config(ChannelConfig())
    assert list(be.mcs(_db(np.array([-20.0, -6.7, -6.6, 11.0, 11.7, 40.0])))) == [-1, 0, 0, 8, 9, 14]
    # Below CQI 1 (and not connected, SINR 0) the step carries nothing.
    assert list(be.goodput_bps(1e6, np.array([_db(-7.0), 0.0]), np.array([_db(-7.0), 0.0]))) == [0.0, 0.0]


@pytest.mark.parametrize("harq", [1, 2, 4])
def test_goodput_is_efficiency_times_delivered_over_expected_transmissions(harq):
    """Written out by hand for a block sent at its MCS threshold + 0.5 dB, and against a simulation of
    chase-combined HARQ, block by block."""
    be = BlockErrors(CQI_SINR_DB, CQI_EFFICIENCY_BPS_HZ, 1.5, harq)
    m, x_db = 6, CQI_SINR_DB[6] + 0.5
    a = 2 * math.log(9) / 1.5
    q = [1.0] + [1 / (1 + 9 * math.exp(a * (x_db + 10 * math.log10(k) - CQI_SINR_DB[m]))) for k in range(1, harq + 1)]
    expected_tx, residual = sum(q[:harq]), q[harq]
    rate = float(be.goodput_bps(1e6, np.array([_db(x_db)]), np.array([_db(x_db)]))[0])
    assert rate == pytest.approx(1e6 * CQI_EFFICIENCY_BPS_HZ[m] * (1 - residual) / expected_tx, rel=1e-12)
    # Monte Carlo: block k-th transmission fails given all before failed with q_k / q_{k-1}.
    rng = np.random.default_rng(0)
    blocks = 200_000
    alive = np.ones(blocks, bool)
    slots = 0
    for k in range(1, harq + 1):
        slots += alive.sum()
        alive &= rng.random(blocks) < q[k] / q[k - 1]
    delivered = blocks - alive.sum()
    assert 1e6 * CQI_EFFICIENCY_BPS_HZ[m] * delivered / slots == pytest.approx(rate, rel=0.01)


def test_harq_combining_helps_and_more_transmissions_never_hurt():
    x = np.linspace(-5, 25, 61)
    rates = [BlockErrors(CQI_SINR_DB, CQI_EFFICIENCY_BPS_HZ, 1.5, h).goodput_bps(1e6, _db(x), _db(x) * 0.5)
             for h in (1, 2, 4)]
    assert np.all(rates[1] >= rates[0]) and np.all(rates[2] >= rates[1]) and np.any(rates[1] > rates[0])


def test_channel_rates_with_the_table_without_and_with_fading():
    base = dict(shadowing=False, los_model="nlos", bler="table")
    n, rsu, idx = 20_000, np.array([[0.0, 0.0]]), np.arange(20_000)
    xy = np.tile([[200.0, 0.0]], (n, 1))
    ch = Channel(ChannelConfig(**base), rsu, 3)
    link = ch.step(0.0, [f"v{i}" for i in range(n)], xy)
    sinr = ch.uplink_sinr(link, idx[:1], 0.2, 1e6)
    be = ch.radio.block_errors
    m = int(be.mcs(sinr)[0])
    e, r = be.harq(10 * np.log10(sinr), m)
    mean = ch.uplink_rate_bps(link, idx, 0.2, 1e6)
    assert np.all(mean == 1e6 * CQI_EFFICIENCY_BPS_HZ[m] * (1 - r[0]) / e[0])
    assert np.array_equal(mean, ch.uplink_rate_bps(link, idx, 0.2, 1e6, instantaneous=True))
    faded = Channel(ChannelConfig(**base, fading="rayleigh"), rsu, 3)
    fl = faded.step(0.0, [f"v{i}" for i in range(n)], xy)
    inst = faded.uplink_rate_bps(fl, idx, 0.2, 1e6, instantaneous=True)
    # Same MCS (chosen from the mean SINR), errors from the faded SINR: never above the MCS's rate,
    # nothing in deep fades, and on average below the unfaded goodput.
    assert inst.max() <= 1e6 * CQI_EFFICIENCY_BPS_HZ[m] and np.mean(inst < 1e3) > 0.1
    assert inst.mean() < mean[0]
    expected = 1e6 * CQI_EFFICIENCY_BPS_HZ[m] * np.mean(
        (1 - be.harq(10 * np.log10(sinr[0] * fl.uplink_fading), m)[1]) / be.harq(10 * np.log10(sinr[0] * fl.uplink_fading), m)[0])
    assert inst.mean() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("data, field, words", [
    ({"fading": "nakagami"}, "channel.fading", "expected one of none, rayleigh, rician, got 'nakagami'"),
    ({"rician_k_db": -40}, "channel.rician_k_db", ">= -30"),
    ({"bler": "curve"}, "channel.bler", "expected one of none, table"),
    ({"harq_max_tx": 0}, "channel.harq_max_tx", "expected an integer >= 1"),
    ({"bler_waterfall_db": 0}, "channel.bler_waterfall_db", "> 0"),
    ({"mcs_sinr_db": [-6.7, -4.7, -5.0] + CQI_SINR_DB[3:]}, "channel.mcs_sinr_db",
     "expected strictly increasing values, got -4.7 then -5 at entries 1 and 2"),
    ({"mcs_efficiency_bps_hz": CQI_EFFICIENCY_BPS_HZ[:5] + [0.5] + CQI_EFFICIENCY_BPS_HZ[6:]},
     "channel.mcs_efficiency_bps_hz", "expected strictly increasing values"),
    ({"mcs_efficiency_bps_hz": CQI_EFFICIENCY_BPS_HZ[:3]}, "channel.mcs_efficiency_bps_hz",
     "expected one entry per mcs_sinr_db entry (15), got 3"),
    ({"mcs_sinr_db": [], "mcs_efficiency_bps_hz": []}, "channel.mcs_sinr_db", "at least one MCS threshold"),
    ({"mcs_efficiency_bps_hz": [-1.0] + CQI_EFFICIENCY_BPS_HZ[1:]}, "channel.mcs_efficiency_bps_hz[0]", "> 0"),
])
def test_config_errors_name_the_field(tmp_path, data, field, words):
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump({"channel": data}))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and f"'{field}'" in msg and words in msg and "\n" not in msg, msg


def test_defaults_keep_the_v0_radio_and_the_options_load(tmp_path):
    c = ChannelConfig()
    assert (c.fading, c.bler, c.rician_k_db, c.harq_max_tx) == ("none", "none", 9.0, 4)
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump({"channel": {"fading": "rician", "rician_k_db": 6, "bler": "table", "harq_max_tx": 2}}))
    cfg = load_config(p).channel
    assert (cfg.fading, cfg.rician_k_db, cfg.bler, cfg.harq_max_tx) == ("rician", 6.0, "table", 2)


def test_cli_reports_a_bad_table_in_one_line(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump({"channel": {"bler": "table", "mcs_sinr_db": [3.0, 1.0], "mcs_efficiency_bps_hz": [1.0, 2.0]}}))
    out = iovsim("check", p)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(lines) == 1 and "channel.mcs_sinr_db" in lines[0] and str(p) in lines[0], out.stderr
