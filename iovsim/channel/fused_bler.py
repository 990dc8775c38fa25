"""`BlockErrors.goodput_bps` after its two logarithms as one compiled loop (`fused=True`): the same
float64 operations; the logistic 1 / (1 + exp(-v)) calls the C library's exp, as scipy's `expit`
does, so the same goodput bit for bit (tested)."""
from __future__ import annotations

import numpy as np

from iovsim.channel.fused import jit


@jit
def goodput(mean_db, x_db, bw, threshold_db, efficiency, slope, ln9, harq_db, out):
    """bw eta_m (1 - q_H) / sum_{k<H} q_k with MCS m = the last threshold <= mean_db (numpy's
    searchsorted side='right', NaN after every threshold), q_k = expit(-(slope (x_db + harq_db[k-1] -
    theta_m) + ln9)); 0 where no MCS fits."""
    nt = threshold_db.size
    for i in range(out.size):
        d = mean_db[i]
        m = nt - 1
        if d == d:
            m = -1
            while m + 1 < nt and threshold_db[m + 1] <= d:
                m += 1
        theta = threshold_db[max(m, 0)]
        expected, q = 0.0, 1.0
        for k in range(harq_db.size):
            expected += q
            v = -(slope * ((x_db[i] + harq_db[k]) - theta) + ln9)
            q = 1.0 / (1.0 + np.exp(-v))
        out[i] = bw[i] * efficiency[max(m, 0)] * (1.0 - q) / expected if m >= 0 else 0.0
