"""Block errors and HARQ (`channel.bler: table`): the rate a link carries from an MCS table, a BLER
curve per MCS and chase-combined HARQ retransmissions.

Per step and vehicle, with mean SINR g (path loss, shadowing, interference; no fast fading) and the
step's SINR x = g |h|^2 (`iovsim.channel.fading`; x = g without fading):

1. Link adaptation: MCS m = the highest with threshold theta_m <= g (dB), theta_m the SINR of 10 %
   BLER, so the chosen MCS meets the CQI rule of TS 38.214 5.2.2.1 (BLER <= 0.1) at the mean SINR.
   The mean, not x: CQI reports come every few ms and the coherence time at vehicular speed is
   ~1.5 ms, so link adaptation cannot follow fast fading. None (g below theta_1): the step carries 0.
2. BLER of one transmission at SINR y (dB): p_m(y) = 1 / (1 + 9 exp(a (y - theta_m))), a logistic
   curve in dB with p_m(theta_m) = 0.1 and a = 2 ln 9 / `bler_waterfall_db` (90 % -> 10 % over that width).
3. HARQ with chase combining (Chase 1985): after k transmissions the receiver holds k x;
   q_k = p_m(x_dB + 10 log10 k) is the probability that the block is still not decoded (q_0 = 1).
   Up to H = `harq_max_tx` transmissions (TS 38.321): E[transmissions] = sum_{k<H} q_k, residual
   BLER = q_H.
4. Goodput = bandwidth x eta_m x (1 - q_H) / E[transmissions]. A block lost after H transmissions is
   sent again by RLC (acknowledged mode, TS 38.322), as new data: the loss costs throughput, nothing
   is dropped from the update.

A step holds hundreds of slots, so the fraction of blocks in error is taken at its expectation:
this part draws nothing. All HARQ copies of a step see that step's fading (block fading per step).
"""
from __future__ import annotations

import math

import numpy as np

LN9 = math.log(9.0)  # p(theta) = 1 / (1 + 9) = the 10 % BLER of the thresholds


class BlockErrors:
    """The MCS table, BLER curves and HARQ of `channel.bler: table` (module docstring)."""

    def __init__(self, mcs_sinr_db, mcs_efficiency_bps_hz, waterfall_db: float, harq_max_tx: int, fused: bool = False):
        """`fused`: `goodput_bps` as a compiled loop after its logarithms (`fused_bler`, the same goodput)."""
        self.fused = fused
        self.threshold_db = np.asarray(mcs_sinr_db, dtype=float)
        self.efficiency_bps_hz = np.asarray(mcs_efficiency_bps_hz, dtype=float)
        self.slope_per_db = 2.0 * LN9 / float(waterfall_db)
        self.harq_max_tx = int(harq_max_tx)

    @classmethod
    def from_config(cls, cfg, fused: bool = False) -> "BlockErrors":
        return cls(cfg.mcs_sinr_db, cfg.mcs_efficiency_bps_hz, cfg.bler_waterfall_db, cfg.harq_max_tx, fused)

    def mcs(self, mean_sinr) -> np.ndarray:
        """Index of the highest MCS whose threshold is at most the mean SINR (linear); -1 = none."""
        with np.errstate(divide="ignore"):
            db = 10.0 * np.log10(np.asarray(mean_sinr, dtype=float))
        return np.searchsorted(self.threshold_db, db, side="right") - 1

    def bler(self, sinr_db, mcs) -> np.ndarray:
        """BLER of one transmission of MCS `mcs` (>= 0) at `sinr_db`."""
        from scipy.special import expit

        theta = self.threshold_db[np.maximum(np.asarray(mcs, dtype=int), 0)]
        return expit(-(self.slope_per_db * (np.asarray(sinr_db, dtype=float) - theta) + LN9))

    def harq(self, sinr_db, mcs) -> tuple[np.ndarray, np.ndarray]:
        """(E[transmissions], residual BLER) of a block of MCS `mcs` sent at `sinr_db`, chase-combined."""
        sinr_db = np.asarray(sinr_db, dtype=float)
        expected = np.zeros(sinr_db.shape)
        q = np.ones(sinr_db.shape)
        for k in range(1, self.harq_max_tx + 1):
            expected += q
            q = self.bler(sinr_db + 10.0 * math.log10(k), mcs)
        return expected, q

    def goodput_bps(self, bandwidth_hz, mean_sinr, sinr) -> np.ndarray:
        """bandwidth x eta_m x (1 - residual BLER) / E[transmissions], MCS m from `mean_sinr`, errors at
        `sinr` (both linear); 0 where no MCS fits or the SINR is 0 (not connected)."""
        if self.fused:
            return self._goodput_fused(bandwidth_hz, mean_sinr, sinr)
        m = self.mcs(mean_sinr)
        with np.errstate(divide="ignore"):
            x_db = 10.0 * np.log10(np.asarray(sinr, dtype=float))
        expected, residual = self.harq(x_db, m)
        eta = self.efficiency_bps_hz[np.maximum(m, 0)]
        return np.where(m >= 0, np.asarray(bandwidth_hz, dtype=float) * eta * (1.0 - residual) / expected, 0.0)

    def _goodput_fused(self, bandwidth_hz, mean_sinr, sinr) -> np.ndarray:
        """`goodput_bps`: numpy's two logarithms, then one compiled loop (`fused_bler.goodput`)."""
        from iovsim.channel.fused_bler import goodput

        mean_sinr, sinr = np.broadcast_arrays(np.asarray(mean_sinr, dtype=float), np.asarray(sinr, dtype=float))
        with np.errstate(divide="ignore"):
            mean_db, x_db = 10.0 * np.log10(mean_sinr), 10.0 * np.log10(sinr)
        bw = np.broadcast_to(np.asarray(bandwidth_hz, dtype=float), mean_db.shape)
        out = np.empty(mean_db.shape)
        harq_db = np.array([10.0 * math.log10(k) for k in range(1, self.harq_max_tx + 1)])
        goodput(mean_db.ravel(), x_db.ravel(), bw.ravel(), self.threshold_db, self.efficiency_bps_hz,
                self.slope_per_db, LN9, harq_db, out.reshape(-1))
        return out
