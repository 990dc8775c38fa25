"""Configuration of the radio channel: propagation, RSU radios, association/handover, rates.

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
FadingModel = Literal["none", "rayleigh", "rician"]
BlerModel = Literal["none", "table"]
PATHLOSS_MODELS = get_args(PathlossModel)
#: The radio fields that take one number for every RSU or a list with one per RSU.
PER_RSU_FIELDS = ("rsu_height_m", "rsu_tx_power_dbm", "rsu_bandwidth_hz", "rsu_noise_figure_db")
LOS_MODELS = get_args(LosModel)
BANDWIDTH_ALLOCATIONS = get_args(BandwidthAllocation)
FADING_MODELS = get_args(FadingModel)
BLER_MODELS = get_args(BlerModel)

# TS 38.214 Table 5.2.2.1-2 (4-bit CQI table 1, QPSK..64QAM): spectral efficiency of CQI 1..15, and the
# SINR at which each reaches 10 % BLER (SISO, AWGN; link-level values in common use with this table,
# the specification gives none). docs/channel.md, "Block errors and HARQ".
CQI_EFFICIENCY_BPS_HZ = [0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141, 2.4063, 2.7305,
                         3.3223, 3.9023, 4.5234, 5.1152, 5.5547]
CQI_SINR_DB = [-6.7, -4.7, -2.3, 0.2, 2.4, 4.3, 5.9, 8.1, 10.3, 11.7, 14.1, 16.3, 18.7, 21.0, 22.7]


@dataclass
class ChannelConfig:
    pathloss_model: PathlossModel = "umi"
    """Vehicle-to-RSU path loss: `umi` (3GPP TR 38.901 Table 7.4.1-1 UMi-Street Canyon), `uma`
    (same table, UMa), or `freespace` (Friis, a reference)."""
    carrier_frequency_hz: float = field(default=5.9e9, metadata={"ge": 0.5e9, "le": 100e9})
    """Carrier frequency (ITS band, 5.9 GHz; ETSI EN 302 571 / TR 37.885 V2X evaluations)."""
    los_model: LosModel = "stochastic"
    """How the LOS/NLOS state of a link is chosen: `stochastic` (drawn from the LOS probability of
    TR 38.901 Table 7.4.2-1 with a spatially consistent uniform variable per link, §7.6.3.3),
    `expected` (path loss in dB weighted by the LOS probability, deterministic), `los` or `nlos`
    (every link forced)."""
    los_correlation_distance_m: float = field(default=50.0, metadata={"gt": 0, "le": 1e6})
    """Distance over which a link's LOS/NLOS state decorrelates along the vehicle's path
    (TR 38.901 Table 7.6.3.1-2, LOS/NLOS state: UMi 50 m, UMa 50 m)."""
    shadowing: bool = True
    """Log-normal shadow fading with the standard deviation of TR 38.901 Table 7.4.1-1
    (UMi LOS 4 dB, NLOS 7.82 dB; UMa LOS 4 dB, NLOS 6 dB; none for freespace)."""
    shadowing_std_db: float = field(default=0.0, metadata={"ge": 0, "le": 50})
    """Override of the shadow-fading standard deviation (0 = the table's value for the LOS state)."""
    shadowing_decorrelation_m: float = field(default=0.0, metadata={"ge": 0, "le": 1e6})
    """Shadow-fading decorrelation distance along a vehicle's path; the correlation at distance d
    is exp(-d / d_corr) (Gudmundson 1991). 0 = TR 38.901 Table 7.5-6 (SF correlation distance:
    UMi LOS 10 m, NLOS 13 m; UMa LOS 37 m, NLOS 50 m; freespace uses the UMi values)."""
    # The four rsu_* radio fields take one number for every RSU or a list with one per placed RSU, in
    # the RSUs' order (rsus.csv of a run; the file's rows with placement `file`), like reuse_groups.
    rsu_height_m: float | list[float] = field(default=10.0, metadata={"gt": 0, "le": 1000})
    """RSU antenna height (3GPP TR 38.901 UMi: 10 m); one number, or a list with one per RSU."""
    rsu_tx_power_dbm: float | list[float] = field(default=30.0, metadata={"ge": -100, "le": 100})
    """RSU downlink transmit power; one number, or a list with one per RSU (in the RSUs' order, as in a
    run's rsus.csv; the number of RSUs is known once they are placed)."""
    rsu_bandwidth_hz: float | list[float] = field(default=20e6, metadata={"gt": 0, "le": 1e10})
    """Uplink bandwidth each RSU shares among its vehicles (a 20 MHz NR-V2X/ITS channel); one number,
    or a list with one per RSU."""
    rsu_noise_figure_db: float | list[float] = field(default=5.0, metadata={"ge": 0, "le": 100})
    """Receiver noise figure of the RSU; one number, or a list with one per RSU."""
    vehicle_height_m: float = field(default=1.5, metadata={"gt": 0, "le": 1000})
    """Vehicle antenna height (TR 38.901 UT height 1.5 m)."""
    vehicle_tx_power_dbm: float = field(default=23.0, metadata={"ge": -100, "le": 100})
    """Default vehicle uplink transmit power (a strategy may set it per vehicle, up to the max)."""
    vehicle_max_tx_power_dbm: float = field(default=23.0, metadata={"ge": -100, "le": 100})
    """Upper bound of the vehicle transmit power (3GPP power class 3: 23 dBm, TS 38.101-1)."""
    vehicle_noise_figure_db: float = field(default=9.0, metadata={"ge": 0, "le": 100})
    """Receiver noise figure at the vehicle (downlink; TR 38.901/TR 36.814 UE noise figure 9 dB)."""
    noise_psd_dbm_hz: float = field(default=-174.0, metadata={"ge": -300, "le": 0})
    """Thermal noise power spectral density (kT at 290 K)."""
    min_rsrp_dbm: float = field(default=-110.0, metadata={"ge": -300, "le": 100})
    """Below this RSRP a vehicle is not connected to any RSU (a common LTE/NR cell-edge level;
    RSRP here is wideband, see `rsrp_per_resource_element`)."""
    rsrp_per_resource_element: bool = False
    """False: RSRP = RSU transmit power - path loss (wideband received power, the usual
    system-level simplification). True: per resource element as TS 38.215 defines it (the transmit
    power spread over bandwidth / subcarrier spacing subcarriers, ~31 dB lower at 20 MHz / 15 kHz)."""
    subcarrier_spacing_hz: float = field(default=15e3, metadata={"gt": 0, "le": 1e7})
    """Subcarrier spacing for per-resource-element RSRP (NR numerology 0, TS 38.211)."""
    handover_hysteresis_db: float = field(default=0.0, metadata={"ge": 0, "le": 100})
    """A3-event hysteresis (TS 38.331 `hysteresis`): a neighbour must be this much stronger than
    the serving RSU. 0 = strongest-RSRP association (v0 behaviour); 3 dB is a typical setting."""
    handover_offset_db: float = field(default=0.0, metadata={"ge": -100, "le": 100})
    """A3 offset (TS 38.331 `a3-Offset`), added to the hysteresis."""
    time_to_trigger_s: float = field(default=0.0, metadata={"ge": 0, "le": 3600})
    """A3 time-to-trigger (TS 38.331 `timeToTrigger`, 0..5.12 s): the A3 condition must hold this
    long before the handover. 0 = immediate (v0 behaviour); 0.16-0.48 s are typical settings. It is
    checked once per SUMO step, so it is rounded up to whole steps."""
    rsrp_filter_k: int = field(default=0, metadata={"ge": 0, "le": 19})
    """Layer-3 RSRP filter coefficient k (TS 38.331 `filterCoefficient`, a = 1/2^(k/4)), applied
    once per step to the measurements used for handover. 0 = no filtering; fc4 is the RRC default."""
    ping_pong_window_s: float = field(default=1.0, metadata={"ge": 0, "le": 3600})
    """A handover A->B followed by B->A within this time counts as a ping-pong (minimum
    time-of-stay 1 s, 3GPP TR 36.839 §5.2.2; vehicular studies often use up to 5 s)."""
    frequency_reuse: int = field(default=1, metadata={"ge": 1, "le": 1000})
    """Number of orthogonal channels RSUs are spread over (reuse-K). 1 = every RSU co-channel,
    the worst case for interference (TR 36.814 / TR 38.901 system-level evaluations assume reuse 1).
    With K > 1 each RSU keeps its full bandwidth on its own channel; groups are assigned greedily
    so that nearby RSUs differ, unless `reuse_groups` is given."""
    reuse_groups: list[int] = field(default_factory=list, metadata={"ge": 0, "le": 1000})
    """Explicit channel group of each RSU (same order as the RSUs); empty = assigned from `frequency_reuse`."""
    interference: bool = True
    """Co-channel interference in the SINR (downlink from co-channel RSUs, uplink from vehicles
    served by co-channel RSUs). False = SNR only."""
    interference_load: float = field(default=1.0, metadata={"ge": 0, "le": 1})
    """Fraction of resources on which an interferer transmits: every co-channel RSU (downlink), one
    vehicle of every loaded co-channel cell (uplink). 1 = full buffer, the 3GPP system-level assumption."""
    snr_gap_db: float = field(default=0.0, metadata={"ge": 0, "le": 100})
    """SNR gap to capacity: rate = B log2(1 + SINR / gap). 0 dB = Shannon; ~3-6 dB for practical
    modulation and coding (Cioffi's gap approximation)."""
    max_spectral_efficiency_bps_hz: float = field(default=7.4063, metadata={"ge": 0, "le": 100})
    """Cap on the spectral efficiency: the highest entry of TS 38.214 Table 5.2.2.1-3 (CQI 15,
    256QAM, code rate 948/1024: 7.4063 bit/s/Hz). 0 = no cap."""
    min_sinr_db: float = field(default=-10.0, metadata={"ge": -100, "le": 100})
    """Below this SINR the link carries nothing (rate 0). The lowest CQI of TS 38.214 Table 5.2.2.1-2
    (QPSK, code rate 78/1024, 0.15 bit/s/Hz) needs roughly -6.7 dB; -10 dB leaves room for repetition."""
    bandwidth_allocation: BandwidthAllocation = "equal"
    """How an RSU shares its uplink bandwidth among its participants: `equal`, `proportional`
    (to the bits each uploads), or `minmax` (minimises the largest upload time, bisection)."""
    fading: FadingModel = "none"
    """Small-scale fading of each vehicle's serving link, drawn once per SUMO step: `none` (v0), `rayleigh`
    (every link), `rician` (LOS links Rician with `rician_k_db`, NLOS links Rayleigh). Time-correlated
    by Clarke's model, J0(2 pi d / wavelength) after the vehicle moved d (= J0(2 pi f_D dt)); uplink and
    downlink independent; a new serving RSU starts afresh. It multiplies the SINR of the transfer's
    rates, not the RSRP (docs/channel.md, "Small-scale fading")."""
    rician_k_db: float = field(default=9.0, metadata={"ge": -30, "le": 50})
    """Rician K-factor of LOS links with `fading: rician` (TR 38.901 Table 7.5-6, UMi LOS: mean 9 dB,
    sigma 5 dB; one fixed value here)."""
    bler: BlerModel = "none"
    """Block errors: `none` (v0: the rate is `snr_gap_db`'s Shannon rate) or `table`: the CQI of the SINR
    without fading (highest `mcs_sinr_db` below it, the 10 % BLER rule of TS 38.214 5.2.2.1) sets the
    spectral efficiency; each step's BLER at its faded SINR, with HARQ (`harq_max_tx`), lowers the rate
    to efficiency x (1 - residual BLER) / E[transmissions]. `snr_gap_db`, `max_spectral_efficiency_bps_hz`
    and `min_sinr_db` then do not apply (docs/channel.md, "Block errors and HARQ")."""
    mcs_sinr_db: list[float] = field(default_factory=lambda: list(CQI_SINR_DB), metadata={"ge": -50, "le": 100})
    """SINR at which each MCS of `bler: table` reaches 10 % BLER, increasing (default: CQI 1..15 of
    TS 38.214 Table 5.2.2.1-2, SISO AWGN link-level values)."""
    mcs_efficiency_bps_hz: list[float] = field(default_factory=lambda: list(CQI_EFFICIENCY_BPS_HZ),
                                               metadata={"gt": 0, "le": 100})
    """Spectral efficiency of each MCS of `bler: table`, increasing, one per `mcs_sinr_db` entry
    (default: TS 38.214 Table 5.2.2.1-2, 0.1523 .. 5.5547 bit/s/Hz)."""
    bler_waterfall_db: float = field(default=1.5, metadata={"gt": 0, "le": 100})
    """Width of the BLER curve: BLER falls from 90 % to 10 % over this many dB below an MCS's threshold
    (a logistic curve in dB; 1-2 dB is the waterfall of LDPC-coded blocks in AWGN)."""
    harq_max_tx: int = field(default=4, metadata={"ge": 1, "le": 32})
    """Transmissions of a block, the first one included, before HARQ gives up (TS 38.321 HARQ leaves
    the number to the scheduler; 4 is a common system-level setting). Retransmissions are
    chase-combined; 1 = no HARQ."""
    backhaul_latency_s: float = field(default=0.005, metadata={"ge": 0, "le": 10})
    """One-way RSU-to-RSU backhaul latency, paid when a `migrate` participant's serving RSU forwards
    its partial upload to the new one. 5 ms: the low end of 3GPP TR 36.932 Table 6.1-1's non-ideal
    fibre backhaul (fibre access 2: 5-10 ms one way)."""
    backhaul_rate_bps: float = field(default=1e9, metadata={"gt": 0, "le": 1e12})
    """RSU-to-RSU backhaul rate for forwarded uploads. 1 Gbit/s: the top of the same entry of
    TR 36.932 Table 6.1-1 (100-1000 Mbit/s), a common fibre or microwave link to a roadside unit."""

    def validate(self, err):
        # Ranges and choices are declared on the fields and checked by the config loader;
        # only the rule between two fields is checked here.
        if self.vehicle_tx_power_dbm > self.vehicle_max_tx_power_dbm:
            err("vehicle_tx_power_dbm", f"expected at most vehicle_max_tx_power_dbm ({self.vehicle_max_tx_power_dbm:g}), got {self.vehicle_tx_power_dbm:g}")
        self._validate_mcs_table(err)

    def _validate_mcs_table(self, err):
        """The MCS table of `bler: table`: one efficiency per threshold, both strictly increasing."""
        sinr, eff = self.mcs_sinr_db, self.mcs_efficiency_bps_hz
        if not sinr:
            err("mcs_sinr_db", "expected at least one MCS threshold, got an empty list")
        if len(eff) != len(sinr):
            err("mcs_efficiency_bps_hz", f"expected one entry per mcs_sinr_db entry ({len(sinr)}), got {len(eff)}")
        for name, values in (("mcs_sinr_db", sinr), ("mcs_efficiency_bps_hz", eff)):
            bad = [i for i in range(1, len(values)) if not values[i] > values[i - 1]]
            if bad:
                err(name, f"expected strictly increasing values, got {values[bad[0] - 1]:g} then {values[bad[0]]:g} "
                    f"at entries {bad[0] - 1} and {bad[0]}")
