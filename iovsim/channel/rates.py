"""SINR and rates: per-RSU radio parameters, co-channel interference, Shannon rates with a gap and cap
(or, with `bler: table`, MCS rates lowered by block errors and HARQ).

A rate is the mean one by default (path loss, shadowing, interference: what strategies plan with);
`instantaneous=True` multiplies the serving link's SINR by the step's small-scale fading gain
(`LinkState.uplink_fading` / `downlink_fading`), the rate a transfer drains at."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iovsim.channel import fused as fz
from iovsim.channel.bler import BlockErrors
from iovsim.channel.config import ChannelConfig
from iovsim.channel.buffers import WorkBuffers
from iovsim.channel.state import LinkState
from iovsim.channel.units import dbm_to_w


def assign_reuse_groups(rsu_xy_m: np.ndarray, reuse: int) -> np.ndarray:
    """Greedy reuse-K colouring: each RSU takes the channel whose nearest user is farthest away."""
    m = len(rsu_xy_m)
    groups = np.zeros(m, dtype=int)
    if reuse <= 1 or m == 0:
        return groups
    d = np.hypot(*(rsu_xy_m[:, None, :] - rsu_xy_m[None, :, :]).transpose(2, 0, 1))
    groups[:] = -1
    for i in range(m):  # once at construction, M is small
        best, best_d = 0, -1.0
        for g in range(reuse):
            members = np.flatnonzero(groups == g)
            dmin = math.inf if members.size == 0 else float(d[i, members].min())
            if dmin > best_d:
                best, best_d = g, dmin
        groups[i] = best
    return groups


class Radio:
    """The RSUs' radios (the `channel.rsu_*` settings, one entry per RSU) and the link budget on top of
    the path loss: interference, SINR and rates."""

    def __init__(self, cfg: ChannelConfig, rsu_xy_m: np.ndarray, fused: bool = False):
        self.cfg = cfg
        m = self.num_rsus = len(rsu_xy_m)

        def per_rsu(name):
            value = np.asarray(getattr(cfg, name), dtype=float)
            if value.ndim and value.size != m:
                raise ValueError(f"channel.{name} has {value.size} entries for {m} RSUs")
            return np.broadcast_to(value, (m,)).copy()

        self.rsu_height_m = per_rsu("rsu_height_m")
        self.rsu_tx_power_dbm = per_rsu("rsu_tx_power_dbm")
        self.rsu_bandwidth_hz = per_rsu("rsu_bandwidth_hz")
        self.rsu_noise_figure_db = per_rsu("rsu_noise_figure_db")
        if cfg.reuse_groups:
            if len(cfg.reuse_groups) != m:
                raise ValueError(f"channel.reuse_groups has {len(cfg.reuse_groups)} entries for {m} RSUs")
            self.reuse_group = np.asarray(cfg.reuse_groups, dtype=int)
        else:
            self.reuse_group = assign_reuse_groups(rsu_xy_m, cfg.frequency_reuse)
        self.cochannel = self.reuse_group[:, None] == self.reuse_group[None, :]  # (M, M)
        self._groups = np.unique(self.reuse_group)
        self._single_group = self._groups.size <= 1
        self.noise_psd_w_hz = float(dbm_to_w(cfg.noise_psd_dbm_hz))
        self.rsu_noise_psd_w_hz = self.noise_psd_w_hz * 10 ** (self.rsu_noise_figure_db / 10)
        self.vehicle_noise_psd_w_hz = self.noise_psd_w_hz * 10 ** (cfg.vehicle_noise_figure_db / 10)
        self.rsu_tx_psd_w_hz = dbm_to_w(self.rsu_tx_power_dbm) / self.rsu_bandwidth_hz
        self.default_tx_power_w = float(dbm_to_w(cfg.vehicle_tx_power_dbm))
        self.max_tx_power_w = float(dbm_to_w(cfg.vehicle_max_tx_power_dbm))
        self.rsrp_offset_db = (10 * np.log10(self.rsu_bandwidth_hz / cfg.subcarrier_spacing_hz)
                               if cfg.rsrp_per_resource_element else np.zeros(m))
        self.snr_gap = 10 ** (cfg.snr_gap_db / 10)
        self.min_sinr = 10 ** (cfg.min_sinr_db / 10)
        self.rsrp_base_f32 = (self.rsu_tx_power_dbm - self.rsrp_offset_db).astype(np.float32)
        self._rsu_tx_psd_f32 = self.rsu_tx_psd_w_hz.astype(np.float32)
        self.block_errors = BlockErrors.from_config(cfg, fused) if cfg.bler == "table" else None
        self.buffers = WorkBuffers(m)
        # The compiled loops of `fused` cover one reuse group with interference (the default).
        self.fused = fused and cfg.interference and m > 1 and self._single_group
        self.fused_rates = fused

    def link_state(self, time_s, ids, xy, serving, rsrp, pl, los, events, fading=(None, None), gain_exp=None) -> LinkState:
        """The LinkState of a step: serving gains, interference, and SINR at the default power over the full band.
        `rsrp`: rsrp_base - pl when at hand (None: computed when read); `gain_exp`: this step's
        `gain_buffer` already holding -PL ln 10 / 10."""
        n = len(ids)
        gain = gain_exp
        if gain is None:
            gain = self.gain_buffer(n)
            np.multiply(pl, fz.NEG_LN10_10, out=gain)
        np.exp(gain, out=gain)
        if self.fused:
            return self._link_state_fused(time_s, ids, xy, serving, rsrp, pl, los, events, fading, gain)
        conn = serving >= 0
        s0 = np.maximum(serving, 0)
        rows = np.arange(n)
        g_serv = np.where(conn, gain[rows, s0], 0.0).astype(float)
        dl_i, ul_i = self._interference(gain, serving, conn, s0, g_serv)
        bw = self.rsu_bandwidth_hz[s0]
        ul_sinr = self.default_tx_power_w * g_serv / (bw * (self.rsu_noise_psd_w_hz[s0] + ul_i))
        dl_sinr = self.rsu_tx_psd_w_hz[s0] * g_serv / (self.vehicle_noise_psd_w_hz + dl_i)
        with np.errstate(divide="ignore"):
            ul_db = np.where(conn, 10 * np.log10(ul_sinr), -np.inf)
            dl_db = np.where(conn, 10 * np.log10(dl_sinr), -np.inf)
        return LinkState(float(time_s), ids, xy, serving, self.rsrp_base_f32, pl, ul_db, dl_db, events, los=los,
                         serving_gain=g_serv, uplink_interference_w_hz=ul_i, downlink_interference_w_hz=dl_i,
                         uplink_fading=fading[0], downlink_fading=fading[1], _rsrp=rsrp)

    def gain_buffer(self, n: int) -> np.ndarray:
        """The (n, M) float32 work array of a step's linear gains."""
        return self.buffers.get("gain", n)

    def _link_state_fused(self, time_s, ids, xy, serving, rsrp, pl, los, events, fading, gain) -> LinkState:
        """`link_state` with one reuse group and interference as two compiled loops around the same two
        float32 matrix-vector products (so the same sums, in the same order)."""
        n = len(ids)
        # One block for the per-vehicle outputs (rows: serving gain, DL / UL interference, UL / DL SINR
        # linear, then in dB): fewer calls per step; each LinkState array is a row of it.
        out = np.empty((7, n))
        g_serv, dl_i, ul_i, sinr_lin, sinr_db = out[0], out[1], out[2], out[3:5], out[5:7]
        w32 = np.empty(n, np.float32)
        fz.serving_gains(gain, serving, self.default_tx_power_w, self.rsu_bandwidth_hz, g_serv, w32)
        dl_sum, ul_rsu = gain @ self._rsu_tx_psd_f32, w32 @ gain
        fz.sinr(serving, g_serv, dl_sum, ul_rsu, float(self.cfg.interference_load), self.default_tx_power_w,
                self.rsu_bandwidth_hz, self.rsu_noise_psd_w_hz, self.rsu_tx_psd_w_hz, self.vehicle_noise_psd_w_hz,
                dl_i, ul_i, sinr_lin[0], sinr_lin[1])
        with np.errstate(divide="ignore"):  # not connected: SINR 0, -inf dB
            np.log10(sinr_lin, out=sinr_db)
        np.multiply(sinr_db, 10, out=sinr_db)  # as 10 * log10(.)
        ul_db, dl_db = sinr_db
        return LinkState(float(time_s), ids, xy, serving, self.rsrp_base_f32, pl, ul_db, dl_db, events, los=los,
                         serving_gain=g_serv, uplink_interference_w_hz=ul_i, downlink_interference_w_hz=dl_i,
                         uplink_fading=fading[0], downlink_fading=fading[1], _rsrp=rsrp)

    def _interference(self, gain, serving, conn, s0, g_serv):
        """(downlink, uplink) interference PSD of each vehicle; zeroes the serving links in `gain`."""
        cfg = self.cfg
        n, m = len(serving), self.num_rsus
        if cfg.interference and m > 1:
            # Downlink: every co-channel RSU other than the serving one, at its transmit PSD.
            own = g_serv * self.rsu_tx_psd_w_hz[s0]
            if self._single_group:
                # Zero each connected vehicle's serving link in the (work) gain array: the sums over
                # RSUs (downlink) and over vehicles (uplink) then exclude the own cell exactly, with
                # no cancellation, as float32 matrix-vector products (float32 accumulation).
                ci = np.flatnonzero(conn)
                gain[ci, serving[ci]] = 0.0
                dl_i = (gain @ self._rsu_tx_psd_f32).astype(float)
            else:
                rx = self.buffers.get("t1", n)
                np.multiply(gain, self._rsu_tx_psd_f32, out=rx)
                dl_i = np.zeros(n)
                for q in self._groups:
                    cols = self.reuse_group == q
                    sel = self.reuse_group[s0] == q
                    dl_i[sel] = rx[np.ix_(sel, cols)].sum(1, dtype=float)
                dl_i -= own
            dl_i = cfg.interference_load * np.where(conn, np.maximum(dl_i, 0.0), 0.0)
            # Uplink: at RSU s, one vehicle of each loaded co-channel cell j != s, with the mean gain
            # of the vehicles of cell j to RSU s: sum over vehicles k of w_k g[k, s], w_k = P / (n_j B_j).
            count = np.bincount(serving[conn], minlength=m).astype(float)
            w = np.where(conn, self.default_tx_power_w / (np.maximum(count[s0], 1) * self.rsu_bandwidth_hz[s0]), 0.0)
            if self._single_group:
                ul_rsu = (w.astype(np.float32) @ gain).astype(float)  # serving links zeroed above
            else:
                own_cell = np.bincount(s0, weights=w * g_serv, minlength=m)
                ul_rsu = np.zeros(m)
                for q in self._groups:
                    k_sel = conn & (self.reuse_group[s0] == q)
                    cols = self.reuse_group == q
                    ul_rsu[cols] = w[k_sel].astype(np.float32) @ gain[np.ix_(k_sel, cols)]
                ul_rsu -= own_cell
            ul_i = cfg.interference_load * np.where(conn, np.maximum(ul_rsu[s0], 0.0), 0.0)
        else:
            dl_i = np.zeros(n)
            ul_i = np.zeros(n)
        return dl_i, ul_i

    def _shannon(self, bandwidth_hz, sinr):
        """b min(log2(1 + sinr / gap), cap), 0 below min_sinr (min_sinr > 0, so also 0 where sinr = 0)."""
        cfg = self.cfg
        se = np.log2(1.0 + (sinr / self.snr_gap if self.snr_gap != 1.0 else sinr))
        if cfg.max_spectral_efficiency_bps_hz > 0:
            np.minimum(se, cfg.max_spectral_efficiency_bps_hz, out=se)
        return np.where(sinr >= self.min_sinr, bandwidth_hz * se, 0.0)

    def _rate(self, bandwidth_hz, mean_sinr, fading):
        """The rate at `mean_sinr` times the fading gains `fading` (None: the mean rate): Shannon, or
        the MCS goodput with block errors (`bler: table`, the MCS chosen from the mean SINR)."""
        sinr = mean_sinr if fading is None else mean_sinr * fading
        if self.block_errors is None:
            return self._shannon(bandwidth_hz, sinr)
        return self.block_errors.goodput_bps(bandwidth_hz, mean_sinr, sinr)

    def _shannon_fused(self, idx) -> bool:
        """Whether the compiled loops compute these rates (Shannon, a vector of vehicles)."""
        return self.fused_rates and self.block_errors is None and idx.ndim == 1

    def _rate_fused(self, link, idx, b, sinr, fading, conn_only):
        """`_rate` (Shannon) of `sinr` as compiled loops around numpy's log2; `conn_only`: 0 where not
        connected or b <= 0 (the downlink)."""
        faded, x, out = np.empty(idx.shape), np.empty(idx.shape), np.empty(idx.shape)
        has_fading = fading is not None
        serving = np.asarray(link.serving)
        fz.shannon_arg(sinr, idx, fading if has_fading else link.serving_gain, has_fading, float(self.snr_gap), faded, x)
        np.log2(x, out=x)
        fz.shannon_rate(b, faded, x, float(self.cfg.max_spectral_efficiency_bps_hz), float(self.min_sinr), conn_only,
                        idx, serving, out)
        return out

    @staticmethod
    def _fading(gains, idx, instantaneous):
        return gains[idx] if instantaneous and gains is not None else None

    @staticmethod
    def _bcast(x, shape):
        x = np.asarray(x, dtype=float)
        return x if x.shape == shape else np.broadcast_to(x, shape)

    def uplink_sinr(self, link: LinkState, idx, tx_power_w, bandwidth_hz) -> np.ndarray:
        """Linear mean uplink SINR of vehicles `idx` sending `tx_power_w` over `bandwidth_hz` (0 if not connected)."""
        idx = np.asarray(idx, dtype=int)
        p = np.minimum(self._bcast(tx_power_w, idx.shape), self.max_tx_power_w)
        b = self._bcast(bandwidth_hz, idx.shape)
        s = np.asarray(link.serving)[idx]
        pos = b > 0
        conn = (s >= 0) & pos
        noise = (self.rsu_noise_psd_w_hz[np.maximum(s, 0)] + link.uplink_interference_w_hz[idx]) * np.where(pos, b, 1.0)
        return np.where(conn, p * link.serving_gain[idx] / noise, 0.0)

    def uplink_rate_bps(self, link: LinkState, idx: np.ndarray, tx_power_w: np.ndarray, bandwidth_hz: np.ndarray,
                        instantaneous: bool = False) -> np.ndarray:
        """Shannon uplink rate b log2(1 + p g / (b (N0 NF + I)) / gap), capped (or the MCS goodput with
        `bler: table`); 0 where not connected. The power is clipped to the vehicle maximum.
        `instantaneous`: with this step's fading (module docstring)."""
        idx = np.asarray(idx, dtype=int)
        b = self._bcast(bandwidth_hz, idx.shape)
        if self._shannon_fused(idx):
            sinr = np.empty(idx.shape)
            fz.uplink_sinr(idx, self._bcast(tx_power_w, idx.shape), b, self.max_tx_power_w, np.asarray(link.serving),
                           self.rsu_noise_psd_w_hz, link.uplink_interference_w_hz, link.serving_gain, sinr)
            return self._rate_fused(link, idx, b, sinr, link.uplink_fading if instantaneous else None, False)
        sinr = self.uplink_sinr(link, idx, tx_power_w, b)  # SINR 0 -> rate 0
        return self._rate(b, sinr, self._fading(link.uplink_fading, idx, instantaneous))

    def downlink_rate_bps(self, link: LinkState, idx: np.ndarray, bandwidth_hz: np.ndarray,
                          instantaneous: bool = False) -> np.ndarray:
        """Downlink rate over `bandwidth_hz` of the serving RSU (its transmit PSD is fixed)."""
        idx = np.asarray(idx, dtype=int)
        b = self._bcast(bandwidth_hz, idx.shape)
        if self._shannon_fused(idx):
            sinr = np.power(10.0, link.downlink_sinr_db[idx] / 10)
            return self._rate_fused(link, idx, b, sinr, link.downlink_fading if instantaneous else None, True)
        conn = (np.asarray(link.serving)[idx] >= 0) & (b > 0)
        sinr = 10.0 ** (link.downlink_sinr_db[idx] / 10)   # -inf dB (not connected) -> 0
        return np.where(conn, self._rate(b, sinr, self._fading(link.downlink_fading, idx, instantaneous)), 0.0)


@dataclass(frozen=True)
class ChannelRates:
    """The rates of the vehicles of one LinkState (rows of `link`), as a cost model asks for them."""

    radio: Radio
    link: LinkState

    @property
    def max_tx_power_w(self) -> float:
        return self.radio.max_tx_power_w

    def uplink_rate_bps(self, vehicle, tx_power_w, bandwidth_hz) -> np.ndarray:
        return self.radio.uplink_rate_bps(self.link, vehicle, tx_power_w, bandwidth_hz)

    def downlink_rate_bps(self, vehicle, bandwidth_hz) -> np.ndarray:
        return self.radio.downlink_rate_bps(self.link, vehicle, bandwidth_hz)
