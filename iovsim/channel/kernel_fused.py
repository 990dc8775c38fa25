"""`LinkKernel.advance` of the default configuration (stochastic LOS by threshold, shadowing, a
previous step) as the compiled loops of `fused`: the same random variates in the same order, the
same row blocks, the same float32 operations, so the same links bit for bit (tested against the
numpy path). numpy keeps the transcendental calls: one logarithm per row block, the per-vehicle
exponentials. While a link's path loss is at hand the loops also write what the next stages read
again otherwise: the exponent of the linear gain and each vehicle's strongest RSU (RSRP itself is
`LinkState.rsrp_dbm`, computed when read)."""
from __future__ import annotations

import numpy as np

from iovsim.channel import fused as fz


class FusedLinks:
    """The compiled `advance` of a `LinkKernel` (its pools, buffers and per-link state)."""

    def __init__(self, kernel):
        self.kn = kn = kernel
        m, f32 = kn.num_rsus, np.float32
        # The kernel's float32 constants, per-RSU ones as (M,) arrays.
        self.c = np.array([kn._c_los1, kn._a_los1, kn._c_los1 + kn._c_los2, kn._c_nlos, kn._a_nlos], f32)
        self.a_los2 = np.broadcast_to(kn._a_los2, (m,)).astype(f32)
        self.dh2 = np.broadcast_to(kn._dh2_f32, (m,)).astype(f32)
        self.rsu_x, self.rsu_y = kn._rsu_xr[:, 0].copy(), kn._rsu_xr[:, 1].copy()
        self.row_buf = np.empty((3, m), f32)  # LOS line, NLOS line, d2D^2 of one row
        dl, dn = kn.shadow_decorrelation_m
        sig_l, sig_n = kn.shadow_std_db
        # Distances of the per-vehicle exponentials: LOS renewal, shadowing rho of NLOS and LOS links.
        self.dec = np.array([kn.cfg.los_correlation_distance_m, dn, dl])
        self.sig = np.array([sig_l - sig_n, sig_n], f32)
        self._best = (None, np.zeros(0, np.int64))  # (the path loss array it was found on, strongest RSUs)

    def covers(self, has_prev: bool) -> bool:
        """Whether `advance` computes this step (else `LinkKernel.advance` does)."""
        kn, cfg = self.kn, self.kn.cfg
        return (has_prev and cfg.los_model == "stochastic" and cfg.pathloss_model != "freespace"
                and kn.los_by_threshold and (kn.shadow_std_db[0] > 0 or kn.shadow_std_db[1] > 0))

    def advance(self, xy, pr, moved, arg, rsrp_base, gain_exp, best):
        """(path loss, LOS state) of this step, -PL ln10 / 10 into `gain_exp` (N, M) and the argmax of
        each RSRP row (rsrp_base - path loss) into `best` (N,); the kernel's per-link state becomes
        this step's (as `LinkKernel.advance`). arg (3, N) = -moved / `dec` (`fused.motion`)."""
        kn = self.kn
        n, m, f32 = len(xy), kn.num_rsus, np.float32
        pathloss, los = np.empty((n, m), f32), np.empty((n, m), bool)
        g, thr = kn.buffers.get("g", n), kn.buffers.get("u", n)
        z = kn._pool_slice("normal", n * m).reshape(n, m)
        renew = kn._pool_slice("uniform", n * m).reshape(n, m)
        e_los, e_sh = np.expm1(arg[0]), np.exp(arg[1:])  # q = -e_los; rho of NLOS, LOS links (2, N)
        xr, idx = np.empty((n, 2), f32), np.empty((2, n), np.int64)
        veh = np.empty((5, n), f32)  # q, rn, rl, sn, sl
        keep = kn.pl_state is not None and kn.pl_state.shape[1] == m
        na, ns = fz.vehicle_prep(xy, kn._origin, moved, e_los, e_sh, keep, xr, veh, idx)
        out = (rsrp_base, pathloss, los, g, thr, gain_exp, best)
        if ns:
            has_best = self._best[0] is kn.pl_state
            fz.copy_rows(idx[1, :ns], pr, kn.pl_state, kn.los_state, kn.g, kn.u, self._best[1], has_best, *out)
        rows = max(16, kn.block_links // max(m, 1))
        act = idx[0, :na]
        cuts = [0, na] if n <= rows else np.searchsorted(act, np.arange(0, n + rows, rows)).tolist()
        for b0, b1 in zip(cuts[:-1], cuts[1:]):
            if b1 > b0:
                self._block(act[b0:b1], xr, pr, veh, z, renew, out)
        kn.g = kn.buffers.keep("g", g)
        kn.u = kn.buffers.keep("u", thr)
        kn.pl_state, kn.los_state = pathloss, los  # also in the LinkState: not to be modified
        self._best = (pathloss, best)
        return pathloss, los

    def _block(self, a, xr, pr, veh, z, renew, out):
        """The moving vehicles `a` of one row block (`LinkKernel._rows` on them)."""
        kn, na = self.kn, a.size
        lnd = kn.buffers.get("c_lnd", na)
        redraws = fz.distance_rows(a, xr, self.rsu_x, self.rsu_y, kn._min_d2, self.dh2, renew, veh[0], lnd)
        np.log(lnd, out=lnd)
        offset = 0
        if redraws:  # the block's renewed LOS variables: one slice of the pool, as the numpy path draws it
            kn._pool_slice("uniform", redraws)
            offset = kn._pool_offset
        fz.link_rows(a, pr, xr, self.rsu_x, self.rsu_y, lnd, renew, kn._thr_pool(), offset, kn.u, self.c, self.a_los2,
                     z, kn.g, veh, self.sig, *out, self.row_buf)
