"""Small-scale fading of each vehicle's serving link: Rayleigh or Rician, time-correlated, per direction.

The power gain |h|^2 (mean 1) multiplies the serving link's SINR in the rates a transfer drains at
(`Radio.*_rate_bps(..., instantaneous=True)`); RSRP, association and the mean rates strategies plan
with do not see it (RSRP is averaged over many resource elements and over time, TS 38.215).

    h = sqrt(K / (K + 1)) + sqrt(1 / (K + 1)) s,   s ~ CN(0, 1) the diffuse part,

K = `rician_k_db` on LOS links with `fading: rician` (TR 38.901 Table 7.5-6, UMi LOS mean 9 dB),
else 0 (Rayleigh). The specular part's phase is left out: s is circularly symmetric, so |h|^2 has
the same law for any phase.

Time correlation (Clarke 1968 / Jakes 1974: E[s(t) s*(t + tau)] = J0(2 pi f_D tau)): s follows a
first-order Gauss-Markov process per step, s <- rho s + sqrt(1 - rho^2) w, w ~ CN(0, 1) fresh, with
rho = J0(2 pi d / wavelength), d the distance the vehicle moved since the previous step. That is
J0(2 pi f_D dt) with f_D = v f_c / c and v = d / dt (Baddour & Beaulieu, IEEE TWC 2005, AR(1)
case): the lag-one correlation is exact, longer lags decay as rho^k instead of J0. A standing
vehicle keeps its fading; a new vehicle or a new serving RSU draws afresh. Uplink and downlink
have independent processes (the download and the upload of a round happen seconds apart, far more
than the ~1.5 ms coherence time at 14 m/s and 5.9 GHz). The innovations come from the channel's
fading stream (`np.random.default_rng([seed, 1, 1])`), 4 normals per vehicle per step for every
vehicle present, so every strategy of a comparison sees the same fades.
"""
from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT_M_S = 299_792_458.0


def k_factor(model: str, rician_k_db: float, los: np.ndarray) -> np.ndarray:
    """Linear K-factor of links with LOS state `los` under fading `model` (0 = Rayleigh, inf = no fading)."""
    los = np.asarray(los, dtype=bool)
    if model == "none":
        return np.full(los.shape, np.inf)
    if model == "rayleigh":
        return np.zeros(los.shape)
    return np.where(los, 10.0 ** (rician_k_db / 10.0), 0.0)


def exceed_probability(x, k) -> np.ndarray:
    """P(|h|^2 >= x) for unit-mean fading of K-factor `k`: exp(-x) for Rayleigh (k = 0), the noncentral
    chi-square tail with 2 degrees of freedom, P(chi'^2(2, 2k) >= 2 (k + 1) x), for Rician, and
    1[x <= 1] without fading (k = inf). Equals 1 - the outage probability at SINR ratio x."""
    from scipy.stats import ncx2

    x, k = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(k, dtype=float))
    out = np.array(np.exp(-x), dtype=float)   # an array also for scalars (assigned below)
    rice = (k > 0) & np.isfinite(k)
    if rice.any():
        kr = k[rice]
        out[rice] = ncx2.sf(2.0 * (kr + 1.0) * x[rice], 2, 2.0 * kr)
    flat = np.isinf(k)
    out[flat] = (x[flat] <= 1.0).astype(float)
    return out


def step_correlation(moved_m: np.ndarray, carrier_frequency_hz: float) -> np.ndarray:
    """J0(2 pi d / wavelength) of the diffuse part after moving d (0 where d is inf: a new vehicle)."""
    from scipy.special import j0

    d = np.asarray(moved_m, dtype=float)
    finite = np.isfinite(d)
    wavelength_m = SPEED_OF_LIGHT_M_S / carrier_frequency_hz
    return np.where(finite, j0(2.0 * np.pi * np.where(finite, d, 0.0) / wavelength_m), 0.0)


class Fading:
    """The diffuse fading state of each vehicle's serving link, uplink and downlink (module docstring)."""

    def __init__(self, model: str, rician_k_db: float, carrier_frequency_hz: float, rng: np.random.Generator,
                 fused: bool = False):
        """`fused`: `advance_fused` (compiled loops, the same gains) in `advance`."""
        self.fused = fused
        self.model = model
        self.rician_k_db = float(rician_k_db)
        self.carrier_frequency_hz = float(carrier_frequency_hz)
        self.rng = rng
        self.forget(0)

    def forget(self, n: int) -> None:
        """No history for `n` vehicles."""
        self.diffuse = np.zeros((n, 2), complex)   # s of the uplink, downlink
        self.serving = np.full(n, -1)

    def advance(self, serving: np.ndarray, los_serving: np.ndarray, moved_m: np.ndarray, pr: np.ndarray,
                old: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uplink, downlink) power gains |h|^2 (N,) of this step. Row k continues row `pr[k]` of the
        previous step where `old[k]` and it is served by the same RSU; `moved_m[k]` is how far it moved."""
        if self.fused:
            return self.advance_fused(serving, los_serving, moved_m, pr, old)
        n = len(serving)
        z = self.rng.standard_normal((n, 4))
        w = (z[:, 0::2] + 1j * z[:, 1::2]) * np.sqrt(0.5)
        rho = step_correlation(moved_m, self.carrier_frequency_hz)
        if self.serving.size and n:
            same = old & (serving >= 0) & (self.serving[pr] == serving)
            rho = np.where(same, rho, 0.0)
            prev = self.diffuse[pr]
        else:
            rho, prev = np.zeros(n), np.zeros((n, 2), complex)
        s = rho[:, None] * prev + np.sqrt(1.0 - rho * rho)[:, None] * w
        self.diffuse, self.serving = s, np.asarray(serving).copy()
        k = k_factor(self.model, self.rician_k_db, los_serving)[:, None]
        h = np.sqrt(k / (k + 1.0)) + np.sqrt(1.0 / (k + 1.0)) * s
        gain = h.real * h.real + h.imag * h.imag
        return gain[:, 0], gain[:, 1]

    def advance_fused(self, serving, los_serving, moved_m, pr, old):
        """`advance` as compiled loops (`fused_fading`) around the same normals and J0: the same gains."""
        from scipy.special import j0

        from iovsim.channel.fused_fading import fading_step, j0_argument

        n = len(serving)
        z = self.rng.standard_normal((n, 4))
        x = np.empty(n)
        j0_argument(moved_m, 2.0 * np.pi, SPEED_OF_LIGHT_M_S / self.carrier_frequency_hz, x)
        diffuse, gain = np.empty((n, 2), complex), np.empty((2, n))
        los_k = 10.0 ** (self.rician_k_db / 10.0) if self.model == "rician" else 0.0
        fading_step(z, j0(x), moved_m, np.asarray(serving), self.serving, pr, np.asarray(old), np.asarray(los_serving), los_k, self.diffuse,
                    bool(self.serving.size and n), diffuse, gain)
        self.diffuse, self.serving = diffuse, np.asarray(serving).copy()
        return gain[0], gain[1]
