"""Per-RSU radio values: `channel.rsu_height_m / rsu_tx_power_dbm / rsu_bandwidth_hz / rsu_noise_figure_db`
take one number for every RSU or a list with one per placed RSU; the channel's SINR and association
follow each RSU's own value (checked against hand computations), a list of the wrong length is one
line naming the field, and `--set` takes the list form."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import yaml

from conftest import tiny_config
from iovsim.channel import Channel
from iovsim.channel.config import ChannelConfig
from iovsim.config import ConfigError, config_from_dict

FC = 5.9e9
C = 299_792_458.0
RSUS = np.array([[0.0, 0.0], [1000.0, 0.0]])


def friis_db(d2d, h_bs, h_ut=1.5):
    return 20 * math.log10(4 * math.pi * math.hypot(d2d, h_bs - h_ut) * FC / C)


def two_rsus(**radio) -> Channel:
    """Free space, every link LOS, no shadowing: the path loss is Friis at the 3D distance. The
    channel section goes through the config loader, as a YAML file's does."""
    section = {"pathloss_model": "freespace", "los_model": "los", "shadowing": False, "carrier_frequency_hz": FC, **radio}
    return Channel(config_from_dict({"channel": section}).channel, RSUS, seed=1)


def test_a_stronger_far_rsu_takes_the_vehicle_as_the_hand_computation_says():
    # At x = 400 m the near RSU wins at equal power by 20 log10(600.06 / 400.09) = 3.52 dB; 10 dB more
    # power at the far one reverses that (RSRP = P - PL).
    pl0, pl1 = friis_db(400.0, 10.0), friis_db(600.0, 10.0)
    equal = two_rsus().step(0.0, ["v"], np.array([[400.0, 0.0]]))
    assert equal.serving[0] == 0
    link = two_rsus(rsu_tx_power_dbm=[30.0, 40.0]).step(0.0, ["v"], np.array([[400.0, 0.0]]))
    np.testing.assert_allclose(link.rsrp_dbm[0], [30.0 - pl0, 40.0 - pl1], atol=1e-3)  # float32 path loss
    assert link.serving[0] == 1
    # Downlink SINR at the far RSU's PSD against the near one's, both over 20 MHz (full load):
    # psd_i = P_i / B, N = kT F_vehicle.
    psd = np.array([1e-3 * 10 ** (30 / 10), 1e-3 * 10 ** (40 / 10)]) / 20e6
    g = 10 ** (-np.array([pl0, pl1]) / 10)
    noise = 1e-3 * 10 ** (-174 / 10) * 10 ** (9 / 10)
    assert link.downlink_sinr_db[0] == pytest.approx(10 * math.log10(psd[1] * g[1] / (noise + psd[0] * g[0])), abs=1e-3)


def test_uplink_sinr_uses_the_serving_rsus_bandwidth_and_noise_figure():
    ch = two_rsus(rsu_bandwidth_hz=[20e6, 5e6], rsu_noise_figure_db=[5.0, 8.0], interference=False)
    link = ch.step(0.0, ["a", "b"], np.array([[100.0, 0.0], [900.0, 0.0]]))
    assert link.serving.tolist() == [0, 1]
    p = 1e-3 * 10 ** (23 / 10)
    for row, (d, bw, nf) in enumerate([(100.0, 20e6, 5.0), (100.0, 5e6, 8.0)]):
        n0 = 1e-3 * 10 ** (-174 / 10) * 10 ** (nf / 10)
        hand = 10 * math.log10(p * 10 ** (-friis_db(d, 10.0) / 10) / (bw * n0))
        assert link.uplink_sinr_db[row] == pytest.approx(hand, abs=1e-3)
    np.testing.assert_array_equal(ch.rsu_bandwidth_hz, [20e6, 5e6])


def test_heights_per_rsu_reach_the_path_loss_and_the_coverage_radius():
    ch = two_rsus(rsu_height_m=[10.0, 25.0])
    link = ch.step(0.0, ["v"], np.array([[300.0, 0.0]]))
    np.testing.assert_allclose(link.pathloss_db[0], [friis_db(300.0, 10.0), friis_db(700.0, 25.0)], atol=1e-3)
    radii = two_rsus(rsu_tx_power_dbm=[30.0, 20.0]).coverage_radius_m()
    # RSRP = P - Friis(d3D) = -110 dBm: d3D = c / (4 pi f) 10^((P + 110) / 20)
    hand = [math.sqrt((C / (4 * math.pi * FC) * 10 ** ((p + 110) / 20)) ** 2 - 8.5 ** 2) for p in (30.0, 20.0)]
    np.testing.assert_allclose(radii, hand, rtol=0.005)  # the search grid's spacing
    assert isinstance(two_rsus().coverage_radius_m(), float)


def test_one_number_and_an_equal_list_give_the_same_channel():
    xy = np.array([[100.0, 5.0], [480.0, -3.0], [950.0, 20.0]])
    a = Channel(ChannelConfig(), RSUS, seed=3).step(0.0, ["a", "b", "c"], xy)
    lists = {"rsu_tx_power_dbm": [30, 30], "rsu_bandwidth_hz": [20e6, 20e6], "rsu_noise_figure_db": [5, 5],
             "rsu_height_m": [10, 10]}
    b = Channel(config_from_dict({"channel": lists}).channel, RSUS, seed=3).step(0.0, ["a", "b", "c"], xy)
    for name in ("serving", "rsrp_dbm", "uplink_sinr_db", "downlink_sinr_db"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_the_loader_takes_a_number_or_a_list_and_names_a_bad_item():
    cfg = config_from_dict({"channel": {"rsu_tx_power_dbm": [30, 33.5], "rsu_bandwidth_hz": "1e7"}})
    assert cfg.channel.rsu_tx_power_dbm == [30.0, 33.5] and cfg.channel.rsu_bandwidth_hz == 1e7
    with pytest.raises(ConfigError, match=r"field 'channel.rsu_tx_power_dbm\[1\]': expected a finite number of dBm"):
        config_from_dict({"channel": {"rsu_tx_power_dbm": [30, 300]}}, "exp.yaml")
    with pytest.raises(ConfigError, match=r"field 'channel.rsu_noise_figure_db': expected .*, or a list of them, got 'x'"):
        config_from_dict({"channel": {"rsu_noise_figure_db": "x"}}, "exp.yaml")


def one_line(capfd) -> str:
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_set_takes_a_list_and_a_wrong_length_is_one_line_at_build(tmp_path, capfd, shared_data_dir):
    from iovsim.cli import main

    task = {"name": "bbc", "dataset": "bbc_news", "max_samples": 200, "test_samples": 40, "max_length": 24}
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(**{"fl.tasks": [task], "mobility.warmup_s": 20, "fl.rounds": 1})))
    # The command: a list for six RSUs passes the fields (it exited 2 before) ...
    assert main(["check", str(cfg), "--no-build", "--quiet", "--set", "channel.rsu_tx_power_dbm=[30,30,30,30,30,30]"]) == 0
    # ... and the build, which knows how many RSUs were placed (rsu.count 5 at most), names the field.
    assert main(["check", str(cfg), "--quiet", "--set", "channel.rsu_tx_power_dbm=[30,30,30,30,30,30]"]) == 2
    line = one_line(capfd)
    assert str(cfg) in line and "channel.rsu_tx_power_dbm" in line and "got 6 entries" in line, line
    placed = int(re.search(r"a list of (\d+) \(one per RSU placed\)", line).group(1))
    powers = "[" + ",".join(["36"] + ["30"] * (placed - 1)) + "]"
    assert main(["check", str(cfg), "--quiet", "--set", f"channel.rsu_tx_power_dbm={powers}"]) == 0, capfd.readouterr().err


def test_edge_flops_per_rsu_list_is_checked_at_build(tmp_path, capfd, shared_data_dir):
    from iovsim.cli import main

    task = {"name": "bbc", "dataset": "bbc_news", "max_samples": 200, "test_samples": 40, "max_length": 24}
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(**{"fl.tasks": [task], "mobility.warmup_s": 20, "fl.rounds": 1})))
    assert main(["check", str(cfg), "--quiet", "--set", "rsu.edge_flops_per_s=[1e13,1e13,1e13,1e13,1e13,1e13,1e13]"]) == 2
    line = one_line(capfd)
    assert str(cfg) in line and "rsu.edge_flops_per_s" in line and "got 7 entries" in line, line
    assert main(["check", str(cfg), "--no-build", "--quiet", "--set", "rsu.edge_flops_per_s=[1e13,-1]"]) == 2
    line = one_line(capfd)
    assert "rsu.edge_flops_per_s[1]" in line, line
