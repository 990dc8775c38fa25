"""Path loss, LOS state and shadow fading of every vehicle-to-RSU link, advanced once per step.

Per link it keeps two spatially consistent random processes along the vehicle's path, both driven
by the distance the vehicle moved since the previous step:

* shadow fading: a unit Gaussian AR(1) process g with correlation exp(-dd / d_corr)
  (Gudmundson 1991, the exponential model of TR 38.901 §7.5/§7.6.3.1), scaled by the table's
  standard deviation of the link's LOS state;
* LOS state: a uniform variable u that is redrawn with probability 1 - exp(-dd / d_los), so that
  P(unchanged after distance d) = exp(-d / d_los); the link is LOS when u < Pr_LOS(d2D)
  (spatially consistent LOS state, TR 38.901 §7.6.3.3 with the correlation distance of
  Table 7.6.3.1-2).

The path loss is `pathloss.log_distance_model` evaluated in float32 on L = ln(d3D^2), vectorized
over vehicles x RSUs in row blocks that stay in the CPU cache. All randomness comes from the rng
given to the kernel (the channel's `np.random.default_rng([seed, 1])`), read in a fixed order.
"""
from __future__ import annotations

import numpy as np

from iovsim.channel import pathloss as plm
from iovsim.channel.buffers import WorkBuffers
from iovsim.channel.config import ChannelConfig


class LinkKernel:
    """The per-link random processes and the path loss of each step (see the module docstring)."""

    POOL = 1 << 22
    block_links = 65536  # links per row block: bounds the work arrays (256 KB each) for large N

    def __init__(self, cfg: ChannelConfig, rsu_xy_m: np.ndarray, rsu_height_m: np.ndarray, rng: np.random.Generator):
        self.cfg = cfg
        self.rsu_xy_m = rsu_xy_m
        self.num_rsus = m = len(rsu_xy_m)
        self.rng = rng
        self.model = plm.log_distance_model(cfg.pathloss_model, cfg.carrier_frequency_hz, rsu_height_m, cfg.vehicle_height_m)
        sf = plm.SHADOW_STD_DB[cfg.pathloss_model]
        self.shadow_std_db = (cfg.shadowing_std_db or sf[0], cfg.shadowing_std_db or sf[1]) if cfg.shadowing else (0.0, 0.0)
        dc = plm.SHADOW_DECORRELATION_M[cfg.pathloss_model]
        self.shadow_decorrelation_m = (cfg.shadowing_decorrelation_m or dc[0], cfg.shadowing_decorrelation_m or dc[1])
        self.buffers = WorkBuffers(m)
        self._pools: dict[str, np.ndarray] = {}
        self._rsu_arange = np.arange(m, dtype=np.int32)
        self._fold_constants()
        self._los_tables()
        self.forget(0)

    def forget(self, n: int) -> None:
        """Per-link state of `n` new vehicles (no history)."""
        m = self.num_rsus
        self.g = np.zeros((n, m), np.float32)   # unit shadowing process
        self.u = np.zeros((n, m), np.float32)   # LOS state: D(u)^2 threshold (or the uniform u itself)
        self.pl_state = self.los_state = None

    # ------------------------------------------------------------------ constants
    def _fold_constants(self):
        """The model's lines in L = ln(d3D^2), as the vectorized step evaluates them:
        b log10(d3D) = b / (2 ln 10) L, and PL2 = PL1 + (b2 - b1) / (2 ln 10) max(0, L - L_bp)
        exactly (PL1 = PL2 at d2D = d'_BP), L_bp = ln(d'_BP^2 + (h_BS - h_UT)^2)."""
        md = self.model
        los1, los2, nlos = md.los_near, md.los_far, md.nlos
        dbp, dh2 = md.breakpoint_m, md.height_diff_sq_m2
        k = 1.0 / (2.0 * np.log(10.0))
        f32 = np.float32
        self._origin = self.rsu_xy_m.mean(0) if len(self.rsu_xy_m) else np.zeros(2)
        self._rsu_xr = (self.rsu_xy_m - self._origin).astype(f32)
        self._dh2_f32 = np.asarray(dh2, dtype=f32)
        self._min_d2 = f32(0.0 if md.model == "freespace" else plm.MIN_D2D_M ** 2)
        self._a_los1 = f32(los1[0])
        self._c_los1 = f32(los1[1] * k)
        self._c_los2 = f32((los2[1] - los1[1]) * k)
        # PL2 = a1 - c2 L_bp + (c1 + c2) L.
        self._a_los2 = (los1[0] - (los2[1] - los1[1]) * k * np.log(dbp ** 2 + dh2)).astype(f32)
        self._a_nlos = f32(nlos[0])
        self._c_nlos = f32(nlos[1] * k)

    def _los_tables(self):
        """LOS probability per RSU, uniform in L (4096 cells from d2D = 1 m to 100 km), and its inverse."""
        cfg, m, f32 = self.cfg, self.num_rsus, np.float32
        model, h_ut, dh2 = cfg.pathloss_model, cfg.vehicle_height_m, self.model.height_diff_sq_m2
        cells = 4096
        l0 = float(np.log(1.0 + np.min(dh2))) if m else 0.0
        l1 = float(np.log(1e10 + np.max(dh2))) if m else 1.0
        self._ptab_l0 = f32(l0)
        self._ptab_scale = f32(cells / (l1 - l0))
        centres = l0 + (np.arange(cells) + 0.5) / self._ptab_scale
        d2d = np.sqrt(np.maximum(np.exp(centres)[None, :] - np.broadcast_to(dh2, (m,))[:, None], 0.0))
        tab = np.ones((m, cells)) if model == "freespace" else plm.los_probability(model, d2d, h_ut)
        self._ptab = tab.astype(f32).T.copy().ravel()  # index: cell * M + rsu
        self._ptab_cells = cells
        # Inverse LOS probability: D(u)^2 on a 2^20-point grid of u (used when Pr_LOS decreases with d).
        d_fine = np.geomspace(1.0, 1e8, 200_000)
        p_fine = np.ones_like(d_fine) if model == "freespace" else plm.los_probability(model, d_fine, h_ut)
        self.los_by_threshold = bool(np.all(np.diff(p_fine) <= 1e-12))
        if self.los_by_threshold:
            u = (np.arange(1 << 20) + 0.5) / (1 << 20)
            self._thr_tab = (np.interp(u, p_fine[::-1], d_fine[::-1]) ** 2).astype(f32)

    # ------------------------------------------------------------------ float64 helpers
    def distances_m(self, xy: np.ndarray) -> np.ndarray:
        """Horizontal distances (P, M) of points `xy` (P, 2) to every RSU."""
        dx = xy[:, 0:1] - self.rsu_xy_m[None, :, 0]
        dy = xy[:, 1:2] - self.rsu_xy_m[None, :, 1]
        return np.sqrt(dx * dx + dy * dy)

    def mean_pathloss_db(self, d2d_m: np.ndarray) -> np.ndarray:
        """Path loss without shadowing: per the LOS model, `stochastic` and `expected` weighting
        LOS and NLOS loss (dB) by the LOS probability."""
        d2d = np.asarray(d2d_m, dtype=float)
        pl_los, pl_nlos = self.model.los_nlos_db(d2d)
        lm = self.cfg.los_model
        if lm == "los":
            return pl_los
        if lm == "nlos":
            return pl_nlos
        p = plm.los_probability(self.cfg.pathloss_model, d2d, self.cfg.vehicle_height_m)
        return p * pl_los + (1 - p) * pl_nlos

    # ------------------------------------------------------------------ random variates
    def _pool_slice(self, kind: str, size: int) -> np.ndarray:
        """`size` values from a pre-drawn pool of N(0,1) or U(0,1) numbers at a random offset.

        Drawing 50,000 fresh variates per step costs more than the rest of the step; a pool of
        2^22 values read at a fresh random offset each step gives the same marginal statistics
        and no visible dependence between steps (the offsets are drawn from the channel's rng)."""
        pool = self._pools.get(kind)
        if pool is None or pool.size < 4 * size:
            count = max(self.POOL, 4 * size)
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

    # ------------------------------------------------------------------ one step
    def advance(self, xy: np.ndarray, pr: np.ndarray, moved: np.ndarray, has_prev: bool):
        """Path loss (N, M, float32, dB, with shadowing) and LOS state (N, M, bool) of the vehicles at
        `xy`; row `pr[k]` of the previous step is vehicle k's history when `has_prev` (`moved[k]` is
        inf for a new vehicle). The per-link state then becomes this step's."""
        cfg = self.cfg
        n, m = len(xy), self.num_rsus
        f32 = np.float32
        stochastic = cfg.los_model == "stochastic" and cfg.pathloss_model != "freespace"
        xr = (xy - self._origin).astype(f32)
        mm = n * m
        # Full-size results; the (N, M) work runs in row blocks that stay in the CPU cache.
        pathloss = np.empty((n, m), f32)
        los = np.empty((n, m), bool)
        g = self.buffers.get("g", n)
        thr = self.buffers.get("u", n)
        shadow = self.shadow_std_db[0] > 0 or self.shadow_std_db[1] > 0
        z = self._pool_slice("normal", mm).reshape(n, m) if shadow else None
        renew = self._pool_slice("uniform", mm).reshape(n, m) if stochastic and has_prev else None
        fresh_u = self._pool_slice("uniform", mm).reshape(n, m) if stochastic and not self.los_by_threshold else None
        q = (-np.expm1(-moved / cfg.los_correlation_distance_m)).astype(f32)  # P(LOS variable renewed)
        rn = rl = None
        if shadow and has_prev:
            dl, dn = self.shadow_decorrelation_m
            rn = np.exp(-moved / dn).astype(f32)[:, None]
            rl = np.exp(-moved / dl).astype(f32)[:, None]
        rows = max(16, self.block_links // max(m, 1))
        act = None
        if has_prev and self.pl_state is not None and self.pl_state.shape[1] == m:
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
        # Remember (swap work arrays with the state so nothing is copied).
        self.g = self.buffers.keep("g", g)
        self.u = self.buffers.keep("u", thr) if stochastic else np.zeros((n, m), f32)
        self.pl_state, self.los_state = pathloss, los  # also in the LinkState: not to be modified
        return pathloss, los

    def _rows_moving(self, act, st, rows, n, xr, pr, q, rn, rl, stochastic, z, renew, fresh_u, pathloss, los, g, thr):
        """`_rows` for the vehicles `act` that moved (or are new), the rows of the standing vehicles
        `st` copied from the previous step. The moving vehicles are processed in the same row blocks
        as `_rows` on all vehicles would use, so the random variates are read identically."""
        pst = pr[st]
        pathloss[st] = self.pl_state[pst]
        los[st] = self.los_state[pst]
        g[st] = self.g[pst]
        if stochastic:
            thr[st] = self.u[pst]
        cuts = np.searchsorted(act, np.arange(0, n + rows, rows))
        for b0, b1 in zip(cuts[:-1], cuts[1:]):
            if b1 <= b0:
                continue
            a = act[b0:b1]
            na = a.size
            zc = None if z is None else np.take(z, a, axis=0, out=self.buffers.get("c_z", na))
            rc = None if renew is None else np.take(renew, a, axis=0, out=self.buffers.get("c_renew", na))
            fc = None if fresh_u is None else np.take(fresh_u, a, axis=0, out=self.buffers.get("c_fresh", na))
            pl_c, los_c = self.buffers.get("c_pl", na), self.buffers.get("c_los", na, bool)
            g_c, thr_c = self.buffers.get("c_g", na), self.buffers.get("c_thr", na)
            self._rows(0, na, xr[a], pr[a], q[a], None if rn is None else rn[a], None if rl is None else rl[a], True,
                       stochastic, zc, rc, fc, pl_c, los_c, g_c, thr_c)
            pathloss[a] = pl_c
            los[a] = los_c
            g[a] = g_c
            if stochastic:
                thr[a] = thr_c

    def _rows(self, r0, r1, xr, pr, q, rn, rl, has_prev, stochastic, z, renew, fresh_u, pathloss, los, g_full, thr_full):
        """Path loss, LOS state and shadowing of vehicles r0:r1 into the full-size outputs."""
        nc = r1 - r0
        d2, lnd, pl = self._los_line_db(xr[r0:r1], nc)
        pl, lof = self._los_state(r0, r1, d2, lnd, pl, los[r0:r1], pr, q, has_prev, stochastic, renew, fresh_u, thr_full)
        self._shadowing(r0, r1, pl, lof, los[r0:r1], pr, rn, rl, has_prev, z, pathloss, g_full)

    def _los_line_db(self, xr, nc):
        """Squared distances d2D^2, L = ln(d3D^2) and the LOS path loss (float32 work buffers)."""
        d2 = self.buffers.get("d2", nc)
        t1 = self.buffers.get("t1", nc)
        np.subtract(xr[:, 0:1], self._rsu_xr[None, :, 0], out=d2)
        np.multiply(d2, d2, out=d2)
        np.subtract(xr[:, 1:2], self._rsu_xr[None, :, 1], out=t1)
        np.multiply(t1, t1, out=t1)
        np.add(d2, t1, out=d2)
        # L = ln(d3D^2), d2D clamped to the tables' minimum (freespace: d3D >= 1 m).
        lnd = self.buffers.get("lnd", nc)
        np.maximum(d2, self._min_d2, out=lnd)
        np.add(lnd, self._dh2_f32, out=lnd)
        np.log(lnd, out=lnd)
        pl = self.buffers.get("pl", nc)   # mean path loss of the link's LOS state
        np.multiply(lnd, self._c_los1, out=pl)
        np.add(pl, self._a_los1, out=pl)
        if self.cfg.pathloss_model != "freespace":
            # LOS loss = max(PL1, PL2): PL2 - PL1 grows with L and is 0 at d'_BP.
            np.multiply(lnd, self._c_los1 + self._c_los2, out=t1)
            np.add(t1, self._a_los2, out=t1)
            np.maximum(pl, t1, out=pl)
        return d2, lnd, pl

    def _los_state(self, r0, r1, d2, lnd, pl, lo, pr, q, has_prev, stochastic, renew, fresh_u, thr_full):
        """Each link's LOS state into `lo`; the loss of that state (or the expected loss) into `pl`.
        Returns (pl, the LOS state as 0/1 floats or None)."""
        cfg = self.cfg
        nc, m = r1 - r0, self.num_rsus
        t1 = self.buffers.get("t1", nc)
        if cfg.pathloss_model == "freespace" or cfg.los_model == "los":
            lo[:] = True
            return pl, None
        nl = self.buffers.get("nl", nc)
        np.multiply(lnd, self._c_nlos, out=nl)
        np.add(nl, self._a_nlos, out=nl)
        np.maximum(nl, pl, out=nl)      # PL_NLOS = max(PL_LOS, PL'_NLOS)
        if cfg.los_model == "nlos":
            lo[:] = False
            return nl, None
        if stochastic and self.los_by_threshold:
            # u < Pr_LOS(d) <=> d^2 < D(u)^2 (Pr_LOS decreasing): keep D(u)^2 per link and
            # redraw it only where u is renewed this step.
            thr = thr_full[r0:r1]
            if has_prev:
                np.take(self.u, pr[r0:r1], axis=0, out=thr)
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
                np.take(self.u, pr[r0:r1], axis=0, out=u)
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
            return pl, None
        # pl <- where(los, pl, nl) as a blend (masked copies are slow)
        lof = self.buffers.get("lof", nc)
        np.copyto(lof, lo)  # the LOS state as 0/1 floats, reused below (casting bool each time is slow)
        np.subtract(pl, nl, out=t1)
        np.multiply(t1, lof, out=t1)
        np.add(nl, t1, out=pl)
        return pl, lof

    def _shadowing(self, r0, r1, pl, lof, lo, pr, rn, rl, has_prev, z, pathloss, g_full):
        """Shadow fading: unit AR(1) process in the distance moved, scaled by the LOS state's sigma;
        `pl` + shadowing into `pathloss[r0:r1]`."""
        nc = r1 - r0
        t1 = self.buffers.get("t1", nc)
        sig_l, sig_n = self.shadow_std_db
        g = g_full[r0:r1]
        if z is None:
            g[:] = 0
            np.copyto(pathloss[r0:r1], pl)
            return
        zc = z[r0:r1]
        if lof is None:
            lof = self.buffers.get("lof", nc)
            np.copyto(lof, lo)
        if has_prev:
            self._shadow_ar1(g, np.take(self.g, pr[r0:r1], axis=0, out=self.buffers.get("gp", nc)), zc, lof,
                             rn[r0:r1], None if rl is None else rl[r0:r1], t1, nc)
        else:
            g[:] = zc
        if sig_l == sig_n:
            np.multiply(g, sig_n, out=t1)
        else:
            np.multiply(lof, np.float32(sig_l - sig_n), out=t1)
            np.add(t1, np.float32(sig_n), out=t1)
            np.multiply(t1, g, out=t1)
        np.add(pl, t1, out=pathloss[r0:r1])

    def _shadow_ar1(self, g, gp, zc, lof, rnc, rlc, t1, nc):
        """g <- rho g_prev + sqrt(1 - rho^2) z with the coefficients of each link's LOS state."""
        dl, dn = self.shadow_decorrelation_m
        if dl != dn:
            # rho = rho_N + los (rho_L - rho_N), s = s_N + los (s_L - s_N), s = sqrt(1 - rho^2).
            rho = self.buffers.get("t2", nc)
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

    def _los_prob_lookup(self, lnd: np.ndarray, n: int) -> np.ndarray:
        """LOS probability from a per-RSU table uniform in L = ln(d3D^2) (4096 cells, 1 m .. 100 km)."""
        idx = self.buffers.get("pidx", n)
        np.subtract(lnd, self._ptab_l0, out=idx)
        np.multiply(idx, self._ptab_scale, out=idx)
        np.clip(idx, 0, self._ptab_cells - 1, out=idx)
        ii = idx.astype(np.int32)
        np.multiply(ii, self.num_rsus, out=ii)
        np.add(ii, self._rsu_arange, out=ii)
        return self._ptab.take(ii)
