"""Which row of the previous step each vehicle of this step had (its per-link state lives there)."""
from __future__ import annotations

from itertools import repeat

import numpy as np


class VehicleRows:
    """Vehicle id -> row of the previous step, through an id -> slot dict that only arrivals and
    departures change: one dict lookup per vehicle and step (rebuilding an id -> row dict every step
    cost as much again); the slot -> row table is a numpy array."""

    def __init__(self):
        self._slot: dict[str, int] = {}
        self._slot_id: list[str | None] = []
        self._free: list[int] = []
        self._slot_row = np.full(0, -1, np.int64)   # row of each slot in the previous step, -1 if none
        self._last = np.zeros(0, np.int64)           # slots of the previous step's rows

    def update(self, ids: list[str]) -> np.ndarray:
        """Previous row of each of `ids` (-1 for a vehicle new this step); `ids` become the previous step."""
        n = len(ids)
        slots = np.fromiter(map(self._slot.get, ids, repeat(-1)), dtype=np.int64, count=n)
        new = np.flatnonzero(slots < 0)
        if new.size:
            self._enrol(ids, slots, new.tolist())
        prev = self._slot_row[slots]
        self._slot_row[self._last] = -1
        self._slot_row[slots] = np.arange(n)
        gone = self._last[self._slot_row[self._last] < 0]
        for s in gone.tolist():  # departures: free the slot
            if self._slot_id[s] is not None:
                del self._slot[self._slot_id[s]]
                self._slot_id[s] = None
                self._free.append(s)
        self._last = slots
        return prev

    def _enrol(self, ids, slots, new):
        """Slots for the vehicles `new` (positions in `ids`) that have none."""
        for k in new:
            v = ids[k]
            s = self._slot.get(v)  # a repeated id of this step
            if s is None:
                if not self._free:
                    grow = max(64, len(self._slot_id))
                    self._free.extend(range(len(self._slot_id) + grow - 1, len(self._slot_id) - 1, -1))
                    self._slot_id.extend([None] * grow)
                    self._slot_row = np.concatenate([self._slot_row, np.full(grow, -1, np.int64)])
                s = self._free.pop()
                self._slot[v], self._slot_id[s] = s, v
            slots[k] = s
