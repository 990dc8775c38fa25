"""`Fading.advance` as two compiled loops around the same numpy draws and scipy's J0 (`fused=True`):
the same float64 operations as numpy's complex arithmetic on these operands, so the same gains.

numpy multiplies a real by a complex number as complex numbers, (r + 0i)(a + bi) = (ra - 0b) + (rb +
0a)i, and adds a real as r + 0i: the zero terms change no value (only the sign of a zero, which no
gain |h|^2 = re^2 + im^2 sees), so each part is one rounded product per component, as here."""
from __future__ import annotations

import numpy as np

from iovsim.channel.fused import jit


@jit
def j0_argument(moved, two_pi, wavelength_m, x):
    """2 pi d / wavelength (0 where d is inf: a new vehicle), as `fading.step_correlation` computes it."""
    for k in range(moved.size):
        d = moved[k]
        x[k] = two_pi * (d if np.isfinite(d) else 0.0) / wavelength_m


@jit
def fading_step(z, rho0, moved, serving, serving_p, pr, old, los, los_k, prev, has_hist, diffuse, gain):
    """s <- rho s_prev + sqrt(1 - rho^2) w per direction (w = sqrt(1/2)(z0 + i z1) of this step's
    normals, rho = J0 where the vehicle was served by the same RSU in the previous step, else 0) into
    `diffuse` (N, 2) complex, and |h|^2 (2, N) of h = sqrt(K/(K+1)) + sqrt(1/(K+1)) s, K = `los_k` where
    the serving link is LOS (`los` (N,)), else 0 (Rayleigh). As `Fading.advance`."""
    c = np.sqrt(0.5)
    for k in range(serving.size):
        s = serving[k]
        same = has_hist and old[k] and s >= 0 and serving_p[pr[k]] == s
        rho = rho0[k] if (same and np.isfinite(moved[k])) else 0.0
        q = np.sqrt(1.0 - rho * rho)
        kf = los_k if (s >= 0 and los[k]) else 0.0
        a, b = np.sqrt(kf / (kf + 1.0)), np.sqrt(1.0 / (kf + 1.0))
        for d in range(2):
            pre, pim = 0.0, 0.0
            if same:
                pre, pim = prev[pr[k], d].real, prev[pr[k], d].imag
            re = rho * pre + q * (c * z[k, 2 * d])
            im = rho * pim + q * (c * z[k, 2 * d + 1])
            diffuse[k, d] = complex(re, im)
            hr, hi = a + b * re, b * im
            gain[d, k] = hr * hr + hi * hi
