"""Path loss, LOS probability and shadow-fading parameters (3GPP TR 38.901, TR 37.885, Friis).

All functions take numpy arrays (any shape, broadcast) in SI units and return dB or probabilities.
Distances below the tables' minimum are clamped to it (TR 38.901 is defined from d2D = 10 m).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

C_MPS = 299_792_458.0
#: TR 38.901 Note 1 of Table 7.4.1-1 takes c = 3.0e8 m/s in the breakpoint distance.
C_3GPP_MPS = 3.0e8
#: h_E, the effective environment height of TR 38.901 Note 1 (1 m for UMi; 1 m for UMa when h_UT < 13 m).
EFFECTIVE_ENV_HEIGHT_M = 1.0
MIN_D2D_M = 10.0

#: TR 38.901 Table 7.4.1-1 shadow-fading standard deviations (dB): model -> (LOS, NLOS).
SHADOW_STD_DB = {"umi": (4.0, 7.82), "uma": (4.0, 6.0), "freespace": (0.0, 0.0)}
#: TR 38.901 Table 7.5-6 SF correlation distances in the horizontal plane (m): model -> (LOS, NLOS).
SHADOW_DECORRELATION_M = {"umi": (10.0, 13.0), "uma": (37.0, 50.0), "freespace": (10.0, 13.0)}


def breakpoint_distance_m(carrier_frequency_hz, h_bs_m, h_ut_m, h_e_m: float = EFFECTIVE_ENV_HEIGHT_M):
    """d'_BP = 4 h'_BS h'_UT f_c / c with h' = h - h_E (TR 38.901 Table 7.4.1-1, Note 1)."""
    return 4.0 * (np.asarray(h_bs_m) - h_e_m) * (np.asarray(h_ut_m) - h_e_m) * carrier_frequency_hz / C_3GPP_MPS


@dataclass(frozen=True)
class LogDistanceModel:
    """TR 38.901 Table 7.4.1-1 path loss of one model as straight lines in log10(d3D), the only place
    its constants are written: PL = a + b log10(d3D) for LOS before (`los_near`) and beyond
    (`los_far`) the breakpoint d'_BP, and PL'_NLOS; PL_NLOS = max(PL_LOS, PL'_NLOS). Freespace
    (Friis) uses one line for all three. Heights may be arrays (one entry per RSU)."""

    model: str
    los_near: tuple
    los_far: tuple
    nlos: tuple
    breakpoint_m: Any
    height_diff_sq_m2: Any

    def los_nlos_db(self, d2d_m):
        """(PL_LOS, PL_NLOS) in dB at horizontal distances `d2d_m` (broadcast against the heights)."""
        d2d = np.asarray(d2d_m, dtype=float)
        if self.model == "freespace":
            d3 = np.maximum(np.sqrt(d2d * d2d + self.height_diff_sq_m2), 1.0)
            pl = self.los_near[0] + 20.0 * np.log10(d3)
            return pl, pl
        d2 = np.maximum(d2d, MIN_D2D_M)
        lg = np.log10(d2 * d2 + self.height_diff_sq_m2) * 0.5  # log10(d3D)
        pl_los = np.where(d2 <= self.breakpoint_m, self.los_near[0] + self.los_near[1] * lg,
                          self.los_far[0] + self.los_far[1] * lg)
        pl_nlos = np.maximum(pl_los, self.nlos[0] + self.nlos[1] * lg)
        return pl_los, pl_nlos


def log_distance_model(model: str, carrier_frequency_hz, h_bs_m, h_ut_m) -> LogDistanceModel:
    """The constants of `model` (umi, uma, freespace) at a carrier frequency and antenna heights."""
    fc = carrier_frequency_hz / 1e9
    h_bs = np.asarray(h_bs_m, dtype=float) if np.ndim(h_bs_m) else float(h_bs_m)
    dh2 = (h_bs - h_ut_m) ** 2
    dbp = breakpoint_distance_m(carrier_frequency_hz, h_bs, h_ut_m)
    lf = 20 * np.log10(fc)
    if model == "umi":
        los1 = (32.4 + lf, 21.0)
        los2 = (32.4 + lf - 9.5 * np.log10(dbp ** 2 + dh2), 40.0)
        nlos = (22.4 + 21.3 * np.log10(fc) - 0.3 * (h_ut_m - 1.5), 35.3)
    elif model == "uma":
        los1 = (28.0 + lf, 22.0)
        los2 = (28.0 + lf - 9.0 * np.log10(dbp ** 2 + dh2), 40.0)
        nlos = (13.54 + lf - 0.6 * (h_ut_m - 1.5), 39.08)
    elif model == "freespace":
        los1 = los2 = nlos = (20 * np.log10(4 * np.pi * carrier_frequency_hz / C_MPS), 20.0)
    else:
        raise ValueError(f"unknown path loss model {model!r}")
    return LogDistanceModel(model, los1, los2, nlos, dbp, dh2)


def freespace_db(d3d_m, carrier_frequency_hz):
    """Friis free-space loss 20 log10(4 pi d f / c), d3D >= 1 m."""
    m = log_distance_model("freespace", carrier_frequency_hz, 0.0, 0.0)
    return m.los_nlos_db(d3d_m)[0]


def umi_los_db(d2d_m, carrier_frequency_hz, h_bs_m=10.0, h_ut_m=1.5):
    """UMi-Street Canyon LOS (TR 38.901 Table 7.4.1-1): PL1 up to d'_BP, PL2 beyond."""
    return log_distance_model("umi", carrier_frequency_hz, h_bs_m, h_ut_m).los_nlos_db(d2d_m)[0]


def umi_nlos_db(d2d_m, carrier_frequency_hz, h_bs_m=10.0, h_ut_m=1.5):
    """UMi-Street Canyon NLOS: max(PL_LOS, PL'_NLOS), PL'_NLOS = 35.3 log10 d3D + 22.4 + 21.3 log10 fc - 0.3 (h_UT - 1.5)."""
    return log_distance_model("umi", carrier_frequency_hz, h_bs_m, h_ut_m).los_nlos_db(d2d_m)[1]


def uma_los_db(d2d_m, carrier_frequency_hz, h_bs_m=25.0, h_ut_m=1.5):
    """UMa LOS (TR 38.901 Table 7.4.1-1): 28.0 + 22 log10 d3D + 20 log10 fc, 40 log10 beyond d'_BP."""
    return log_distance_model("uma", carrier_frequency_hz, h_bs_m, h_ut_m).los_nlos_db(d2d_m)[0]


def uma_nlos_db(d2d_m, carrier_frequency_hz, h_bs_m=25.0, h_ut_m=1.5):
    """UMa NLOS: max(PL_LOS, PL'_NLOS), PL'_NLOS = 13.54 + 39.08 log10 d3D + 20 log10 fc - 0.6 (h_UT - 1.5)."""
    return log_distance_model("uma", carrier_frequency_hz, h_bs_m, h_ut_m).los_nlos_db(d2d_m)[1]


def los_probability(model: str, d2d_m, h_ut_m=1.5):
    """LOS probability of TR 38.901 Table 7.4.2-1 (outdoor UT). Freespace is always LOS."""
    d = np.maximum(np.asarray(d2d_m, dtype=float), 1e-9)
    if model == "freespace":
        return np.ones_like(d)
    if model == "umi":
        p = 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d)
    elif model == "uma":
        c = 0.0 if h_ut_m <= 13.0 else ((h_ut_m - 13.0) / 10.0) ** 1.5
        p = (18.0 / d + np.exp(-d / 63.0) * (1.0 - 18.0 / d)) * (1.0 + c * 1.25 * (d / 100.0) ** 3 * np.exp(-d / 150.0))
    else:
        raise ValueError(f"unknown path loss model {model!r}")
    return np.where(d <= 18.0, 1.0, np.minimum(p, 1.0))


def pathloss_db(model: str, d2d_m, carrier_frequency_hz, h_bs_m, h_ut_m, los):
    """Path loss of `model` (umi, uma, freespace) for a LOS state: bool array, or a LOS probability
    in [0, 1] (float array) giving the probability-weighted loss in dB."""
    pl_los, pl_nlos = log_distance_model(model, carrier_frequency_hz, h_bs_m, h_ut_m).los_nlos_db(d2d_m)
    los = np.asarray(los)
    if los.dtype == bool:
        return np.where(los, pl_los, pl_nlos)
    return los * pl_los + (1.0 - los) * pl_nlos


# ---------------------------------------------------------------- vehicle-to-vehicle (TR 37.885)
#: TR 37.885 V15.3.0 Table 6.2.1-1 shadow-fading standard deviation (dB): LOS 3, NLOSv 3, NLOS 4.
V2V_SHADOW_STD_DB = {"los": 3.0, "nlosv": 3.0, "nlos": 4.0}
#: V2V shadowing correlation distance (m) per state, as ns-3's ThreeGppV2v*PropagationLossModel
#: implements TR 37.885 (LOS 10 m, NLOSv and NLOS 13 m).
V2V_DECORRELATION_M = {"los": 10.0, "nlosv": 13.0, "nlos": 13.0}
#: Vehicle antenna height for V2V links in TR 37.885 evaluations (m), and the blocker heights
#: (types 1/2: 1.6 m, type 3 trucks: 3 m).
V2V_ANTENNA_HEIGHT_M = 1.6


def v2v_los_db(scenario: str, d3d_m, carrier_frequency_hz):
    """V2V LOS path loss (TR 37.885 Table 6.2.1-1): highway 32.4 + 20 log10 d + 20 log10 fc;
    urban 38.77 + 16.7 log10 d + 18.2 log10 fc (d in m, fc in GHz)."""
    d = np.maximum(np.asarray(d3d_m, dtype=float), 1.0)
    fc = carrier_frequency_hz / 1e9
    if scenario == "highway":
        return 32.4 + 20.0 * np.log10(d) + 20.0 * np.log10(fc)
    if scenario == "urban":
        return 38.77 + 16.7 * np.log10(d) + 18.2 * np.log10(fc)
    raise ValueError(f"unknown V2V scenario {scenario!r} (highway or urban)")


def v2v_nlos_db(d3d_m, carrier_frequency_hz):
    """V2V NLOS (blocked by buildings; TR 37.885 Table 6.2.1-1): 36.85 + 30 log10 d + 18.9 log10 fc."""
    d = np.maximum(np.asarray(d3d_m, dtype=float), 1.0)
    return 36.85 + 30.0 * np.log10(d) + 18.9 * np.log10(carrier_frequency_hz / 1e9)


def v2v_los_probability(scenario: str, d2d_m):
    """V2V LOS probability (TR 37.885 Table 6.2.1-2); the complement is NLOSv (blocked by vehicles).

    highway: min(1, 2.1013e-6 d^2 - 0.002 d + 1.0193) up to 475 m, max(0, 0.54 - 0.001 (d - 475))
    beyond; urban: min(1, 1.05 exp(-0.0114 d)) (NLOS behind buildings comes from the geometry).
    """
    d = np.asarray(d2d_m, dtype=float)
    if scenario == "highway":
        near = np.minimum(1.0, 2.1013e-6 * d * d - 0.002 * d + 1.0193)
        far = np.maximum(0.0, 0.54 - 0.001 * (d - 475.0))
        return np.where(d <= 475.0, near, far)
    if scenario == "urban":
        return np.minimum(1.0, 1.05 * np.exp(-0.0114 * d))
    raise ValueError(f"unknown V2V scenario {scenario!r} (highway or urban)")


def v2v_blockage_loss_db(d3d_m, h_tx_m=V2V_ANTENNA_HEIGHT_M, h_rx_m=V2V_ANTENNA_HEIGHT_M,
                         blocker_height_m=1.6, rng=None):
    """Additional NLOSv vehicle-blockage loss (TR 37.885 §6.2.1): 0 dB when both antennas are above
    the blocker; else max(0, X) with X log-normal of mean mu and std sigma, mu = 9 + max(0, 15 log10 d
    - 41), sigma = 4.5 dB when both are below it, mu = 5 + max(0, 15 log10 d - 41), sigma = 4 dB
    otherwise. Without `rng` the mean mu is returned."""
    d = np.maximum(np.asarray(d3d_m, dtype=float), 1.0)
    extra = np.maximum(0.0, 15.0 * np.log10(d) - 41.0)
    if min(h_tx_m, h_rx_m) > blocker_height_m:
        return np.zeros_like(d)
    if max(h_tx_m, h_rx_m) < blocker_height_m:
        mu, sigma = 9.0 + extra, 4.5
    else:
        mu, sigma = 5.0 + extra, 4.0
    if rng is None:
        return mu
    s2 = np.log(1.0 + sigma ** 2 / mu ** 2)
    x = np.exp(np.log(mu) - 0.5 * s2 + np.sqrt(s2) * rng.standard_normal(np.shape(d)))
    return np.maximum(0.0, x)


def v2v_pathloss_db(scenario: str, d3d_m, carrier_frequency_hz, state="los", rng=None,
                    h_tx_m=V2V_ANTENNA_HEIGHT_M, h_rx_m=V2V_ANTENNA_HEIGHT_M, blocker_height_m=1.6):
    """V2V path loss (TR 37.885 Table 6.2.1-1) for a state: `los`, `nlosv` (LOS loss plus the
    vehicle-blockage loss) or `nlos` (buildings; urban)."""
    d = np.asarray(d3d_m, dtype=float)
    if state == "los":
        return v2v_los_db(scenario, d, carrier_frequency_hz)
    if state == "nlosv":
        return v2v_los_db(scenario, d, carrier_frequency_hz) + v2v_blockage_loss_db(d, h_tx_m, h_rx_m, blocker_height_m, rng)
    if state == "nlos":
        return v2v_nlos_db(d, carrier_frequency_hz)
    raise ValueError(f"unknown V2V state {state!r} (los, nlosv or nlos)")
