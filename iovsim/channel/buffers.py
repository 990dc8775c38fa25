"""Reusable (n, M) work arrays of the channel's per-step computations."""
from __future__ import annotations

import numpy as np


class WorkBuffers:
    """Reusable (n, M) work arrays (fresh arrays of this size cost page faults every step)."""

    def __init__(self, num_rsus: int):
        self.num_rsus = num_rsus
        self._work: dict[str, np.ndarray] = {}
        self._state_full: dict[str, np.ndarray] = {}

    def get(self, name: str, n: int, dtype=np.float32) -> np.ndarray:
        b = self._work.get(name)
        if b is None or b.shape[0] < n or b.dtype != dtype:
            b = self._work[name] = np.empty((max(n, 2 * (0 if b is None else b.shape[0]), 64), self.num_rsus), dtype)
        return b[:n]

    def keep(self, name: str, view: np.ndarray) -> np.ndarray:
        """Make the work buffer behind `view` the state buffer, recycling the previous state's buffer."""
        full = self._work.pop(name)
        old = self._state_full.get(name)
        if old is not None:
            self._work[name] = old
        self._state_full[name] = full
        return view
