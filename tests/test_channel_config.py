"""Channel and device-tier configuration: defaults, validation, YAML-style loading."""
import pytest

from iovsim.channel.config import ChannelConfig, DeviceTier, default_device_tiers


def _errors(obj):
    out = []
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
