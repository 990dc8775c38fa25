"""Channel and device-tier configuration: defaults, validation, YAML-style loading."""
import pytest

from iovsim.channel.config import ChannelConfig
from iovsim.costs.tiers import DeviceTier, default_device_tiers
from iovsim.schema import field_problems


def _errors(obj):
    """Fields the config loader would reject: declared ranges/choices, then the cross-field rules."""
    out = [name for name, _ in field_problems(obj)]
    if hasattr(obj, "validate"):
        obj.validate(lambda field, msg: out.append(field))
    return out


def test_defaults_are_valid_and_keep_v0_behaviour():
    c = ChannelConfig()
    assert _errors(c) == []
    assert (c.pathloss_model, c.carrier_frequency_hz, c.shadowing) == ("umi", 5.9e9, True)
    assert (c.vehicle_tx_power_dbm, c.min_rsrp_dbm) == (23.0, -110.0)
    assert (c.handover_hysteresis_db, c.time_to_trigger_s, c.bandwidth_allocation) == (0.0, 0.0, "equal")
    assert all(_errors(t) == [] for t in default_device_tiers())


@pytest.mark.parametrize("field,value", [
    ("carrier_frequency_hz", 200e9), ("handover_hysteresis_db", -1.0), ("time_to_trigger_s", -0.1),
    ("frequency_reuse", 0), ("interference_load", 1.5), ("rsrp_filter_k", -1), ("snr_gap_db", -3.0),
    ("los_correlation_distance_m", 0.0), ("reuse_groups", [0, -1]), ("ping_pong_window_s", -1.0),
])
def test_invalid_values_are_named(field, value):
    assert field in _errors(ChannelConfig(**{field: value}))


@pytest.mark.parametrize("mode", ["equal", "proportional", "minmax"])
def test_bandwidth_allocation_modes_accepted(mode):
    assert _errors(ChannelConfig(bandwidth_allocation=mode)) == []


def test_device_tier_energy_fields():
    assert _errors(DeviceTier(cpu_frequency_hz=2e9, kappa=1e-28)) == []
    assert "kappa" in _errors(DeviceTier(kappa=-1.0))


def test_every_field_has_a_docstring_with_units_or_source():
    from iovsim.config import config_from_dict, field_docs

    docs = field_docs(ChannelConfig)
    assert len(docs) == len(ChannelConfig.__dataclass_fields__)
    assert all(d[2].strip() for d in docs)
    cfg = config_from_dict({"channel": {"handover_hysteresis_db": 3, "time_to_trigger_s": 0.32,
                                        "bandwidth_allocation": "minmax", "reuse_groups": [0, 1]}})
    assert cfg.channel.time_to_trigger_s == 0.32 and cfg.channel.reuse_groups == [0, 1]


def test_old_rsu_radio_keys_move_to_the_channel_section(tmp_path, caplog):
    import logging

    import yaml

    from iovsim.config import ConfigError, load_config

    p = tmp_path / "old.yaml"
    p.write_text(yaml.safe_dump({"rsu": {"count": 3, "bandwidth_hz": "1e7", "height_m": 12.0}}))
    with caplog.at_level(logging.WARNING, logger="iovsim.config"):
        cfg = load_config(p)
    assert cfg.channel.rsu_bandwidth_hz == 1e7 and cfg.channel.rsu_height_m == 12.0 and cfg.rsu.count == 3
    assert cfg.channel.rsu_tx_power_dbm == 30.0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and str(p) in lines[0]
    assert "rsu.bandwidth_hz -> channel.rsu_bandwidth_hz" in lines[0] and "rsu.height_m -> channel.rsu_height_m" in lines[0]
    # Setting both names is ambiguous.
    p.write_text(yaml.safe_dump({"rsu": {"height_m": 12.0}, "channel": {"rsu_height_m": 8.0}}))
    with pytest.raises(ConfigError, match="rsu.height_m"):
        load_config(p)


def test_deprecation_line_reaches_stderr_once(tmp_path):
    import subprocess
    import sys

    import yaml

    p = tmp_path / "old.yaml"
    p.write_text(yaml.safe_dump({"rsu": {"noise_figure_db": 7.0, "tx_power_dbm": 33.0}}))
    code = f"from iovsim.config import load_config; c = load_config({str(p)!r}).channel; print(c.rsu_noise_figure_db, c.rsu_tx_power_dbm)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["7.0", "33.0"]
    err = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and str(p) in err[0] and "rsu.noise_figure_db -> channel.rsu_noise_figure_db" in err[0]
