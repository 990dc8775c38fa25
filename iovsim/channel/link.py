"""The vehicle-to-RSU channel: path loss + shadowing -> RSRP -> A3 association -> SINR -> rates.

`Channel.step` runs once per SUMO step, vectorized over vehicles x RSUs; it wires the parts, one
concern per module: `kernel` (path loss, LOS state and shadow fading per link), `handover` (A3
association), `fading` (small-scale fading of the serving links), `bler` (block errors and HARQ),
`rates` (RSU radios, interference, SINR, rates) and `dwell` (handover-window prediction). All
randomness comes from `np.random.default_rng([seed, 1])` (links) and, with fading on,
`np.random.default_rng([seed, 1, 1])` (fading): one stream per purpose, so turning fading on
leaves path loss, shadowing and handovers exactly as they were.
"""
from __future__ import annotations

import numpy as np

from iovsim.channel import fused as fz
from iovsim.channel.config import ChannelConfig
from iovsim.channel.dwell import predict_dwell_s
from iovsim.channel.fading import Fading, k_factor
from iovsim.channel.handover import Association
from iovsim.channel.kernel import LinkKernel
from iovsim.channel.kernel_fused import FusedLinks
from iovsim.channel.rates import ChannelRates, Radio
from iovsim.channel.rows import VehicleRows
from iovsim.channel.state import LinkState


class Channel:
    """Vehicle-to-RSU links for a fixed set of RSUs (radio parameters from `cfg.rsu_*`); call
    `step` once per SUMO step."""

    def __init__(self, cfg: ChannelConfig, rsu_xy_m: np.ndarray, seed: int, fused: bool | None = None):
        """`fused`: run the step's loops compiled (`iovsim.channel.fused`, the same results); None = when
        numba is installed (and IOVSIM_NUMBA is not 0). True without numba runs them as plain Python (slow)."""
        self.cfg = cfg
        self.rsu_xy_m = np.asarray(rsu_xy_m, dtype=float).reshape(-1, 2)
        self.num_rsus = len(self.rsu_xy_m)
        fused = fz.AVAILABLE if fused is None else bool(fused)
        self.radio = Radio(cfg, self.rsu_xy_m, fused)
        self.kernel = LinkKernel(cfg, self.rsu_xy_m, self.radio.rsu_height_m, np.random.default_rng([seed, 1]))
        self._links = FusedLinks(self.kernel) if fused else None
        self.association = Association(cfg, self.num_rsus, fused)
        self.fading = (Fading(cfg.fading, cfg.rician_k_db, cfg.carrier_frequency_hz, np.random.default_rng([seed, 1, 1]),
                              fused) if cfg.fading != "none" else None)
        self._rows = VehicleRows()  # each vehicle's row in the previous step
        self._xy = np.zeros((0, 2))
        self.last: LinkState | None = None

    # Per-RSU radio parameters and counters, read by the engine and the tools.
    rsu_height_m = property(lambda self: self.radio.rsu_height_m)
    rsu_tx_power_dbm = property(lambda self: self.radio.rsu_tx_power_dbm)
    rsu_bandwidth_hz = property(lambda self: self.radio.rsu_bandwidth_hz)
    rsu_noise_figure_db = property(lambda self: self.radio.rsu_noise_figure_db)
    reuse_group = property(lambda self: self.radio.reuse_group)
    default_tx_power_w = property(lambda self: self.radio.default_tx_power_w)
    max_tx_power_w = property(lambda self: self.radio.max_tx_power_w)
    handover_count = property(lambda self: self.association.handover_count)
    ping_pong_count = property(lambda self: self.association.ping_pong_count)
    rlf_count = property(lambda self: self.association.rlf_count)

    def step(self, time_s: float, vehicle_ids: list[str], xy_m: np.ndarray, speed_mps: np.ndarray | None = None) -> LinkState:
        """Advance the channel to `time_s` with the vehicles present; absent vehicles are forgotten.

        The random processes advance by the distance each vehicle moved since the previous step
        (from the positions; `speed_mps` is accepted for the engine's convenience and not needed)."""
        ids = list(vehicle_ids)
        n, m = len(ids), self.num_rsus
        xy = np.asarray(xy_m, dtype=float).reshape(n, 2)
        prev = self._rows.update(ids)
        if self._links is not None:
            old, pr, moved, arg = np.empty(n, bool), np.empty(n, np.int64), np.empty(n), np.empty((3, n))
            has_prev = fz.motion(prev, xy, self._xy, self._links.dec, old, pr, moved, arg)
        else:
            old = prev >= 0
            pr = np.where(old, prev, 0)
            has_prev = bool(old.any())
            moved = np.full(n, np.inf)
            if has_prev:
                d = xy - self._xy[pr]
                moved = np.where(old, np.sqrt((d * d).sum(1)), np.inf)
        self._xy = xy
        if n == 0 or m == 0:
            return self._empty_step(time_s, ids, xy, n)
        if self._links is not None and self._links.covers(has_prev):
            gain_exp, best = self.radio.gain_buffer(n), np.empty(n, np.int64)
            pathloss, los = self._links.advance(xy, pr, moved, arg, self.radio.rsrp_base_f32, gain_exp, best)
            rsrp = None  # the association reads rsrp_base - path loss where it needs it
        else:
            pathloss, los = self.kernel.advance(xy, pr, moved, has_prev)
            rsrp, gain_exp, best = np.subtract(self.radio.rsrp_base_f32, pathloss), None, None
        serving, events = self.association.update(time_s, ids, xy, rsrp, old, pr, has_prev, best, pathloss,
                                                  self.radio.rsrp_base_f32)
        fading = (None, None)
        if self.fading is not None:
            los_serving = los[np.arange(n), np.maximum(serving, 0)] & (serving >= 0)
            fading = self.fading.advance(serving, los_serving, moved, pr, old & has_prev)
        self.last = self.radio.link_state(time_s, ids, xy, serving, rsrp, pathloss, los, events, fading, gain_exp)
        return self.last

    def _empty_step(self, time_s, ids, xy, n):
        m = self.num_rsus
        link = LinkState(float(time_s), ids, xy, np.full(n, -1), self.radio.rsrp_base_f32, np.full((n, m), np.inf),
                         np.full(n, -np.inf), np.full(n, -np.inf), [], los=np.zeros((n, m), bool),
                         serving_gain=np.zeros(n), uplink_interference_w_hz=np.zeros(n), downlink_interference_w_hz=np.zeros(n))
        self.kernel.forget(n)
        self.association.forget(n)
        if self.fading is not None:
            self.fading.forget(n)
        self.last = link
        return link

    # ------------------------------------------------------------------ path loss
    def mean_pathloss_db(self, d2d_m: np.ndarray) -> np.ndarray:
        """Path loss without shadowing (`stochastic` and `expected` weight LOS and NLOS by Pr_LOS)."""
        return self.kernel.mean_pathloss_db(d2d_m)

    def coverage_radius_m(self) -> float | np.ndarray:
        """Distance at which the mean RSRP (no shadowing) of an RSU falls to min_rsrp_dbm: one number
        when every RSU has the same RSRP budget and height, else one per RSU."""
        if self.num_rsus == 0:
            return 0.0
        d = np.geomspace(1.0, 1e5, 4000)
        pl = self.mean_pathloss_db(d[:, None] + 0 * self.rsu_xy_m[None, :1, 0])  # (4000, M): heights per RSU
        base = self.radio.rsu_tx_power_dbm - self.radio.rsrp_offset_db
        radii = np.zeros(self.num_rsus)
        for m in range(self.num_rsus):
            ok = np.flatnonzero(base[m] - pl[:, m] >= self.cfg.min_rsrp_dbm)
            radii[m] = d[ok.max()] if ok.size else 0.0
        same = np.all(base == base[0]) and np.all(self.radio.rsu_height_m == self.radio.rsu_height_m[0])
        return float(radii[0]) if same else radii

    # ------------------------------------------------------------------ rates
    def uplink_sinr(self, link: LinkState, idx, tx_power_w, bandwidth_hz) -> np.ndarray:
        """Linear uplink SINR of vehicles `idx` sending `tx_power_w` over `bandwidth_hz` (0 if not connected)."""
        return self.radio.uplink_sinr(link, idx, tx_power_w, bandwidth_hz)

    def uplink_rate_bps(self, link: LinkState, idx, tx_power_w, bandwidth_hz, instantaneous: bool = False) -> np.ndarray:
        """Mean uplink rate (Shannon b log2(1 + p g / (b (N0 NF + I)) / gap), capped, or the MCS goodput of
        `bler: table`); 0 where not connected. `instantaneous`: with this step's small-scale fading."""
        return self.radio.uplink_rate_bps(link, idx, tx_power_w, bandwidth_hz, instantaneous)

    def downlink_rate_bps(self, link: LinkState, idx, bandwidth_hz, instantaneous: bool = False) -> np.ndarray:
        """Downlink rate over `bandwidth_hz` of the serving RSU (its transmit PSD is fixed); `instantaneous` as above."""
        return self.radio.downlink_rate_bps(link, idx, bandwidth_hz, instantaneous)

    def fading_k_factor(self, link: LinkState) -> np.ndarray | None:
        """Linear Rician K-factor of each vehicle's serving link (0 = Rayleigh); None without fading."""
        if self.fading is None:
            return None
        n = link.num_vehicles
        serving = np.asarray(link.serving, dtype=int)
        los = np.asarray(link.los)[np.arange(n), np.maximum(serving, 0)] if n and self.num_rsus else np.zeros(n, bool)
        return k_factor(self.cfg.fading, self.cfg.rician_k_db, los)

    def rates(self, link: LinkState) -> ChannelRates:
        """The rates of `link`'s vehicles as a cost model takes them (`iovsim.costs.LinkRates`)."""
        return ChannelRates(self.radio, link)

    # ------------------------------------------------------------------ handover window
    def predict_dwell_s(self, link: LinkState, idx: np.ndarray, future_xy_m: list[np.ndarray],
                        future_t_s: list[np.ndarray]) -> np.ndarray:
        """Predicted time left in the serving cell (see `iovsim.channel.dwell.predict_dwell_s`)."""
        return predict_dwell_s(self.kernel, self.radio, self.last is link, link, idx, future_xy_m, future_t_s)
