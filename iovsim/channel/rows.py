"""Which row of the previous step each vehicle of this step had (its per-link state lives there)."""
from __future__ import annotations

from itertools import repeat

import numpy as np

from iovsim.channel import fused as fz
from iovsim.channel.fused_ids import match_ids

SEP = "\0"  # between the ids in one encoded buffer; an id that holds it sends the step to `DictRows`


class VehicleRows:
    """Vehicle id -> row of the previous step. With numba: the step's ids joined into one UTF-8 buffer
    (one C-level call) and matched in a compiled loop against the previous step's buffer through an
    open-addressing hash table of byte strings (equal bytes, equal ids: exact). A dict lookup per
    vehicle cost ~0.1 ms per step at 1,000 vehicles (hashing each fresh string, a cache miss on the
    stored one); this ~0.03 ms. Without numba, or for an id holding NUL, `DictRows` (same rows)."""

    def __init__(self):
        self._dict: DictRows | None = None if fz.AVAILABLE else DictRows()
        self._buf = np.zeros(0, np.uint8)
        self._span = np.zeros((0, 2), np.int64)   # (start, end) of each previous id in _buf
        self._hash = np.zeros(0, np.uint64)
        self._table = np.full(1, -1, np.int32)    # hash slot -> previous row, -1 empty
        self._repeat = False                      # whether an id was repeated in the previous step
        self._full = self._spare = None           # (span, hash, table) arrays of the previous step, spare ones

    def update(self, ids: list[str]) -> np.ndarray:
        """Previous row of each of `ids` (-1 for a vehicle new this step); `ids` become the previous step."""
        if self._dict is not None:
            return self._dict.update(ids)
        n = len(ids)
        buf = np.frombuffer(SEP.join(ids).encode(), np.uint8)
        if self._spare is None or len(self._spare[1]) < n:
            cap = max(64, 2 * n)
            self._spare = (np.empty((cap, 2), np.int64), np.empty(cap, np.uint64),
                           np.empty(1 << cap.bit_length(), np.int32))  # load <= 1/2
        span, hsh, table = self._spare
        prev = np.empty(n, np.int64)
        repeat = match_ids(buf, n, self._buf, self._span, self._hash, self._table, self._repeat, span[:n], hsh[:n],
                           table, prev)
        if repeat < 0:  # an id holds the separator: dicts from now on
            prev_ids, self._dict = self.previous_ids(), DictRows()
            self._dict.update(prev_ids)
            return self._dict.update(ids)
        self._spare = self._full   # the previous step's arrays, reused two steps on
        self._full = span, hsh, table
        self._buf, self._span, self._hash, self._table, self._repeat = buf, span[:n], hsh[:n], table, bool(repeat)
        return prev

    def previous_ids(self) -> list[str]:
        """The ids of the previous step."""
        if self._dict is not None:
            return list(self._dict._slot_id_of_row())
        data = self._buf.tobytes()
        return [data[a:b].decode() for a, b in self._span.tolist()]


class DictRows:
    """`VehicleRows` through an id -> slot dict that only arrivals and departures change: one dict
    lookup per vehicle and step; the slot -> row table is a numpy array."""

    def __init__(self):
        self._slot: dict[str, int] = {}
        self._slot_id: list[str | None] = []
        self._free: list[int] = []
        self._slot_row = np.full(0, -1, np.int64)   # row of each slot in the previous step, -1 if none
        self._last = np.zeros(0, np.int64)           # slots of the previous step's rows

    def _slot_id_of_row(self):
        return (self._slot_id[s] for s in self._last.tolist())

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
