"""Helpers shared by the strategies: handover-window estimates, participant selection, rng state."""
from __future__ import annotations

import numpy as np

from iovsim.strategies.base import RoundState


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able state of a numpy Generator (PCG64 ints are plain Python ints)."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def window_s(state: RoundState, idx: np.ndarray | None = None) -> np.ndarray:
    """Time each vehicle can use this round: predicted dwell in its cell, capped by the round deadline."""
    dwell = np.asarray(state.dwell_time_s, dtype=float)
    if idx is not None:
        dwell = dwell[idx]
    return np.minimum(np.where(np.isnan(dwell), np.inf, dwell), float(state.round_deadline_s))


def round_time_s(state: RoundState, idx: np.ndarray, rank, steps=None, uplink_rate_bps=None) -> np.ndarray:
    """Estimated download + compute + upload time of vehicles `idx` training `rank` for `steps`.

    Uses `state.costs` (CostModel); without one the estimate is 0, so every window > 0 fits.
    """
    idx = np.asarray(idx, dtype=int)
    rank = np.broadcast_to(np.asarray(rank, dtype=int), idx.shape)
    steps = np.broadcast_to(np.asarray(state.local_steps if steps is None else steps, dtype=int), idx.shape)
    costs = state.costs
    if costs is None or idx.size == 0:
        return np.zeros(idx.shape, dtype=float)
    bits = np.asarray([float(costs.adapter_bits(int(r))) for r in rank])
    down = np.asarray(state.downlink_rate_bps, dtype=float)[idx]
    # uplink_rate_bps, when given, is already per entry of idx (e.g. at a chosen power/bandwidth)
    up = (np.asarray(state.uplink_rate_bps, dtype=float)[idx] if uplink_rate_bps is None
          else np.broadcast_to(np.asarray(uplink_rate_bps, dtype=float), idx.shape))
    comp = np.asarray(costs.compute_time_s(idx, rank, steps), dtype=float)
    with np.errstate(divide="ignore"):
        return bits / np.maximum(down, 1e-9) + comp + bits / np.maximum(up, 1e-9)


def fits_window(state: RoundState, idx: np.ndarray, rank, margin: float = 1.0, steps=None) -> np.ndarray:
    """True where `margin` x estimated round time fits the vehicle's dwell window (and the deadline)."""
    idx = np.asarray(idx, dtype=int)
    return margin * round_time_s(state, idx, rank, steps) <= window_s(state, idx)


def largest_fitting_rank(state: RoundState, idx: np.ndarray, candidates, margin: float = 1.0,
                         cap=None) -> np.ndarray:
    """Per vehicle, the largest candidate rank (<= cap) whose round fits its window; 0 = none fits."""
    idx = np.asarray(idx, dtype=int)
    out = np.zeros(idx.shape, dtype=int)
    cap = np.broadcast_to(np.asarray(np.iinfo(np.int64).max if cap is None else cap), idx.shape)
    for r in sorted(int(c) for c in candidates):
        ok = fits_window(state, idx, r, margin) & (r <= cap)
        out = np.where(ok, r, out)
    return out


def select(state: RoundState, eligible: np.ndarray, k: int, how: str, rng: np.random.Generator,
           last_round: dict, priority: np.ndarray | None = None) -> np.ndarray:
    """Pick up to k of `eligible` vehicle indices.

    how: "random" (seeded, uniform without replacement), "round_robin" (least recently trained
    first, ties by vehicle id), "priority" (largest `priority` first, ties by id).
    """
    eligible = np.asarray(eligible, dtype=int)
    k = int(max(0, min(k, eligible.size)))
    if k == 0:
        return np.zeros(0, dtype=int)
    if how == "random":
        return np.sort(rng.choice(eligible, size=k, replace=False))
    ids = [state.vehicle_ids[i] for i in eligible]
    if how == "round_robin":
        keys = sorted(range(eligible.size), key=lambda j: (last_round.get(ids[j], -1), ids[j]))
    elif how == "priority":
        pr = np.asarray(priority, dtype=float)
        keys = sorted(range(eligible.size), key=lambda j: (-pr[j], ids[j]))
    else:
        raise ValueError(f"unknown selection {how!r}; expected random, round_robin or priority")
    return np.sort(eligible[keys[:k]])


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
