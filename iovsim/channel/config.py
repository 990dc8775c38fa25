"""Configuration of the radio channel and of the vehicles' compute devices.

Every default names its source. TR 38.901 = 3GPP TR 38.901 V17 "Study on channel model for
frequencies from 0.5 to 100 GHz"; TR 37.885 = 3GPP TR 37.885 V15 "Study on evaluation methodology of
new V2X use cases for LTE and NR"; TS 38.331/38.214 = NR RRC / physical layer procedures for data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

# The choices are the Literal types; the config loader checks them, code reads the tuples.
PathlossModel = Literal["umi", "uma", "freespace"]
LosModel = Literal["stochastic", "expected", "los", "nlos"]
BandwidthAllocation = Literal["equal", "proportional", "minmax"]
PATHLOSS_MODELS = get_args(PathlossModel)
LOS_MODELS = get_args(LosModel)
BANDWIDTH_ALLOCATIONS = get_args(BandwidthAllocation)


@dataclass
class ChannelConfig:
    pathloss_model: PathlossModel = "umi"
    """Vehicle-to-RSU path loss: `umi` (3GPP TR 38.901 Table 7.4.1-1 UMi-Street Canyon), `uma`
    (same table, UMa), or `freespace` (Friis, a reference)."""
    carrier_frequency_hz: float = 5.9e9
    """Carrier frequency (ITS band, 5.9 GHz; ETSI EN 302 571 / TR 37.885 V2X evaluations)."""
    los_model: LosModel = "stochastic"
    """How the LOS/NLOS state of a link is chosen: `stochastic` (drawn from the LOS probability of
    TR 38.901 Table 7.4.2-1 with a spatially consistent uniform variable per link, §7.6.3.3),
    `expected` (path loss in dB weighted by the LOS probability, deterministic), `los` or `nlos`
    (every link forced)."""
    los_correlation_distance_m: float = 50.0
    """Distance over which a link's LOS/NLOS state decorrelates along the vehicle's path
    (TR 38.901 Table 7.6.3.1-2, LOS/NLOS state: UMi 50 m, UMa 50 m)."""
    shadowing: bool = True
    """Log-normal shadow fading with the standard deviation of TR 38.901 Table 7.4.1-1
    (UMi LOS 4 dB, NLOS 7.82 dB; UMa LOS 4 dB, NLOS 6 dB; none for freespace)."""
    shadowing_std_db: float = 0.0
    """Override of the shadow-fading standard deviation (0 = the table's value for the LOS state)."""
    shadowing_decorrelation_m: float = 0.0
    """Shadow-fading decorrelation distance along a vehicle's path; the correlation at distance d
    is exp(-d / d_corr) (Gudmundson 1991). 0 = TR 38.901 Table 7.5-6 (SF correlation distance:
    UMi LOS 10 m, NLOS 13 m; UMa LOS 37 m, NLOS 50 m; freespace uses the UMi values)."""
    vehicle_height_m: float = 1.5
    """Vehicle antenna height (TR 38.901 UT height 1.5 m)."""
    vehicle_tx_power_dbm: float = 23.0
    """Default vehicle uplink transmit power (a strategy may set it per vehicle, up to the max)."""
    vehicle_max_tx_power_dbm: float = 23.0
    """Upper bound of the vehicle transmit power (3GPP power class 3: 23 dBm, TS 38.101-1)."""
    vehicle_noise_figure_db: float = 9.0
    """Receiver noise figure at the vehicle (downlink; TR 38.901/TR 36.814 UE noise figure 9 dB)."""
    noise_psd_dbm_hz: float = -174.0
    """Thermal noise power spectral density (kT at 290 K)."""
    min_rsrp_dbm: float = -110.0
    """Below this RSRP a vehicle is not connected to any RSU (a common LTE/NR cell-edge level;
    RSRP here is wideband, see `rsrp_per_resource_element`)."""
    rsrp_per_resource_element: bool = False
    """False: RSRP = RSU transmit power - path loss (wideband received power, the usual
    system-level simplification). True: per resource element as TS 38.215 defines it (the transmit
    power spread over bandwidth / subcarrier spacing subcarriers, ~31 dB lower at 20 MHz / 15 kHz)."""
    subcarrier_spacing_hz: float = 15e3
    """Subcarrier spacing for per-resource-element RSRP (NR numerology 0, TS 38.211)."""
    handover_hysteresis_db: float = 0.0
    """A3-event hysteresis (TS 38.331 `hysteresis`): a neighbour must be this much stronger than
    the serving RSU. 0 = strongest-RSRP association (v0 behaviour); 3 dB is a typical setting."""
    handover_offset_db: float = 0.0
    """A3 offset (TS 38.331 `a3-Offset`), added to the hysteresis."""
    time_to_trigger_s: float = 0.0
    """A3 time-to-trigger (TS 38.331 `timeToTrigger`, 0..5.12 s): the A3 condition must hold this
    long before the handover. 0 = immediate (v0 behaviour); 0.16-0.48 s are typical settings. It is
    checked once per SUMO step, so it is rounded up to whole steps."""
    rsrp_filter_k: int = 0
    """Layer-3 RSRP filter coefficient k (TS 38.331 `filterCoefficient`, a = 1/2^(k/4)), applied
    once per step to the measurements used for handover. 0 = no filtering; fc4 is the RRC default."""
    ping_pong_window_s: float = 1.0
    """A handover A->B followed by B->A within this time counts as a ping-pong (minimum
    time-of-stay 1 s, 3GPP TR 36.839 §5.2.2; vehicular studies often use up to 5 s)."""
    frequency_reuse: int = 1
    """Number of orthogonal channels RSUs are spread over (reuse-K). 1 = every RSU co-channel,
    the worst case for interference (TR 36.814 / TR 38.901 system-level evaluations assume reuse 1).
    With K > 1 each RSU keeps its full bandwidth on its own channel; groups are assigned greedily
    so that nearby RSUs differ, unless `reuse_groups` is given."""
    reuse_groups: list[int] = field(default_factory=list)
    """Explicit channel group of each RSU (same order as the RSUs); empty = assigned from `frequency_reuse`."""
    interference: bool = True
    """Co-channel interference in the SINR (downlink from co-channel RSUs, uplink from vehicles
    served by co-channel RSUs). False = SNR only."""
    interference_load: float = 1.0
    """Fraction of resources on which an interferer transmits: every co-channel RSU (downlink), one
    vehicle of every loaded co-channel cell (uplink). 1 = full buffer, the 3GPP system-level assumption."""
    snr_gap_db: float = 0.0
    """SNR gap to capacity: rate = B log2(1 + SINR / gap). 0 dB = Shannon; ~3-6 dB for practical
    modulation and coding (Cioffi's gap approximation)."""
    max_spectral_efficiency_bps_hz: float = 7.4063
    """Cap on the spectral efficiency: the highest entry of TS 38.214 Table 5.2.2.1-3 (CQI 15,
    256QAM, code rate 948/1024: 7.4063 bit/s/Hz). 0 = no cap."""
    min_sinr_db: float = -10.0
    """Below this SINR the link carries nothing (rate 0). The lowest CQI of TS 38.214 Table 5.2.2.1-2
    (QPSK, code rate 78/1024, 0.15 bit/s/Hz) needs roughly -6.7 dB; -10 dB leaves room for repetition."""
    bandwidth_allocation: BandwidthAllocation = "equal"
    """How an RSU shares its uplink bandwidth among its participants: `equal`, `proportional`
    (to the bits each uploads), or `minmax` (minimises the largest upload time, bisection)."""

    def validate(self, err):
        if not 0.5e9 <= self.carrier_frequency_hz <= 100e9:
            err("carrier_frequency_hz", f"expected 0.5e9..100e9 Hz (TR 38.901 range), got {self.carrier_frequency_hz:g}")
        if self.vehicle_tx_power_dbm > self.vehicle_max_tx_power_dbm:
            err("vehicle_tx_power_dbm", f"expected at most vehicle_max_tx_power_dbm ({self.vehicle_max_tx_power_dbm:g}), got {self.vehicle_tx_power_dbm:g}")
        for name in ("los_correlation_distance_m", "vehicle_height_m", "subcarrier_spacing_hz"):
            if getattr(self, name) <= 0:
                err(name, f"expected a positive number, got {getattr(self, name)}")
        for name in ("shadowing_std_db", "shadowing_decorrelation_m", "handover_hysteresis_db",
                     "time_to_trigger_s", "ping_pong_window_s", "snr_gap_db", "max_spectral_efficiency_bps_hz"):
            if getattr(self, name) < 0:
                err(name, f"expected a number >= 0, got {getattr(self, name)}")
        if self.rsrp_filter_k < 0:
            err("rsrp_filter_k", f"expected an integer >= 0, got {self.rsrp_filter_k}")
        if self.frequency_reuse < 1:
            err("frequency_reuse", f"expected an integer >= 1, got {self.frequency_reuse}")
        if any(g < 0 for g in self.reuse_groups):
            err("reuse_groups", "expected group numbers >= 0")
        if not 0 <= self.interference_load <= 1:
            err("interference_load", f"expected a fraction in [0, 1], got {self.interference_load}")


@dataclass
class DeviceTier:
    """A class of on-board computer. Compute time = FLOPs / flops_per_s; energy = power_w x time, or
    kappa x cycles x f^2 when `cpu_frequency_hz` and `kappa` are set (the CMOS dynamic-power model
    of Mao et al., IEEE JSAC 2016, used by Tran et al., INFOCOM 2019 for FL)."""

    name: str = "mid"
    """Tier name (logged per vehicle)."""
    share: float = 1.0
    """Fraction of the FL vehicles in this tier (shares sum to 1)."""
    flops_per_s: float = 2e11
    """Sustained training throughput of the on-board accelerator."""
    power_w: float = 15.0
    """Power drawn while training."""
    memory_bytes: float = 4e9
    """Accelerator memory available for training."""
    cpu_frequency_hz: float = 0.0
    """Clock frequency f for the kappa*C*f^2 energy model (0 = use power_w x time)."""
    kappa: float = 0.0
    """Effective switched capacitance of the chip (J/cycle/Hz^2); 1e-28 is the common value
    (Mao et al. 2016; Tran et al. 2019 use alpha/2 = 2e-28). 0 = use power_w x time."""
    cycles_per_flop: float = 0.0
    """Cycles per FLOP for the kappa model (0 = cpu_frequency_hz / flops_per_s, so that C / f equals
    the compute time)."""

    def validate(self, err):
        if not 0 <= self.share <= 1:
            err("share", f"expected a fraction in [0, 1], got {self.share}")
        if self.flops_per_s <= 0:
            err("flops_per_s", f"expected a positive FLOP/s, got {self.flops_per_s}")
        if self.power_w <= 0:
            err("power_w", f"expected a positive power in watts, got {self.power_w}")
        for name in ("cpu_frequency_hz", "kappa", "cycles_per_flop"):
            if getattr(self, name) < 0:
                err(name, f"expected a number >= 0, got {getattr(self, name)}")


def default_device_tiers() -> list[DeviceTier]:
    # Three tiers loosely matching automotive SoCs (entry ARM CPU, mid NPU, high-end GPU SoC).
    return [
        DeviceTier(name="low", share=0.3, flops_per_s=5e10, power_w=8.0, memory_bytes=2e9),
        DeviceTier(name="mid", share=0.4, flops_per_s=2e11, power_w=15.0, memory_bytes=4e9),
        DeviceTier(name="high", share=0.3, flops_per_s=1e12, power_w=40.0, memory_bytes=16e9),
    ]
