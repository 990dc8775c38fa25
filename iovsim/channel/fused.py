"""Fused per-step loops of the channel, compiled with numba (without it they are plain Python,
run only when a Channel is built with fused=True: tests).

The numpy step makes ~250 small array calls per step; with SUMO evicting the caches between
steps their fixed cost, not the arithmetic, dominates. These loops do the same float32 / float64
operations per element, in the same order, as the numpy code they replace (`kernel.py`,
`handover.py`, `rates.py`; `fused_ids.py`, `fused_fading.py`, `fused_bler.py` for the id match,
fading and block errors), so the results are bit for bit those of the numpy path (tested). The
transcendental functions stay numpy calls between the loops (numpy's SIMD log/exp are ~7 times
faster than the scalar libm calls numba makes, and they are what the numpy path uses), and so do
the two interference matrix-vector products (the same BLAS calls, so the same sums). The one
exception is the block-error logistic, where scipy's `expit` itself calls the C library's exp.

No fast-math: that would let LLVM contract a * b + c into fused multiply-adds and change the
rounding. `AVAILABLE` is False without numba; `IOVSIM_NUMBA=0` in the environment turns it off.
"""
from __future__ import annotations

import os

import numpy as np

try:  # an accelerator: the channel gives the same results without it
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

AVAILABLE = numba is not None and os.environ.get("IOVSIM_NUMBA", "1") != "0"
#: dB of path loss -> exponent of the linear gain, exp(-PL ln 10 / 10) (float32, as `Radio.link_state`).
NEG_LN10_10 = np.float32(-np.log(10) / 10)


def jit(f):
    """numba.njit with the channel's options (cached machine code); `f` itself without numba."""
    if numba is None:
        return f
    return numba.njit(cache=True, nogil=True, error_model="numpy")(f)


_jit = jit


# ------------------------------------------------------------------ links (kernel.py)
@_jit
def motion(prev, xy, last_xy, dec, old, pr, moved, arg):
    """Per vehicle: seen in the previous step (row `prev` >= 0), that row (0 if new) and the distance
    moved since (inf if new), as `Channel.step`; arg[i] = -moved / dec[i] (the arguments of the link
    kernel's per-vehicle exponentials). Returns whether any vehicle was seen before."""
    seen = False
    for k in range(prev.size):
        p = prev[k]
        old[k] = p >= 0
        pr[k] = max(p, 0)
        d = np.inf
        if p >= 0:
            dx, dy = xy[k, 0] - last_xy[p, 0], xy[k, 1] - last_xy[p, 1]
            d = np.sqrt(dx * dx + dy * dy)
            seen = True
        moved[k] = d
        for i in range(dec.size):
            arg[i, k] = -d / dec[i]
    return seen


@_jit
def vehicle_prep(xy, origin, moved, e_los, e_sh, keep_standing, xr, veh, idx):
    """Per vehicle, as `LinkKernel.advance`: float32 position relative to the RSUs' centre, and in
    the rows of `veh` (float32) the renewal probability q = -expm1(-d / d_los), the shadowing rho
    (NLOS, LOS) = exp(-d / d_corr) and sqrt(1 - rho^2) (NLOS, LOS); the moving vehicles in idx[0]
    and, when `keep_standing` and at least one in eight stands, the standing ones in idx[1].
    Returns (number moving, number standing)."""
    n = moved.size
    stand = 0
    if keep_standing:
        for k in range(n):
            stand += moved[k] == 0.0
    keep = keep_standing and 8 * stand >= n
    one = np.float32(1.0)
    na = ns = 0
    for k in range(n):
        xr[k, 0], xr[k, 1] = np.float32(xy[k, 0] - origin[0]), np.float32(xy[k, 1] - origin[1])
        rn, rl = np.float32(e_sh[0, k]), np.float32(e_sh[1, k])
        veh[0, k], veh[1, k], veh[2, k] = np.float32(-e_los[k]), rn, rl
        veh[3, k], veh[4, k] = np.sqrt(one - rn * rn), np.sqrt(one - rl * rl)
        if keep and moved[k] == 0.0:
            idx[1, ns] = k
            ns += 1
        else:
            idx[0, na] = k
            na += 1
    return na, ns


@_jit
def first_max(base, pl, k):
    """First index of the largest RSRP base[j] - pl[k, j] (float32) of row `k` (0 if none is above
    -inf; NaNs never win): the loop `if r[j] > best` of the reference, kept apart from the arithmetic
    loops so that those vectorize. (Row views and slice assignments cost numba more than the loops:
    indices instead.)"""
    bj, bv = 0, -np.inf
    for j in range(pl.shape[1]):
        v = base[j] - pl[k, j]
        if v > bv:
            bj, bv = j, v
    return bj


@_jit
def copy_rows(st, pr, pl_prev, los_prev, g_prev, u_prev, best_prev, has_best, base, pathloss, los, g, thr, gain_exp,
              best):
    """Rows `st` of the outputs from their previous rows (vehicles that did not move); the gain exponent
    PL * (-ln 10 / 10) and the strongest RSU: the previous one (`has_best`: `best_prev` belongs to
    `pl_prev`; the same path loss row has the same argmax), else the first index of the largest RSRP
    = base - PL of the row."""
    m = pathloss.shape[1]
    for i in range(st.size):
        k = st[i]
        p = pr[k]
        for j in range(m):
            pl = pl_prev[p, j]
            pathloss[k, j] = pl
            gain_exp[k, j] = pl * NEG_LN10_10
        for j in range(m):
            g[k, j] = g_prev[p, j]
        for j in range(m):
            thr[k, j] = u_prev[p, j]
        for j in range(m):
            los[k, j] = los_prev[p, j]
        best[k] = best_prev[p] if has_best else first_max(base, pathloss, k)


@_jit
def distance_rows(rows, xr, rsu_x, rsu_y, min_d2, dh2, renew, q, lnd_arg):
    """max(d2D^2, d_min^2) + dh^2 (the argument of L = ln d3D^2) of the vehicles `rows` into the compact
    (len(rows), M) buffer; returns how many of their LOS variables are renewed."""
    m = rsu_x.size
    count = 0
    for i in range(rows.size):
        k = rows[i]
        x, y, qk = xr[k, 0], xr[k, 1], q[k]
        for j in range(m):
            dx = x - rsu_x[j]
            dy = y - rsu_y[j]
            dd = dx * dx + dy * dy
            lnd_arg[i, j] = (dd if dd >= min_d2 else min_d2) + dh2[j]
        for j in range(m):
            count += renew[k, j] < qk
    return count


@_jit
def link_rows(rows, pr, xr, rsu_x, rsu_y, lnd, renew, thr_pool, offset, u_prev, c, a_los2, z, g_prev, veh, sig,
              base, pathloss, los, g, thr, gain_exp, best, tmp):
    """Per moving vehicle `rows[i]` (L = lnd[i]): LOS and NLOS lines (c = c_los1, a_los1, c_los1 + c_los2,
    c_nlos, a_nlos), LOS state d2D^2 < D(u)^2 with D(u)^2 redrawn where renewed (from the pool at
    `offset`, row-major order), shadowing AR(1) g <- rho g_prev + sqrt(1 - rho^2) z (veh rows: q, rho
    NLOS, LOS, sqrt(1 - rho^2) NLOS, LOS), path loss = loss of the state + sigma g (sig = sigma_LOS -
    sigma_NLOS, sigma_NLOS), gain exponent and the strongest RSU, as `LinkKernel._rows`. One
    pass per row through the (3, M) row buffer `tmp` (LOS line, NLOS line, d2D^2). Always the blended
    rho, sqrt(1 - rho^2) and sigma: with equal LOS and NLOS values the blend is exactly the unblended
    product (x (0 lof + r) = x r); a loop-invariant branch between the two kept LLVM from vectorizing."""
    m = lnd.shape[1]
    c1, a1, c12, cn, an, dsig, sig_n = c[0], c[1], c[2], c[3], c[4], sig[0], sig[1]
    one, zero = np.float32(1.0), np.float32(0.0)
    last, o = thr_pool.size - 1, offset
    for i in range(rows.size):
        k = rows[i]
        p, x, y, qk = pr[k], xr[k, 0], xr[k, 1], veh[0, k]
        rnk, snk = veh[1, k], veh[3, k]
        drho, ds = veh[2, k] - rnk, veh[4, k] - snk
        for j in range(m):
            L = lnd[i, j]
            a, b = L * c1 + a1, L * c12 + a_los2[j]
            pl = a if a >= b else b
            nl = L * cn + an
            tmp[0, j] = pl
            tmp[1, j] = nl if nl >= pl else pl
            dx, dy = x - rsu_x[j], y - rsu_y[j]
            tmp[2, j] = dx * dx + dy * dy
        for j in range(m):  # branch-free: the renewals are random
            r = renew[k, j] < qk
            fresh = thr_pool[min(o, last)]
            thr[k, j] = fresh if r else u_prev[p, j]
            o += r
        for j in range(m):
            lo = tmp[2, j] < thr[k, j]
            los[k, j] = lo
            lof = one if lo else zero
            nl = tmp[1, j]
            pl0 = nl + (tmp[0, j] - nl) * lof
            gv = g_prev[p, j] * (lof * drho + rnk) + (lof * ds + snk) * z[k, j]
            t = (lof * dsig + sig_n) * gv
            g[k, j] = gv
            pl = pl0 + t
            pathloss[k, j] = pl
            gain_exp[k, j] = pl * NEG_LN10_10
        best[k] = first_max(base, pathloss, k)


# ------------------------------------------------------------------ association (handover.py)
@_jit
def _rsrp(meas, base, sub, k, j):
    """RSRP of link (k, j): base[j] - meas[k, j] (float32, as `np.subtract(base, pathloss)`) when `sub`."""
    return base[j] - meas[k, j] if sub else meas[k, j]


@_jit
def decide(meas, base, sub, best_in, have_best, old, has_prev, pr, xy, time_s, prm, serving_p, cand_p, since_p,
           last_from_p, last_to_p, last_t_p, mem_i, mem_f, ev_i, ev_f):
    """A3 handover with hysteresis + offset and time-to-trigger, RLF below min_rsrp_dbm, as
    `Association._decide` on RSRP `meas` (`sub`: RSRP = base - meas, meas the path loss, float32 as
    the reference subtracts): each vehicle's memory from its previous row where `old` and `has_prev` (prm =
    hysteresis, offset, min_rsrp, ttt - 1e-9, ping-pong window + 1e-9; `best_in` is each row's
    argmax when `have_best`). Writes the new memory (mem_i rows: serving, candidate, last from, last
    to; mem_f rows: candidate since, last handover time) and one row per handover (ev_i: vehicle,
    from, to, RLF 0/1, ping-pong 0/1; ev_f: RSRP from, RSRP to, x, y). Returns the numbers of
    handovers, of ping-pongs and of RLF re-attachments."""
    n, m = meas.shape
    hyst, offs, min_rsrp, ttt, ppw = prm[0], prm[1], prm[2], prm[3], prm[4]
    count = pings = rlfs = 0
    for k in range(n):
        s, cand, since, lf, lt, ltime = -1, -1, time_s, -1, -1, -np.inf
        if old[k] and has_prev:
            p = pr[k]
            s, cand, since, lf, lt, ltime = serving_p[p], cand_p[p], since_p[p], last_from_p[p], last_to_p[p], last_t_p[p]
        if have_best:
            best = best_in[k]
        else:
            best = 0
            for j in range(1, m):
                if _rsrp(meas, base, sub, k, j) > _rsrp(meas, base, sub, k, best):
                    best = j
        best_val = np.float64(_rsrp(meas, base, sub, k, best))
        conn = s >= 0
        s_val = np.float64(_rsrp(meas, base, sub, k, s)) if conn else -np.inf
        cond = conn and best != s and best_val > s_val + hyst + offs and best_val >= min_rsrp
        if not (cond and cand == best):
            since = time_s
        cand = best if cond else -1
        fire = cond and time_s - since >= ttt
        rlf = conn and not fire and s_val < min_rsrp
        rlf_ho = rlf and best_val >= min_rsrp and best != s
        ns = s
        if fire or rlf_ho:
            ns, cand = best, -1
            pp = best == lf and s == lt and time_s - ltime <= ppw
            ev_i[count, 0], ev_i[count, 1], ev_i[count, 2], ev_i[count, 3], ev_i[count, 4] = k, s, best, rlf_ho, pp
            ev_f[count, 0], ev_f[count, 1] = s_val, best_val
            ev_f[count, 2], ev_f[count, 3] = xy[k, 0], xy[k, 1]
            lf, lt, ltime = s, best, time_s
            count += 1
            pings += pp
            rlfs += rlf_ho
        elif rlf:
            ns = -1
        if not conn and best_val >= min_rsrp:
            ns = best
        mem_i[0, k], mem_i[1, k], mem_i[2, k], mem_i[3, k] = ns, cand, lf, lt
        mem_f[0, k], mem_f[1, k] = since, ltime
    return count, pings, rlfs


# ------------------------------------------------------------------ SINR (rates.py)
@_jit
def serving_gains(gain, serving, p_tx_w, rsu_bw_hz, g_serv, w32):
    """Gain of each vehicle's serving link (0 when not connected), then zeroed in `gain` so that the
    interference sums exclude the own cell exactly; the uplink weight P / (n_s B_s) of each vehicle
    as float32 (0 when not connected). As `Radio.link_state` / `Radio._interference`."""
    n, m = gain.shape
    count = np.zeros(m)
    for k in range(n):
        s = serving[k]
        g_serv[k] = 0.0
        if s >= 0:
            g_serv[k] = np.float64(gain[k, s])
            gain[k, s] = 0.0
            count[s] += 1.0
    for k in range(n):
        s = serving[k]
        w32[k] = np.float32(p_tx_w / (max(count[s], 1.0) * rsu_bw_hz[s])) if s >= 0 else np.float32(0.0)


@_jit
def sinr(serving, g_serv, dl_sum, ul_rsu, load, p_tx_w, rsu_bw_hz, rsu_noise_w_hz, rsu_psd_w_hz, veh_noise_w_hz,
         dl_i, ul_i, ul_sinr, dl_sinr):
    """Interference PSDs (from the matrix-vector sums `dl_sum` (N,), `ul_rsu` (M,), float32) and the
    linear uplink / downlink SINR (0 when not connected), as `Radio.link_state`."""
    for k in range(serving.size):
        s = serving[k]
        if s >= 0:
            dl_i[k] = load * max(np.float64(dl_sum[k]), 0.0)
            ul_i[k] = load * max(np.float64(ul_rsu[s]), 0.0)
        else:
            dl_i[k] = load * 0.0
            ul_i[k] = load * 0.0
        s0 = max(s, 0)
        ul_sinr[k] = p_tx_w * g_serv[k] / (rsu_bw_hz[s0] * (rsu_noise_w_hz[s0] + ul_i[k]))
        dl_sinr[k] = rsu_psd_w_hz[s0] * g_serv[k] / (veh_noise_w_hz + dl_i[k])


# ------------------------------------------------------------------ rates (rates.py, Shannon)
@_jit
def uplink_sinr(idx, p, b, max_p, serving, rsu_noise_w_hz, ul_i, g_serv, sinr):
    """Mean uplink SINR of vehicles `idx` at power min(p, max_p) over `b` (0 if not connected or b <= 0),
    as `Radio.uplink_sinr`."""
    for i in range(idx.size):
        k = idx[i]
        s = serving[k]
        sinr[i] = 0.0
        if s >= 0 and b[i] > 0:
            sinr[i] = min(p[i], max_p) * g_serv[k] / ((rsu_noise_w_hz[s] + ul_i[k]) * b[i])


@_jit
def shannon_arg(sinr, idx, fading, has_fading, gap, faded, x):
    """SINR times this step's fading gain of the vehicle (`has_fading`) into `faded`, and the argument
    of the Shannon logarithm 1 + faded / gap (gap 1: no division) into `x`, as `Radio._rate`."""
    for i in range(idx.size):
        w = sinr[i] * fading[idx[i]] if has_fading else sinr[i]
        faded[i] = w
        x[i] = 1.0 + (w / gap if gap != 1.0 else w)


@_jit
def shannon_rate(b, faded, se, cap, min_sinr, conn_only, idx, serving, out):
    """b min(se, cap) where faded SINR >= min_sinr, else 0 (`conn_only`: also 0 where the vehicle is not
    connected or b <= 0), as `Radio._shannon` with se = log2(x) of `shannon_arg`."""
    for i in range(idx.size):
        s = se[i]
        if cap > 0:
            s = min(s, cap)
        r = b[i] * s if faded[i] >= min_sinr else 0.0
        if conn_only and not (serving[idx[i]] >= 0 and b[i] > 0):
            r = 0.0
        out[i] = r
