"""Association and handover: layer-3 RSRP filtering, A3 event with hysteresis, offset and
time-to-trigger (TS 38.331), radio link failure below min_rsrp_dbm, ping-pong counting."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat, starmap

import numpy as np

from iovsim.channel import fused as fz
from iovsim.channel.config import ChannelConfig


@dataclass(slots=True)
class HandoverEvent:
    time_s: float
    vehicle_id: str
    from_rsu: int
    to_rsu: int
    rsrp_from_dbm: float
    rsrp_to_dbm: float
    x_m: float
    y_m: float
    kind: str = "a3"
    """`a3` (A3 event after time-to-trigger) or `rlf` (serving RSRP fell below min_rsrp_dbm and the
    vehicle re-attached at once to the strongest RSU)."""
    ping_pong: bool = False
    """True when this handover returns to the RSU the vehicle left within ping_pong_window_s."""


class HandoverEvents(Sequence):
    """The handover events of one step held as columns (from the compiled A3 loop); the
    `HandoverEvent` objects are built on first access (a list otherwise: equal to a list of the same
    events). A step that nobody reads the events of builds none (~0.5 us per event otherwise)."""

    __slots__ = ("time_s", "ids", "cols", "xy", "_list")

    def __init__(self, time_s: float, ids: list[str], cols: np.ndarray, xy: np.ndarray):
        """`cols` (k, 5) int: vehicle row, from, to, RLF 0/1, ping-pong 0/1; `xy` (k, 4) float: RSRP
        from, RSRP to, x, y (`fused.decide`'s rows)."""
        self.time_s, self.ids, self.cols, self.xy, self._list = time_s, ids, cols, xy, None

    def _events(self) -> list[HandoverEvent]:
        if self._list is None:
            k = len(self.cols)
            rows, frm, to, rlf, pp = self.cols.T.tolist()
            kinds = map(("a3", "rlf").__getitem__, rlf)
            self._list = list(starmap(HandoverEvent, zip(repeat(self.time_s, k), map(self.ids.__getitem__, rows), frm,
                                                         to, *self.xy.T.tolist(), kinds, map(bool, pp))))
        return self._list

    def __len__(self):
        return len(self.cols)

    def __getitem__(self, i):
        return self._events()[i]

    def __iter__(self):
        return iter(self._events())

    def __eq__(self, other):
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self):
        return f"HandoverEvents({self._events()!r})"


class Association:
    """Serving RSU and handover memory of each vehicle (rows aligned with the channel's last step)."""

    def __init__(self, cfg: ChannelConfig, num_rsus: int, fused: bool = False):
        self.cfg = cfg
        self.num_rsus = num_rsus
        self.fused = fused  # `_decide` as one compiled loop (`fused`; the same decisions)
        self._prm = np.array([cfg.handover_hysteresis_db, cfg.handover_offset_db, cfg.min_rsrp_dbm,
                              cfg.time_to_trigger_s - 1e-9, cfg.ping_pong_window_s + 1e-9])
        self.handover_count = 0
        self.ping_pong_count = 0
        self.rlf_count = 0
        self.forget(0)

    def forget(self, n: int) -> None:
        """Memory of `n` vehicles none of which is connected."""
        self.meas = np.zeros((n, self.num_rsus), np.float32)  # L3-filtered RSRP used for handover decisions
        self.serving = np.full(n, -1)
        self.cand = np.full(n, -1)
        self.cand_since = np.zeros(n)
        self.last_from = np.full(n, -1)
        self.last_to = np.full(n, -1)
        self.last_ho_s = np.full(n, -np.inf)

    def update(self, time_s, ids, xy, rsrp, old, pr, has_prev, best=None, pathloss=None, rsrp_base=None):
        """Serving RSU of each vehicle and the handover events of this step, from the RSRP (N, M) (None:
        rsrp_base - pathloss, read so by the compiled loop); row `pr[k]` of the previous step is
        vehicle k's memory where `old[k]`; `best`: the argmax of each RSRP row when already known."""
        cfg = self.cfg
        if rsrp is None and not (self.fused and cfg.rsrp_filter_k <= 0):
            rsrp = np.subtract(rsrp_base, pathloss)
        if cfg.rsrp_filter_k > 0 and has_prev:
            a = 0.5 ** (cfg.rsrp_filter_k / 4.0)
            meas = rsrp * a + (1 - a) * np.take(self.meas, pr, axis=0)
            fresh = ~old
            meas[fresh] = rsrp[fresh]
            best = None  # of the filtered RSRP, found in `decide`
        else:
            meas = rsrp
        if self.fused and (meas if meas is not None else pathloss).shape[1]:
            serving, events = self._decide_fused(time_s, ids, xy, meas, old, pr, has_prev, best, pathloss, rsrp_base)
        else:
            serving, events = self._decide(time_s, ids, xy, meas, old, pr, has_prev)
        self.meas = meas
        return serving, events

    def _decide(self, time_s, ids, xy, meas, old, pr, has_prev):
        """A3 handover with hysteresis + offset and time-to-trigger; RLF below min_rsrp_dbm."""
        cfg = self.cfg
        n = len(ids)
        if has_prev:
            serving = np.where(old, self.serving[pr], -1)
            cand = np.where(old, self.cand[pr], -1)
            since = np.where(old, self.cand_since[pr], time_s)
            last_from = np.where(old, self.last_from[pr], -1)
            last_to = np.where(old, self.last_to[pr], -1)
            last_t = np.where(old, self.last_ho_s[pr], -np.inf)
        else:
            serving, cand = np.full(n, -1), np.full(n, -1)
            since = np.full(n, float(time_s))
            last_from, last_to, last_t = np.full(n, -1), np.full(n, -1), np.full(n, -np.inf)
        rows = np.arange(n)
        best = meas.argmax(1)
        best_val = meas[rows, best].astype(float)
        conn = serving >= 0
        s0 = np.maximum(serving, 0)
        s_val = np.where(conn, meas[rows, s0], -np.inf)
        cond = conn & (best != serving) & (best_val > s_val + cfg.handover_hysteresis_db + cfg.handover_offset_db) \
            & (best_val >= cfg.min_rsrp_dbm)
        since = np.where(cond & (cand == best), since, time_s)
        cand = np.where(cond, best, -1)
        fire = cond & (time_s - since >= cfg.time_to_trigger_s - 1e-9)
        rlf = conn & ~fire & (s_val < cfg.min_rsrp_dbm)
        rlf_ho = rlf & (best_val >= cfg.min_rsrp_dbm) & (best != serving)
        ho = fire | rlf_ho
        new_serving = serving.copy()
        new_serving[ho] = best[ho]
        new_serving[rlf & ~rlf_ho] = -1
        attach = ~conn & (best_val >= cfg.min_rsrp_dbm)
        new_serving[attach] = best[attach]
        cand[ho] = -1
        hi = np.flatnonzero(ho)
        events: list[HandoverEvent] = []
        if hi.size:
            frm, to = serving[hi], best[hi]
            pp = (to == last_from[hi]) & (frm == last_to[hi]) & (time_s - last_t[hi] <= cfg.ping_pong_window_s + 1e-9)
            events = self._events(time_s, ids, xy, meas, hi, frm, to, rlf_ho[hi], pp)
            last_from[hi], last_to[hi], last_t[hi] = frm, to, time_s
        self.serving, self.cand, self.cand_since = new_serving, cand, np.asarray(since, dtype=float)
        self.last_from, self.last_to, self.last_ho_s = last_from, last_to, last_t
        return new_serving, events

    def _decide_fused(self, time_s, ids, xy, meas, old, pr, has_prev, best, pathloss, rsrp_base):
        """`_decide` as one compiled loop (`fused.decide`): the same comparisons in the same float64
        arithmetic, so the same serving RSUs and events. `meas` None: RSRP = rsrp_base - pathloss."""
        n, t = len(ids), float(time_s)
        mem_i, mem_f = np.empty((4, n), np.int64), np.empty((2, n))
        ev_i, ev_f = np.empty((n, 5), np.int64), np.empty((n, 4))
        have_best, sub = best is not None, meas is None
        k, pings, rlfs = fz.decide(pathloss if sub else meas, rsrp_base, sub, best if have_best else pr, have_best, old, has_prev,
                      pr, xy, t, self._prm, self.serving, self.cand, self.cand_since, self.last_from, self.last_to,
                      self.last_ho_s, mem_i, mem_f, ev_i, ev_f)
        self.serving, self.cand, self.last_from, self.last_to = mem_i
        self.cand_since, self.last_ho_s = mem_f
        self.handover_count += k
        self.ping_pong_count += pings
        self.rlf_count += rlfs
        return self.serving, HandoverEvents(t, ids, ev_i[:k], ev_f[:k])

    def _events(self, time_s, ids, xy, meas, hi, frm, to, rlf_hi, pp):
        """The HandoverEvents of vehicles `hi` (from `frm` to `to`), counted."""
        k = hi.size
        self.handover_count += int(k)
        self.ping_pong_count += int(pp.sum())
        self.rlf_count += int(rlf_hi.sum())
        vids = map(ids.__getitem__, hi.tolist())
        kinds = np.where(rlf_hi, "rlf", "a3").tolist() if rlf_hi.any() else repeat("a3", k)
        return list(starmap(HandoverEvent, zip(repeat(float(time_s), k), vids, frm.tolist(), to.tolist(),
                                               meas[hi, frm].tolist(), meas[hi, to].tolist(), xy[hi, 0].tolist(),
                                               xy[hi, 1].tolist(), kinds, pp.tolist())))
