"""Bandwidth sharing inside each RSU (vectorized over participants)."""
from __future__ import annotations

from typing import Callable

import numpy as np

MODES = ("equal", "proportional", "minmax")


def _per_rsu_sum(rsu_of: np.ndarray, x: np.ndarray, m: int) -> np.ndarray:
    return np.bincount(rsu_of, weights=x, minlength=m)


def allocate_bandwidth(mode: str, rsu_of: np.ndarray, bits: np.ndarray, spectral_eff_bps_hz: np.ndarray,
                       rsu_bandwidth_hz: np.ndarray, rate_bps: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Bandwidth (Hz) of each participant k, served by RSU `rsu_of[k]`, uploading `bits[k]`.

    * `equal`: B_m / n_m;
    * `proportional`: B_m bits_k / sum of bits at RSU m;
    * `minmax`: minimises the largest upload time bits_k / (b_k se_k) at each RSU. With a fixed
      spectral efficiency all times are equal at the optimum, b_k = B_m (bits_k/se_k) / sum_j(bits_j/se_j)
      (the water level in closed form); with `rate_bps(b) -> rates` (a rate that depends on b, e.g.
      `Channel.uplink_rate_bps` with fixed power) the common time is found by bisection.
    Participants with se <= 0 or no bits get no bandwidth under `proportional`/`minmax`.
    The sum at each RSU never exceeds its bandwidth (asserted).
    """
    rsu_of = np.asarray(rsu_of, dtype=int)
    bits = np.asarray(bits, dtype=float)
    se = np.asarray(spectral_eff_bps_hz, dtype=float)
    cap = np.asarray(rsu_bandwidth_hz, dtype=float)
    k, m = rsu_of.size, cap.size
    if k == 0:
        return np.zeros(0)
    if np.any(rsu_of < 0) or np.any(rsu_of >= m):
        raise ValueError("allocate_bandwidth: every participant needs a serving RSU in 0..M-1")
    if mode == "equal":
        n = np.bincount(rsu_of, minlength=m)
        bw = cap[rsu_of] / n[rsu_of]
    elif mode == "proportional":
        w = np.where(se > 0, np.maximum(bits, 0.0), 0.0)
        tot = _per_rsu_sum(rsu_of, w, m)
        bw = np.where(tot[rsu_of] > 0, cap[rsu_of] * w / np.where(tot[rsu_of] > 0, tot[rsu_of], 1.0), 0.0)
    elif mode == "minmax":
        if rate_bps is None:
            w = np.where((se > 0) & (bits > 0), bits / np.where(se > 0, se, 1.0), 0.0)
            tot = _per_rsu_sum(rsu_of, w, m)
            bw = np.where(tot[rsu_of] > 0, cap[rsu_of] * w / np.where(tot[rsu_of] > 0, tot[rsu_of], 1.0), 0.0)
        else:
            bw = _minmax_bisection(rsu_of, bits, cap, rate_bps, se)
    else:
        raise ValueError(f"unknown bandwidth allocation {mode!r}; expected one of {', '.join(MODES)}")
    used = _per_rsu_sum(rsu_of, bw, m)
    assert np.all(used <= cap * (1 + 1e-9) + 1e-6), f"bandwidth over an RSU's capacity: {used} > {cap}"
    return bw


def _minmax_bisection(rsu_of, bits, cap, rate_bps, se, iters: int = 60) -> np.ndarray:
    """For each participant the smallest b with bits / rate(b) <= T (inner bisection on b), and the
    smallest T whose bandwidths fit each RSU (outer bisection on T per RSU, all RSUs at once)."""
    k, m = rsu_of.size, cap.size
    active = (bits > 0) & (rate_bps(cap[rsu_of]) > 0)
    # Bounds on T per RSU: everyone alone on the full band (lower) ... equal share x n (upper).
    n = np.bincount(rsu_of[active], minlength=m)
    full = np.where(active, bits / np.maximum(rate_bps(cap[rsu_of]), 1e-300), 0.0)
    share = np.where(active, bits / np.maximum(rate_bps(cap[rsu_of] / np.maximum(n[rsu_of], 1)), 1e-300), 0.0)
    lo = np.zeros(m)
    np.maximum.at(lo, rsu_of, full)
    hi = np.zeros(m)
    np.maximum.at(hi, rsu_of, share)
    hi = np.maximum(hi, lo) * 1.0000001 + 1e-12

    def need(T):  # bandwidth each participant needs to finish within T (its RSU's)
        bl, bh = np.zeros(k), cap[rsu_of].copy()
        tt = T[rsu_of]
        for _ in range(iters):
            mid = 0.5 * (bl + bh)
            ok = bits <= rate_bps(mid) * tt
            bh = np.where(ok, mid, bh)
            bl = np.where(ok, bl, mid)
        return np.where(active, bh, 0.0)

    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        fits = _per_rsu_sum(rsu_of, need(mid), m) <= cap
        hi = np.where(fits, mid, hi)
        lo = np.where(fits, lo, mid)
    bw = need(hi)
    used = _per_rsu_sum(rsu_of, bw, m)
    scale = np.where(used > cap, cap / np.maximum(used, 1e-300), 1.0)
    return bw * scale[rsu_of]
