"""Power unit conversions."""
from __future__ import annotations

import numpy as np


def dbm_to_w(dbm):
    return 10.0 ** ((np.asarray(dbm, dtype=float) - 30.0) / 10.0)


def w_to_dbm(w):
    return 10.0 * np.log10(np.maximum(np.asarray(w, dtype=float), 1e-300)) + 30.0
