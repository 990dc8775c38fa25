"""Configuration of the radio channel and of the vehicles' compute devices."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ChannelConfig:
    pathloss_model: str = "umi"
    """Vehicle-to-RSU path loss: `umi` (3GPP TR 38.901 UMi-Street Canyon), `uma`, or `freespace`."""
    carrier_frequency_hz: float = 5.9e9
    """Carrier frequency (ITS band, 5.9 GHz)."""
    shadowing: bool = True
    """Log-normal shadow fading with the standard deviation of TR 38.901 Table 7.4.1-1."""
    vehicle_height_m: float = 1.5
    """Vehicle antenna height (TR 38.901 UT height 1.5 m)."""
    vehicle_tx_power_dbm: float = 23.0
    """Default vehicle uplink transmit power (a strategy may set it per vehicle, up to the max)."""
    vehicle_max_tx_power_dbm: float = 23.0
    """Upper bound of the vehicle transmit power (3GPP power class 3: 23 dBm)."""
    vehicle_noise_figure_db: float = 9.0
    """Receiver noise figure at the vehicle (downlink)."""
    noise_psd_dbm_hz: float = -174.0
    """Thermal noise power spectral density."""
    min_rsrp_dbm: float = -110.0
    """Below this RSRP a vehicle is not connected to any RSU."""
    bandwidth_allocation: str = "equal"
    """How an RSU shares its bandwidth: `equal`."""

    def validate(self, err):
        if self.pathloss_model not in ("umi", "uma", "freespace"):
            err("pathloss_model", f"expected umi, uma or freespace, got {self.pathloss_model!r}")
        if not 0.5e9 <= self.carrier_frequency_hz <= 100e9:
            err("carrier_frequency_hz", f"expected 0.5e9..100e9 Hz (TR 38.901 range), got {self.carrier_frequency_hz:g}")
        if self.vehicle_tx_power_dbm > self.vehicle_max_tx_power_dbm:
            err("vehicle_tx_power_dbm", f"expected at most vehicle_max_tx_power_dbm ({self.vehicle_max_tx_power_dbm:g}), got {self.vehicle_tx_power_dbm:g}")
        if self.bandwidth_allocation not in ("equal",):
            err("bandwidth_allocation", f"expected equal, got {self.bandwidth_allocation!r}")


@dataclass
class DeviceTier:
    """A class of on-board computer. Compute time = FLOPs / flops_per_s; energy = power_w x time."""

    name: str = "mid"
    share: float = 1.0
    """Fraction of the FL vehicles in this tier (shares sum to 1)."""
    flops_per_s: float = 2e11
    """Sustained training throughput of the on-board accelerator."""
    power_w: float = 15.0
    """Power drawn while training."""
    memory_bytes: float = 4e9
    """Accelerator memory available for training."""

    def validate(self, err):
        if not 0 <= self.share <= 1:
            err("share", f"expected a fraction in [0, 1], got {self.share}")
        if self.flops_per_s <= 0:
            err("flops_per_s", f"expected a positive FLOP/s, got {self.flops_per_s}")
        if self.power_w <= 0:
            err("power_w", f"expected a positive power in watts, got {self.power_w}")


def default_device_tiers() -> list[DeviceTier]:
    # Three tiers loosely matching automotive SoCs (entry ARM CPU, mid NPU, high-end GPU SoC).
    return [
        DeviceTier(name="low", share=0.3, flops_per_s=5e10, power_w=8.0, memory_bytes=2e9),
        DeviceTier(name="mid", share=0.4, flops_per_s=2e11, power_w=15.0, memory_bytes=4e9),
        DeviceTier(name="high", share=0.3, flops_per_s=1e12, power_w=40.0, memory_bytes=16e9),
    ]
