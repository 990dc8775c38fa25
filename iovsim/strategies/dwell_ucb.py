"""DWELL-UCB (beyond arXiv 2508.09532): UCB-DUAL whose bandit context includes the predicted dwell window, so
rank and local steps are chosen to finish inside the window; the window is shrunk by the prediction error
seen so far, and a transfer mode covers a handover the prediction missed. Details: docs/strategies.md.
"""
from __future__ import annotations

import math

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import RoundState
from iovsim.strategies.common import check_choice, round_time_s, window_s
from iovsim.strategies import ucb_core as core
from iovsim.strategies.ucb_dual import UCBDual, _stats


@register("dwell_ucb")
class DwellUCB(UCBDual):
    """Context = (vehicle, dwell bucket); arms = ranks that fit the window (at some number of local steps).

    Params beyond ucb_dual's: dwell_edges_s (bucket edges of the window, s), step_fractions (local-step
    options as fractions of state.local_steps, largest fitting one used), margin_step (growth of a
    bucket's safety margin after a handover loss), fallback_mode (transfer mode of every participant,
    the insurance against a missed prediction).
    """

    def __init__(self, dwell_edges_s=(10.0, 30.0, 60.0), step_fractions=(1.0, 0.5, 0.25),
                 margin_step: float = 0.2, fallback_mode: str = "migrate", **params):
        super().__init__(**params)
        check_choice("fallback_mode", fallback_mode, core.TRANSFER_MODES)
        edges = [float(e) for e in dwell_edges_s]
        fracs = [float(f) for f in step_fractions]
        if edges != sorted(edges) or min(edges, default=1.0) <= 0:
            raise ValueError(f"dwell_edges_s must be increasing and > 0, got {dwell_edges_s!r}")
        if not fracs or not all(0 < f <= 1 for f in fracs):
            raise ValueError(f"step_fractions must be in (0, 1], got {step_fractions!r}")
        if margin_step < 0:
            raise ValueError("margin_step must be >= 0")
        self.edges = edges
        self.fracs = sorted(set(fracs), reverse=True)
        self.margin_step = float(margin_step)
        self.fallback_mode = fallback_mode
        self.margins = [self.margin] * (len(edges) + 1)
        self.misses = [0] * len(self.margins)

    def _is_context(self, key: str) -> bool:
        return "|" in key  # the per-vehicle pooled statistics are a fallback, not a context

    def _reset(self, num_tasks: int) -> None:
        super()._reset(num_tasks)
        self.margins = [getattr(self, "margin", 1.0)] * (len(getattr(self, "edges", [])) + 1)
        self.misses = [0] * len(self.margins)

    def _bucket(self, window: float) -> int:
        return int(np.searchsorted(self.edges, window, side="right"))

    def _options(self, state: RoundState, i: int) -> tuple[int, np.ndarray]:
        """(bucket, steps[arm]) with 0 where the arm fits at no step option inside the margin-shrunk window."""
        w = float(window_s(state, np.asarray([i]))[0])
        b = self._bucket(w)
        steps = np.zeros(len(self.cands), dtype=int)
        for a, r in enumerate(self.cands):
            for f in self.fracs:
                s = max(1, int(round(f * state.local_steps)))
                if self.margins[b] * float(round_time_s(state, [i], r, s)[0]) <= w:
                    steps[a] = s
                    break
        return b, steps

    def _eligible(self, state: RoundState) -> np.ndarray:
        conn = state.connected()
        ok = np.asarray([self._options(state, int(i))[1].any() for i in conn], dtype=bool)
        self._last_eligible = int(ok.sum())
        return conn[ok]

    def _choose(self, state: RoundState, i: int, t: int, share: float) -> tuple[int, int, str]:
        vid = state.vehicle_ids[i]
        b, steps = self._options(state, i)
        ctx = f"{vid}|{b}"
        round_no = state.round_index + 1
        idx = self._index(ctx, t, round_no)
        pooled = self._index(vid, t, round_no)
        untried = np.asarray(self.stats[ctx]["n"]) == 0
        idx = np.where(untried, pooled, idx)
        # warm start: among equal indices the arm nearest the data share wins
        warm = core.nearest_arm(self.cands, share)
        tie = -1e-9 * np.abs(np.arange(len(self.cands)) - warm)
        arm = int(np.argmax(np.where(steps > 0, idx + tie, -np.inf)))
        v = self.vehicles.setdefault(vid, {"arm": arm, "since": 0, "q": None, "epoch": self.epoch[t], "task": t})
        v["arm"], v["task"] = arm, t
        return arm, int(steps[arm]), ctx

    def _transfer_mode(self, state: RoundState, i: int, t: int, rank: int, steps: int) -> str:
        """Every plan fits the predicted window; the mode insures against a handover the prediction missed."""
        if self.fallback_mode != "migrate":
            return self.fallback_mode
        lat_s, rate_bps = self._backhaul(state)
        bits = float(state.costs.adapter_bits(rank, i)) if state.costs is not None else 0.0
        delay = lat_s + bits / rate_bps if rate_bps > 0 else math.inf
        tau = float(round_time_s(state, [i], rank, steps)[0])
        return "migrate" if tau + delay <= state.round_deadline_s else "early_upload"

    def _after_play(self, vid: str, pending: dict, status: str, reward: float, energy_norm: float) -> None:
        st = self.stats.setdefault(vid, _stats(len(self.cands)))
        st["n"][pending["arm"]] += 1
        st["r"][pending["arm"]] += reward
        st["e"][pending["arm"]] += energy_norm
        b = int(pending["ctx"].rsplit("|", 1)[1])
        # the window was shorter than predicted (a migrated update survived a handover it did not foresee)
        if status in ("lost_handover", "lost_left", "migrated"):
            self.margins[b] *= 1.0 + self.margin_step
            self.misses[b] += 1
        elif status in ("ok", "early"):
            self.margins[b] = max(self.margin, self.margins[b] * (1.0 - self.margin_step / 4))

    def observe(self, fb) -> dict:
        log = super().observe(fb)
        for b, m in enumerate(self.margins):
            log[f"dwell_margin/b{b}"] = float(m)
        log["handover_misses"] = int(sum(self.misses))
        return log

    def state_dict(self) -> dict:
        return {**super().state_dict(), "margins": list(self.margins), "misses": list(self.misses)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.margins = [float(m) for m in state["margins"]]
        self.misses = [int(m) for m in state["misses"]]
