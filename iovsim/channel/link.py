"""The vehicle-to-RSU channel: path loss + shadowing -> RSRP -> A3 association -> SINR -> rates.

One `Channel.step` per SUMO step, vectorized over vehicles x RSUs. Per link it keeps two
spatially consistent random processes along the vehicle's path, both driven by the distance the
vehicle moved since the previous step:

* shadow fading: a unit Gaussian AR(1) process g with correlation exp(-dd / d_corr)
  (Gudmundson 1991, the exponential model of TR 38.901 §7.5/§7.6.3.1), scaled by the table's
  standard deviation of the link's LOS state;
* LOS state: a uniform variable u that is redrawn with probability 1 - exp(-dd / d_los), so that
  P(unchanged after distance d) = exp(-d / d_los); the link is LOS when u < Pr_LOS(d2D)
  (spatially consistent LOS state, TR 38.901 §7.6.3.3 with the correlation distance of
  Table 7.6.3.1-2).

All randomness comes from `np.random.default_rng([seed, 1])`.
"""
from __future__ import annotations

import math
from itertools import repeat, starmap
from dataclasses import dataclass, field

import numpy as np

from iovsim.channel import pathloss as plm
from iovsim.channel.config import ChannelConfig


def dbm_to_w(dbm):
    return 10.0 ** ((np.asarray(dbm, dtype=float) - 30.0) / 10.0)


def w_to_dbm(w):
    return 10.0 * np.log10(np.maximum(np.asarray(w, dtype=float), 1e-300)) + 30.0


@dataclass(slots=True)
class HandoverEvent:
    time_s: float
    vehicle_id: str
    from_rsu: int
    to_rsu: int
    rsrp_from_dbm: float
    rsrp_to_dbm: float
    x_m: float
    y_m: float
    kind: str = "a3"
    """`a3` (A3 event after time-to-trigger) or `rlf` (serving RSRP fell below min_rsrp_dbm and the
    vehicle re-attached at once to the strongest RSU)."""
    ping_pong: bool = False
    """True when this handover returns to the RSU the vehicle left within ping_pong_window_s."""


@dataclass
class LinkState:
    time_s: float
    vehicle_ids: list[str]
    xy_m: np.ndarray             # (N, 2)
    serving: np.ndarray          # (N,) RSU index, -1 = not connected
    rsrp_dbm: np.ndarray         # (N, M) downlink RSRP from every RSU
    pathloss_db: np.ndarray      # (N, M) including shadowing
    uplink_sinr_db: np.ndarray   # (N,) at the default vehicle power over the serving RSU's full bandwidth
    downlink_sinr_db: np.ndarray  # (N,)
    handovers: list[HandoverEvent]
    los: np.ndarray | None = None                  # (N, M) bool LOS state of each link
    serving_gain: np.ndarray | None = None         # (N,) linear channel gain to the serving RSU (0 if none)
    uplink_interference_w_hz: np.ndarray | None = None    # (N,) interference PSD at the serving RSU
    downlink_interference_w_hz: np.ndarray | None = None  # (N,) interference PSD at the vehicle
    _index: dict | None = field(default=None, repr=False)

    def index(self) -> dict[str, int]:
        """vehicle id -> row."""
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.vehicle_ids)}
        return self._index

    @property
    def num_vehicles(self) -> int:
        return len(self.vehicle_ids)


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


class Channel:
    """Vehicle-to-RSU links for a fixed set of RSUs; call `step` once per SUMO step."""

    def __init__(self, cfg: ChannelConfig, rsu_cfg, rsu_xy_m: np.ndarray, seed: int):
        self.cfg = cfg
        self.rsu_xy_m = np.asarray(rsu_xy_m, dtype=float).reshape(-1, 2)
        m = self.num_rsus = len(self.rsu_xy_m)
        self.rsu_height_m = np.broadcast_to(np.asarray(getattr(rsu_cfg, "height_m", 10.0), dtype=float), (m,)).copy()
        self.rsu_tx_power_dbm = np.broadcast_to(np.asarray(getattr(rsu_cfg, "tx_power_dbm", 30.0), dtype=float), (m,)).copy()
        self.rsu_bandwidth_hz = np.broadcast_to(np.asarray(getattr(rsu_cfg, "bandwidth_hz", 20e6), dtype=float), (m,)).copy()
        self.rsu_noise_figure_db = np.broadcast_to(np.asarray(getattr(rsu_cfg, "noise_figure_db", 5.0), dtype=float), (m,)).copy()
        self.rng = np.random.default_rng([seed, 1])
        if cfg.reuse_groups:
            if len(cfg.reuse_groups) != m:
                raise ValueError(f"channel.reuse_groups has {len(cfg.reuse_groups)} entries for {m} RSUs")
            self.reuse_group = np.asarray(cfg.reuse_groups, dtype=int)
        else:
            self.reuse_group = assign_reuse_groups(self.rsu_xy_m, cfg.frequency_reuse)
        self.cochannel = self.reuse_group[:, None] == self.reuse_group[None, :]  # (M, M)
        # Constants of the path loss in the form a + b log10(d3D), per RSU (heights may differ).
        self._prepare_pathloss()
        sf = plm.SHADOW_STD_DB[cfg.pathloss_model]
        self.shadow_std_db = (cfg.shadowing_std_db or sf[0], cfg.shadowing_std_db or sf[1]) if cfg.shadowing else (0.0, 0.0)
        dc = plm.SHADOW_DECORRELATION_M[cfg.pathloss_model]
        self.shadow_decorrelation_m = (cfg.shadowing_decorrelation_m or dc[0], cfg.shadowing_decorrelation_m or dc[1])
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
        # Per-vehicle memory (rows aligned with self._ids); (N, M) arrays are float32.
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._xy = np.zeros((0, 2))
        self._g = np.zeros((0, m), np.float32)     # unit shadowing process
        self._u = np.zeros((0, m), np.float32)     # LOS state: D(u)^2 threshold (or the uniform u itself)
        self._meas = np.zeros((0, m), np.float32)  # L3-filtered RSRP used for handover decisions
        self._serving = np.zeros(0, dtype=int)
        self._cand = np.zeros(0, dtype=int)
        self._cand_since = np.zeros(0)
        self._last_from = np.zeros(0, dtype=int)
        self._last_to = np.zeros(0, dtype=int)
        self._last_ho_s = np.zeros(0)
        self._work: dict[str, np.ndarray] = {}
        self._state_full: dict[str, np.ndarray] = {}
        self._pools: dict[str, np.ndarray] = {}
        self._groups = np.unique(self.reuse_group)
        self._rsu_arange = np.arange(m, dtype=np.int32)
        self._single_group = self._groups.size <= 1
        self._rsrp_base_f32 = (self.rsu_tx_power_dbm - self.rsrp_offset_db).astype(np.float32)
        self._rsu_tx_psd_f32 = self.rsu_tx_psd_w_hz.astype(np.float32)
        self._uniform_psd = bool(m == 0 or np.all(self.rsu_tx_psd_w_hz == self.rsu_tx_psd_w_hz[0]))
        self.handover_count = 0
        self.ping_pong_count = 0
        self.rlf_count = 0
        self.last: LinkState | None = None
        self._pl_state = self._los_state = None

    # ------------------------------------------------------------------ path loss
    def _prepare_pathloss(self):
        cfg = self.cfg
        model = cfg.pathloss_model
        fc = cfg.carrier_frequency_hz / 1e9
        h_bs, h_ut = self.rsu_height_m, cfg.vehicle_height_m
        self._dh2 = (h_bs - h_ut) ** 2
        self._dbp = plm.breakpoint_distance_m(cfg.carrier_frequency_hz, h_bs, h_ut)
        lf = 20 * np.log10(fc)
        if model == "umi":
            self._los1 = (32.4 + lf, 21.0)
            self._los2 = (32.4 + lf - 9.5 * np.log10(self._dbp ** 2 + self._dh2), 40.0)
            self._nlos = (22.4 + 21.3 * np.log10(fc) - 0.3 * (h_ut - 1.5), 35.3)
        elif model == "uma":
            self._los1 = (28.0 + lf, 22.0)
            self._los2 = (28.0 + lf - 9.0 * np.log10(self._dbp ** 2 + self._dh2), 40.0)
            self._nlos = (13.54 + lf - 0.6 * (h_ut - 1.5), 39.08)
        else:
            fs = 20 * np.log10(4 * np.pi * cfg.carrier_frequency_hz / plm.C_MPS)
            self._los1 = self._los2 = self._nlos = (fs, 20.0)
        # The same formulas in L = ln(d3D^2), as the vectorized step evaluates them:
        # b log10(d3D) = b / (2 ln 10) L, and PL2 = PL1 + (b2 - b1) / (2 ln 10) max(0, L - L_bp)
        # exactly (PL1 = PL2 at d2D = d'_BP), L_bp = ln(d'_BP^2 + (h_BS - h_UT)^2).
        k = 1.0 / (2.0 * np.log(10.0))
        f32 = np.float32
        self._origin = self.rsu_xy_m.mean(0) if len(self.rsu_xy_m) else np.zeros(2)
        self._rsu_xr = (self.rsu_xy_m - self._origin).astype(f32)
        self._dh2_f32 = np.asarray(self._dh2, dtype=f32)
        self._min_d2 = f32(0.0 if model == "freespace" else plm.MIN_D2D_M ** 2)
        self._a_los1 = f32(self._los1[0])
        self._c_los1 = f32(self._los1[1] * k)
        self._c_los2 = f32((self._los2[1] - self._los1[1]) * k)
        self._lbp = np.log(self._dbp ** 2 + self._dh2).astype(f32)
        # PL2 = a1 - c2 L_bp + (c1 + c2) L.
        self._a_los2 = (self._los1[0] - (self._los2[1] - self._los1[1]) * k * np.log(self._dbp ** 2 + self._dh2)).astype(f32)
        self._a_nlos = f32(self._nlos[0])
        self._c_nlos = f32(self._nlos[1] * k)
        # LOS probability table per RSU, uniform in L (4096 cells from d2D = 1 m to 100 km).
        m = self.num_rsus
        cells = 4096
        l0 = float(np.log(1.0 + np.min(self._dh2))) if m else 0.0
        l1 = float(np.log(1e10 + np.max(self._dh2))) if m else 1.0
        self._ptab_l0 = f32(l0)
        self._ptab_scale = f32(cells / (l1 - l0))
        centres = l0 + (np.arange(cells) + 0.5) / self._ptab_scale
        d2d = np.sqrt(np.maximum(np.exp(centres)[None, :] - np.broadcast_to(self._dh2, (m,))[:, None], 0.0))
        if model == "freespace":
            tab = np.ones((m, cells))
        else:
            tab = plm.los_probability(model, d2d, h_ut)
        self._ptab_2d = tab.astype(f32)
        self._ptab = self._ptab_2d.T.copy().ravel()  # index: cell * M + rsu
        self._ptab_cells = cells
        # Inverse LOS probability: D(u)^2 on a 2^20-point grid of u (used when Pr_LOS decreases with d).
        d_fine = np.geomspace(1.0, 1e8, 200_000)
        p_fine = np.ones_like(d_fine) if model == "freespace" else plm.los_probability(model, d_fine, h_ut)
        self._los_by_threshold = bool(np.all(np.diff(p_fine) <= 1e-12))
        if self._los_by_threshold:
            u = (np.arange(1 << 20) + 0.5) / (1 << 20)
            self._thr_tab = (np.interp(u, p_fine[::-1], d_fine[::-1]) ** 2).astype(f32)

    def _distances(self, xy: np.ndarray):
        dx = xy[:, 0:1] - self.rsu_xy_m[None, :, 0]
        dy = xy[:, 1:2] - self.rsu_xy_m[None, :, 1]
        d2d = np.sqrt(dx * dx + dy * dy)
        return d2d

    def _los_nlos_db(self, d2d: np.ndarray):
        """(PL_LOS, PL_NLOS) in dB for distances (P, M), the TR 38.901 formulas with constants folded."""
        if self.cfg.pathloss_model == "freespace":
            d3 = np.maximum(np.sqrt(d2d * d2d + self._dh2), 1.0)
            pl = self._los1[0] + 20.0 * np.log10(d3)
            return pl, pl
        d2 = np.maximum(d2d, plm.MIN_D2D_M)
        lg = np.log10(d2 * d2 + self._dh2) * 0.5  # log10(d3D)
        pl_los = np.where(d2 <= self._dbp, self._los1[0] + self._los1[1] * lg, self._los2[0] + self._los2[1] * lg)
        pl_nlos = np.maximum(pl_los, self._nlos[0] + self._nlos[1] * lg)
        return pl_los, pl_nlos

    def mean_pathloss_db(self, d2d_m: np.ndarray) -> np.ndarray:
        """Path loss without shadowing: per the LOS model, `stochastic` and `expected` weighting
        LOS and NLOS loss (dB) by the LOS probability."""
        d2d = np.asarray(d2d_m, dtype=float)
        pl_los, pl_nlos = self._los_nlos_db(d2d)
        lm = self.cfg.los_model
        if lm == "los":
            return pl_los
        if lm == "nlos":
            return pl_nlos
        p = plm.los_probability(self.cfg.pathloss_model, d2d, self.cfg.vehicle_height_m)
        return p * pl_los + (1 - p) * pl_nlos

    def coverage_radius_m(self) -> float:
        """Distance at which the mean RSRP (no shadowing) of the first RSU falls to min_rsrp_dbm."""
        if self.num_rsus == 0:
            return 0.0
        d = np.geomspace(1.0, 1e5, 4000)
        pl = self.mean_pathloss_db(d[:, None] + 0 * self.rsu_xy_m[None, :1, 0])[:, 0]
        rsrp = self.rsu_tx_power_dbm[0] - self.rsrp_offset_db[0] - pl
        ok = np.flatnonzero(rsrp >= self.cfg.min_rsrp_dbm)
        return float(d[ok.max()]) if ok.size else 0.0

    # ------------------------------------------------------------------ step
    _POOL = 1 << 22

    def _buf(self, name: str, n: int, dtype=np.float32) -> np.ndarray:
        """A reusable (n, M) work array (fresh arrays of this size cost page faults every step)."""
        b = self._work.get(name)
        if b is None or b.shape[0] < n or b.dtype != dtype:
            b = self._work[name] = np.empty((max(n, 2 * (0 if b is None else b.shape[0]), 64), self.num_rsus), dtype)
        return b[:n]

    def _keep(self, name: str, view: np.ndarray) -> np.ndarray:
        """Make the work buffer behind `view` the state buffer, recycling the previous state's buffer."""
        full = self._work.pop(name)
        old = self._state_full.get(name)
        if old is not None:
            self._work[name] = old
        self._state_full[name] = full
        return view

    def _pool_slice(self, kind: str, size: int) -> np.ndarray:
        """`size` values from a pre-drawn pool of N(0,1) or U(0,1) numbers at a random offset.

        Drawing 50,000 fresh variates per step costs more than the rest of the step; a pool of
        2^22 values read at a fresh random offset each step gives the same marginal statistics
        and no visible dependence between steps (the offsets are drawn from the channel's rng)."""
        pool = self._pools.get(kind)
        if pool is None or pool.size < 4 * size:
            count = max(self._POOL, 4 * size)
            pool = self.rng.standard_normal(count, dtype=np.float32) if kind == "normal" else self.rng.random(count, dtype=np.float32)
            self._pools[kind] = pool
            self._pools.pop("thr", None)
        o = int(self.rng.integers(0, pool.size - size + 1))
        self._pool_offset = o
        return pool[o:o + size]

    def _thr_pool(self) -> np.ndarray:
        """D(u)^2 of every value u of the uniform pool, aligned with it (the table lookup done once,
        so a redraw reads a contiguous slice instead of gathering from the 4 MB table)."""
        tp = self._pools.get("thr")
        if tp is None:
            u = self._pools["uniform"]
            tp = self._pools["thr"] = self._thr_tab[(u * (self._thr_tab.size - 1)).astype(np.int32)]
        return tp

    def step(self, time_s: float, vehicle_ids: list[str], xy_m: np.ndarray, speed_mps: np.ndarray | None = None) -> LinkState:
        """Advance the channel to `time_s` with the vehicles present; absent vehicles are forgotten.

        The random processes advance by the distance each vehicle moved since the previous step
        (from the positions; `speed_mps` is accepted for the engine's convenience and not needed)."""
        cfg = self.cfg
        ids = list(vehicle_ids)
        n, m = len(ids), self.num_rsus
        xy = np.asarray(xy_m, dtype=float).reshape(n, 2)
        prev = np.fromiter(map(self._row.get, ids, repeat(-1)), dtype=np.int64, count=n)
        old = prev >= 0
        pr = np.where(old, prev, 0)
        has_prev = len(self._ids) > 0 and bool(old.any())
        if has_prev:
            d = xy - self._xy[pr]
            moved = np.where(old, np.sqrt((d * d).sum(1)), np.inf)
        else:
            moved = np.full(n, np.inf)
        if n == 0 or m == 0:
            return self._empty_step(time_s, ids, xy, n)
        f32 = np.float32

        stochastic = cfg.los_model == "stochastic" and cfg.pathloss_model != "freespace"
        xr = (xy - self._origin).astype(f32)
        mm = n * m
        # Full-size results; the (N, M) work runs in row blocks that stay in the CPU cache.
        pathloss = np.empty((n, m), f32)
        los = np.empty((n, m), bool)
        g = self._buf("g", n)
        thr = self._buf("u", n)
        shadow = self.shadow_std_db[0] > 0 or self.shadow_std_db[1] > 0
        z = self._pool_slice("normal", mm).reshape(n, m) if shadow else None
        renew = self._pool_slice("uniform", mm).reshape(n, m) if stochastic and has_prev else None
        fresh_u = self._pool_slice("uniform", mm).reshape(n, m) if stochastic and not self._los_by_threshold else None
        q = (-np.expm1(-moved / cfg.los_correlation_distance_m)).astype(f32)  # P(LOS variable renewed)
        rn = rl = None
        if shadow and has_prev:
            dl, dn = self.shadow_decorrelation_m
            rn = np.exp(-moved / dn).astype(f32)[:, None]
            rl = np.exp(-moved / dl).astype(f32)[:, None]
        rows = max(16, self._block_links // max(m, 1))
        act = None
        if has_prev and self._pl_state is not None and self._pl_state.shape[1] == m:
            # A vehicle that did not move keeps every link exactly (no renewal: q = 0; shadowing:
            # rho = 1, sqrt(1 - rho^2) = 0; same distances): copy its rows, compute the others.
            stand = moved == 0.0
            if 8 * int(np.count_nonzero(stand)) >= n:
                act = np.flatnonzero(~stand)
                self._rows_moving(act, np.flatnonzero(stand), rows, n, xr, pr, q, rn, rl, stochastic, z, renew,
                                  fresh_u, pathloss, los, g, thr)
        if act is None:
            for r0 in range(0, n, rows):
                r1 = min(n, r0 + rows)
                self._rows(r0, r1, xr, pr, q, rn, rl, has_prev, stochastic, z, renew, fresh_u, pathloss, los, g, thr)
        self._u_next = thr
        rsrp = np.subtract(self._rsrp_base_f32, pathloss)

        if cfg.rsrp_filter_k > 0 and has_prev:
            a = 0.5 ** (cfg.rsrp_filter_k / 4.0)
            meas = rsrp * a + (1 - a) * np.take(self._meas, pr, axis=0)
            fresh = ~old
            meas[fresh] = rsrp[fresh]
        else:
            meas = rsrp
        serving, events = self._associate(time_s, ids, xy, meas, old, pr, has_prev)
        link = self._link_state(time_s, ids, xy, serving, rsrp, pathloss, los, events)
        # Remember (swap work arrays with the state so nothing is copied).
        self._ids, self._row = ids, dict(zip(ids, range(n)))
        self._xy, self._meas = xy, meas
        self._g = self._keep("g", g)
        self._u = self._keep("u", self._u_next) if stochastic else np.zeros((n, m), f32)
        self._pl_state, self._los_state = pathloss, los  # also in the LinkState: not to be modified
        self.last = link
        return link

    def _rows_moving(self, act, st, rows, n, xr, pr, q, rn, rl, stochastic, z, renew, fresh_u, pathloss, los, g, thr):
        """`_rows` for the vehicles `act` that moved (or are new), the rows of the standing vehicles
        `st` copied from the previous step. The moving vehicles are processed in the same row blocks
        as `_rows` on all vehicles would use, so the random variates are read identically."""
        pst = pr[st]
        pathloss[st] = self._pl_state[pst]
        los[st] = self._los_state[pst]
        g[st] = self._g[pst]
        if stochastic:
            thr[st] = self._u[pst]
        cuts = np.searchsorted(act, np.arange(0, n + rows, rows))
        for b0, b1 in zip(cuts[:-1], cuts[1:]):
            if b1 <= b0:
                continue
            a = act[b0:b1]
            na = a.size
            zc = None if z is None else np.take(z, a, axis=0, out=self._buf("c_z", na))
            rc = None if renew is None else np.take(renew, a, axis=0, out=self._buf("c_renew", na))
            fc = None if fresh_u is None else np.take(fresh_u, a, axis=0, out=self._buf("c_fresh", na))
            pl_c, los_c = self._buf("c_pl", na), self._buf("c_los", na, bool)
            g_c, thr_c = self._buf("c_g", na), self._buf("c_thr", na)
            self._rows(0, na, xr[a], pr[a], q[a], None if rn is None else rn[a], None if rl is None else rl[a], True,
                       stochastic, zc, rc, fc, pl_c, los_c, g_c, thr_c)
            pathloss[a] = pl_c
            los[a] = los_c
            g[a] = g_c
            if stochastic:
                thr[a] = thr_c

    _block_links = 65536  # links per row block: bounds the work arrays (256 KB each) for large N

    def _rows(self, r0, r1, xr, pr, q, rn, rl, has_prev, stochastic, z, renew, fresh_u, pathloss, los, g_full, thr_full):
        """Path loss, LOS state and shadowing of vehicles r0:r1 into the full-size outputs."""
        cfg = self.cfg
        nc, m = r1 - r0, self.num_rsus
        # Squared horizontal distances.
        d2 = self._buf("d2", nc)
        t1 = self._buf("t1", nc)
        np.subtract(xr[r0:r1, 0:1], self._rsu_xr[None, :, 0], out=d2)
        np.multiply(d2, d2, out=d2)
        np.subtract(xr[r0:r1, 1:2], self._rsu_xr[None, :, 1], out=t1)
        np.multiply(t1, t1, out=t1)
        np.add(d2, t1, out=d2)
        # L = ln(d3D^2), d2D clamped to the tables' minimum (freespace: d3D >= 1 m).
        lnd = self._buf("lnd", nc)
        np.maximum(d2, self._min_d2, out=lnd)
        np.add(lnd, self._dh2_f32, out=lnd)
        np.log(lnd, out=lnd)
        pl = self._buf("pl", nc)   # mean path loss of the link's LOS state
        np.multiply(lnd, self._c_los1, out=pl)
        np.add(pl, self._a_los1, out=pl)
        lo = los[r0:r1]
        lof = None  # float32 copy of lo, once made
        if cfg.pathloss_model != "freespace":
            # LOS loss = max(PL1, PL2): PL2 - PL1 grows with L and is 0 at d'_BP.
            np.multiply(lnd, self._c_los1 + self._c_los2, out=t1)
            np.add(t1, self._a_los2, out=t1)
            np.maximum(pl, t1, out=pl)
        if cfg.pathloss_model == "freespace" or cfg.los_model == "los":
            lo[:] = True
        else:
            nl = self._buf("nl", nc)
            np.multiply(lnd, self._c_nlos, out=nl)
            np.add(nl, self._a_nlos, out=nl)
            np.maximum(nl, pl, out=nl)      # PL_NLOS = max(PL_LOS, PL'_NLOS)
            if cfg.los_model == "nlos":
                lo[:] = False
                pl, nl = nl, None
            elif stochastic and self._los_by_threshold:
                # u < Pr_LOS(d) <=> d^2 < D(u)^2 (Pr_LOS decreasing): keep D(u)^2 per link and
                # redraw it only where u is renewed this step.
                thr = thr_full[r0:r1]
                if has_prev:
                    np.take(self._u, pr[r0:r1], axis=0, out=thr)
                    redraw = np.flatnonzero(renew[r0:r1] < q[r0:r1, None])
                else:
                    redraw = np.arange(nc * m)
                if redraw.size:
                    self._pool_slice("uniform", redraw.size)
                    o = self._pool_offset
                    thr.reshape(-1)[redraw] = self._thr_pool()[o:o + redraw.size]
                np.less(d2, thr, out=lo)
            elif stochastic:
                p = self._los_prob_lookup(lnd, nc)
                u = thr_full[r0:r1]
                if has_prev:
                    np.take(self._u, pr[r0:r1], axis=0, out=u)
                    redraw = renew[r0:r1] < q[r0:r1, None]
                    np.subtract(fresh_u[r0:r1], u, out=t1)
                    np.multiply(t1, redraw, out=t1)
                    np.add(u, t1, out=u)
                else:
                    u[:] = fresh_u[r0:r1]
                np.less(u, p, out=lo)
            else:  # expected: LOS probability-weighted loss in dB
                p = self._los_prob_lookup(lnd, nc)
                np.greater_equal(p, 0.5, out=lo)
                np.subtract(pl, nl, out=t1)
                np.multiply(t1, p, out=t1)
                np.add(nl, t1, out=pl)
                nl = None
            if nl is not None:  # pl <- where(los, pl, nl) as a blend (masked copies are slow)
                lof = self._buf("lof", nc)
                np.copyto(lof, lo)  # the LOS state as 0/1 floats, reused below (casting bool each time is slow)
                np.subtract(pl, nl, out=t1)
                np.multiply(t1, lof, out=t1)
                np.add(nl, t1, out=pl)

        # Shadow fading: unit AR(1) process in the distance moved, scaled by the LOS state's sigma.
        sig_l, sig_n = self.shadow_std_db
        g = g_full[r0:r1]
        if z is None:
            g[:] = 0
            np.copyto(pathloss[r0:r1], pl)
            return
        zc = z[r0:r1]
        if lof is None:
            lof = self._buf("lof", nc)
            np.copyto(lof, lo)
        if has_prev:
            gp = self._buf("gp", nc)
            np.take(self._g, pr[r0:r1], axis=0, out=gp)
            rnc = rn[r0:r1]
            dl, dn = self.shadow_decorrelation_m
            if dl != dn:
                # rho = rho_N + los (rho_L - rho_N), s = s_N + los (s_L - s_N), s = sqrt(1 - rho^2):
                # g <- rho g + s z with the coefficients of the link's LOS state.
                rlc = rl[r0:r1]
                rho = self._buf("t2", nc)
                np.multiply(lof, rlc - rnc, out=rho)
                np.add(rho, rnc, out=rho)
                np.multiply(gp, rho, out=g)
                snc = np.sqrt(1 - rnc * rnc)
                np.multiply(lof, np.sqrt(1 - rlc * rlc) - snc, out=t1)
                np.add(t1, snc, out=t1)
                np.multiply(t1, zc, out=t1)
                np.add(g, t1, out=g)
            else:
                np.multiply(gp, rnc, out=g)
                np.multiply(zc, np.sqrt(1 - rnc * rnc), out=t1)
                np.add(g, t1, out=g)
        else:
            g[:] = zc
        if sig_l == sig_n:
            np.multiply(g, sig_n, out=t1)
        else:
            np.multiply(lof, np.float32(sig_l - sig_n), out=t1)
            np.add(t1, np.float32(sig_n), out=t1)
            np.multiply(t1, g, out=t1)
        np.add(pl, t1, out=pathloss[r0:r1])

    def _los_prob_lookup(self, lnd: np.ndarray, n: int) -> np.ndarray:
        """LOS probability from a per-RSU table uniform in L = ln(d3D^2) (4096 cells, 1 m .. 100 km)."""
        idx = self._buf("pidx", n)
        np.subtract(lnd, self._ptab_l0, out=idx)
        np.multiply(idx, self._ptab_scale, out=idx)
        np.clip(idx, 0, self._ptab_cells - 1, out=idx)
        ii = idx.astype(np.int32)
        np.multiply(ii, self.num_rsus, out=ii)
        np.add(ii, self._rsu_arange, out=ii)
        return self._ptab.take(ii)

    def _empty_step(self, time_s, ids, xy, n):
        m = self.num_rsus
        link = LinkState(float(time_s), ids, xy, np.full(n, -1), np.full((n, m), -np.inf), np.full((n, m), np.inf),
                         np.full(n, -np.inf), np.full(n, -np.inf), [], los=np.zeros((n, m), bool),
                         serving_gain=np.zeros(n), uplink_interference_w_hz=np.zeros(n), downlink_interference_w_hz=np.zeros(n))
        self._ids, self._row = ids, dict(zip(ids, range(n)))
        self._xy = xy
        self._g = np.zeros((n, m), np.float32)
        self._u = np.zeros((n, m), np.float32)
        self._meas = np.zeros((n, m), np.float32)
        self._serving = np.full(n, -1)
        self._cand = np.full(n, -1)
        self._cand_since = np.zeros(n)
        self._last_from = np.full(n, -1)
        self._last_to = np.full(n, -1)
        self._last_ho_s = np.full(n, -np.inf)
        self._pl_state = self._los_state = None
        self.last = link
        return link

    def _associate(self, time_s, ids, xy, meas, old, pr, has_prev):
        """A3 handover with hysteresis + offset and time-to-trigger; RLF below min_rsrp_dbm."""
        cfg = self.cfg
        n = len(ids)
        if has_prev:
            serving = np.where(old, self._serving[pr], -1)
            cand = np.where(old, self._cand[pr], -1)
            since = np.where(old, self._cand_since[pr], time_s)
            last_from = np.where(old, self._last_from[pr], -1)
            last_to = np.where(old, self._last_to[pr], -1)
            last_t = np.where(old, self._last_ho_s[pr], -np.inf)
        else:
            serving, cand = np.full(n, -1), np.full(n, -1)
            since = np.full(n, float(time_s))
            last_from, last_to, last_t = np.full(n, -1), np.full(n, -1), np.full(n, -np.inf)
        rows = np.arange(n)
        best = meas.argmax(1)
        best_val = meas[rows, best].astype(float)
        conn = serving >= 0
        s0 = np.maximum(serving, 0)
        s_val = np.where(conn, meas[rows, s0], -np.inf)
        cond = conn & (best != serving) & (best_val > s_val + cfg.handover_hysteresis_db + cfg.handover_offset_db) \
            & (best_val >= cfg.min_rsrp_dbm)
        since = np.where(cond & (cand == best), since, time_s)
        cand = np.where(cond, best, -1)
        fire = cond & (time_s - since >= cfg.time_to_trigger_s - 1e-9)
        rlf = conn & ~fire & (s_val < cfg.min_rsrp_dbm)
        rlf_ho = rlf & (best_val >= cfg.min_rsrp_dbm) & (best != serving)
        ho = fire | rlf_ho
        new_serving = serving.copy()
        new_serving[ho] = best[ho]
        new_serving[rlf & ~rlf_ho] = -1
        attach = ~conn & (best_val >= cfg.min_rsrp_dbm)
        new_serving[attach] = best[attach]
        cand[ho] = -1
        events: list[HandoverEvent] = []
        hi = np.flatnonzero(ho)
        if hi.size:
            frm, to = serving[hi], best[hi]
            pp = (to == last_from[hi]) & (frm == last_to[hi]) & (time_s - last_t[hi] <= cfg.ping_pong_window_s + 1e-9)
            self.handover_count += int(hi.size)
            self.ping_pong_count += int(pp.sum())
            self.rlf_count += int(rlf_ho[hi].sum())
            k = hi.size
            vids = map(ids.__getitem__, hi.tolist())
            rl_hi = rlf_ho[hi]
            kinds = np.where(rl_hi, "rlf", "a3").tolist() if rl_hi.any() else repeat("a3", k)
            events = list(starmap(HandoverEvent, zip(repeat(float(time_s), k), vids, frm.tolist(), to.tolist(),
                                                     meas[hi, frm].tolist(), meas[hi, to].tolist(), xy[hi, 0].tolist(),
                                                     xy[hi, 1].tolist(), kinds, pp.tolist())))
            last_from[hi], last_to[hi], last_t[hi] = frm, to, time_s
        self._serving, self._cand, self._cand_since = new_serving, cand, np.asarray(since, dtype=float)
        self._last_from, self._last_to, self._last_ho_s = last_from, last_to, last_t
        return new_serving, events

    def _link_state(self, time_s, ids, xy, serving, rsrp, pl, los, events) -> LinkState:
        cfg = self.cfg
        n, m = len(ids), self.num_rsus
        conn = serving >= 0
        s0 = np.maximum(serving, 0)
        rows = np.arange(n)
        gain = self._buf("gain", n)
        np.multiply(pl, np.float32(-np.log(10) / 10), out=gain)
        np.exp(gain, out=gain)
        g_serv = np.where(conn, gain[rows, s0], 0.0).astype(float)
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
                rx = self._buf("t1", n)
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
        bw = self.rsu_bandwidth_hz[s0]
        ul_sinr = self.default_tx_power_w * g_serv / (bw * (self.rsu_noise_psd_w_hz[s0] + ul_i))
        dl_sinr = self.rsu_tx_psd_w_hz[s0] * g_serv / (self.vehicle_noise_psd_w_hz + dl_i)
        with np.errstate(divide="ignore"):
            ul_db = np.where(conn, 10 * np.log10(ul_sinr), -np.inf)
            dl_db = np.where(conn, 10 * np.log10(dl_sinr), -np.inf)
        return LinkState(float(time_s), ids, xy, serving, rsrp, pl, ul_db, dl_db, events, los=los,
                         serving_gain=g_serv, uplink_interference_w_hz=ul_i, downlink_interference_w_hz=dl_i)

    # ------------------------------------------------------------------ rates
    def _shannon(self, bandwidth_hz, sinr):
        """b min(log2(1 + sinr / gap), cap), 0 below min_sinr (min_sinr > 0, so also 0 where sinr = 0)."""
        cfg = self.cfg
        se = np.log2(1.0 + (sinr / self.snr_gap if self.snr_gap != 1.0 else sinr))
        if cfg.max_spectral_efficiency_bps_hz > 0:
            np.minimum(se, cfg.max_spectral_efficiency_bps_hz, out=se)
        return np.where(sinr >= self.min_sinr, bandwidth_hz * se, 0.0)

    @staticmethod
    def _bcast(x, shape):
        x = np.asarray(x, dtype=float)
        return x if x.shape == shape else np.broadcast_to(x, shape)

    def uplink_sinr(self, link: LinkState, idx, tx_power_w, bandwidth_hz) -> np.ndarray:
        """Linear uplink SINR of vehicles `idx` sending `tx_power_w` over `bandwidth_hz` (0 if not connected)."""
        idx = np.asarray(idx, dtype=int)
        p = np.minimum(self._bcast(tx_power_w, idx.shape), self.max_tx_power_w)
        b = self._bcast(bandwidth_hz, idx.shape)
        s = np.asarray(link.serving)[idx]
        pos = b > 0
        conn = (s >= 0) & pos
        noise = (self.rsu_noise_psd_w_hz[np.maximum(s, 0)] + link.uplink_interference_w_hz[idx]) * np.where(pos, b, 1.0)
        return np.where(conn, p * link.serving_gain[idx] / noise, 0.0)

    def uplink_rate_bps(self, link: LinkState, idx: np.ndarray, tx_power_w: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray:
        """Shannon uplink rate b log2(1 + p g / (b (N0 NF + I)) / gap), capped; 0 where not connected.
        The power is clipped to the vehicle maximum."""
        idx = np.asarray(idx, dtype=int)
        b = self._bcast(bandwidth_hz, idx.shape)
        return self._shannon(b, self.uplink_sinr(link, idx, tx_power_w, b))  # SINR 0 -> rate 0

    def downlink_rate_bps(self, link: LinkState, idx: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray:
        """Downlink rate over `bandwidth_hz` of the serving RSU (its transmit PSD is fixed)."""
        idx = np.asarray(idx, dtype=int)
        b = self._bcast(bandwidth_hz, idx.shape)
        conn = (np.asarray(link.serving)[idx] >= 0) & (b > 0)
        sinr = 10.0 ** (link.downlink_sinr_db[idx] / 10)   # -inf dB (not connected) -> 0
        return np.where(conn, self._shannon(b, sinr), 0.0)

    # ------------------------------------------------------------------ handover window
    def predict_dwell_s(self, link: LinkState, idx: np.ndarray, future_xy_m: list[np.ndarray],
                        future_t_s: list[np.ndarray]) -> np.ndarray:
        """Predicted time left in the serving cell for vehicles `idx`, from their predicted positions
        `future_xy_m[k]` (T_k, 2) at relative times `future_t_s[k]` (T_k,).

        At each future point the expected RSRP of every RSU is the mean path loss (LOS probability
        conditioned on today's LOS state, which persists with probability exp(-d/d_los)) plus today's
        shadowing decayed by exp(-d/d_corr) (its conditional mean), d being the distance driven along
        the predicted path. The vehicle leaves when a neighbour beats the serving RSU by the A3
        hysteresis + offset for time-to-trigger, or the serving RSRP falls below min_rsrp_dbm.
        inf = stays within the horizon; 0 = not connected.
        """
        cfg = self.cfg
        idx = np.asarray(idx, dtype=int)
        k = idx.size
        out = np.full(k, np.inf)
        serving = np.asarray(link.serving)[idx]
        out[serving < 0] = 0.0
        if k == 0 or self.num_rsus == 0:
            return out
        lens = np.asarray([len(t) for t in future_t_s], dtype=int)
        row = link.index()
        # Current per-link state of these vehicles (if the link is the channel's last step).
        same = self.last is link
        chunk = max(1, int(4_000_000 // max(self.num_rsus, 1)))
        start = 0
        while start < k:
            stop, tot = start, 0
            while stop < k and (tot == 0 or tot + lens[stop] <= chunk):
                tot += lens[stop]
                stop += 1
            self._dwell_chunk(link, idx, serving, future_xy_m, future_t_s, lens, start, stop, out, same, row)
            start = stop
        return out

    def _dwell_chunk(self, link, idx, serving, fxy, ft, lens, a, b, out, same, row):
        cfg = self.cfg
        sel = [j for j in range(a, b) if serving[j] >= 0 and lens[j] > 0]
        if not sel:
            return
        xy = np.concatenate([np.asarray(fxy[j], dtype=float).reshape(-1, 2) for j in sel])
        t = np.concatenate([np.asarray(ft[j], dtype=float).reshape(-1) for j in sel])
        owner = np.repeat(np.arange(len(sel)), lens[sel])
        first = np.r_[True, owner[1:] != owner[:-1]]
        # Distance driven along the predicted path from the current position.
        cur = np.asarray(link.xy_m)[idx[sel]]
        prev = np.where(first[:, None], cur[owner], np.roll(xy, 1, axis=0))
        seg = np.sqrt(((xy - prev) ** 2).sum(1))
        cs = np.cumsum(seg)
        base = np.maximum.accumulate(np.where(first, cs - seg, 0.0))
        dist = cs - base
        d2d = self._distances(xy)
        pl_los, pl_nlos = self._los_nlos_db(d2d)
        lm = cfg.los_model
        rows = idx[sel][owner]
        if lm == "los" or cfg.pathloss_model == "freespace":
            pl = pl_los
        elif lm == "nlos":
            pl = pl_nlos
        else:
            p = plm.los_probability(cfg.pathloss_model, d2d, cfg.vehicle_height_m)
            if lm == "stochastic" and same and link.los is not None:
                u = self._u[rows]
                los_then = (d2d * d2d < u) if self._los_by_threshold else (u < p)
                keep = np.exp(-dist / cfg.los_correlation_distance_m)[:, None]
                p = keep * los_then + (1 - keep) * p
            pl = p * pl_los + (1 - p) * pl_nlos
        if same and (self.shadow_std_db[0] > 0 or self.shadow_std_db[1] > 0):
            los_now = link.los[rows]
            sh_now = self._g[rows] * np.where(los_now, self.shadow_std_db[0], self.shadow_std_db[1])
            dcor = np.where(los_now, self.shadow_decorrelation_m[0], self.shadow_decorrelation_m[1])
            pl = pl + sh_now * np.exp(-dist[:, None] / dcor)
        rsrp = self.rsu_tx_power_dbm[None, :] - self.rsrp_offset_db[None, :] - pl
        s = serving[sel][owner]
        pr = np.arange(len(t))
        s_val = rsrp[pr, s]
        rsrp[pr, s] = -np.inf
        best = rsrp.max(1)
        a3 = (best > s_val + cfg.handover_hysteresis_db + cfg.handover_offset_db) & (best >= cfg.min_rsrp_dbm)
        prev_a3 = np.r_[False, a3[:-1]] & ~first
        run_start = np.maximum.accumulate(np.where(a3 & ~prev_a3, pr, 0))
        fire = (a3 & (t - t[run_start] >= cfg.time_to_trigger_s - 1e-9)) | (s_val < cfg.min_rsrp_dbm)
        res = np.full(len(sel), np.inf)
        np.minimum.at(res, owner[fire], np.maximum(t[fire], 0.0))
        out[np.asarray(sel)] = res


def dwell_prediction_error(predicted_s, actual_s, ended_by_handover=None) -> dict:
    """Error statistics of dwell-time predictions against the dwell times observed.

    `predicted_s`, `actual_s`: per prediction; `ended_by_handover` (bool, optional) marks dwells that
    ended with a handover (others ended because the vehicle left or the log stopped, so the actual
    time is only a lower bound and they are excluded). Infinite predictions are counted apart.
    """
    pred = np.asarray(predicted_s, dtype=float)
    act = np.asarray(actual_s, dtype=float)
    use = np.isfinite(act)
    if ended_by_handover is not None:
        use &= np.asarray(ended_by_handover, dtype=bool)
    fin = use & np.isfinite(pred)
    err = pred[fin] - act[fin]
    out = {"count": int(use.sum()), "finite_predictions": int(fin.sum()), "infinite_predictions": int((use & ~np.isfinite(pred)).sum())}
    if err.size:
        out.update(mean_error_s=float(err.mean()), mae_s=float(np.abs(err).mean()), rmse_s=float(np.sqrt((err ** 2).mean())),
                   median_abs_error_s=float(np.median(np.abs(err))),
                   mape=float(np.mean(np.abs(err) / np.maximum(act[fin], 1e-9))))
    else:
        out.update(mean_error_s=np.nan, mae_s=np.nan, rmse_s=np.nan, median_abs_error_s=np.nan, mape=np.nan)
    return out
