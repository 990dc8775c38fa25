"""Interleaved devices: one vehicle id whose points come from two GPS units kilometres apart.

Some Cabspotting cabs report from two units in turn (one parked, say, one driving). Dropping
"impossible jumps" point by point keeps nonsense there: many hops between the two tracks are under
the speed limit (1 km in 30 s is 33 m/s), so a zig-zag across both survives. Instead the points are
split into consistent sub-tracks and only a consistent set of them is kept:

1. **Assign** (time order): a point joins the open sub-track whose last point it reaches at the
   lowest speed, if that speed is at most `max_speed_mps` and that point is at most `max_gap_s`
   old; otherwise it joins the nearest open sub-track within `SEPARATION_M` (a jittery fix, dropped
   later as too fast), or starts a sub-track. When the sub-track's last point is a spike (more than
   `SEPARATION_M` from both its predecessor and the new point, which are less than half that apart),
   that last point moves to a sub-track of its own: the second unit's first fix, which could
   join the first track at a legal speed before the second track existed.
2. **Refine** (up to `REFINE_PASSES` passes): a point moves to another sub-track of at least two
   points when that sub-track's position at the point's time (interpolated between its points,
   or its nearest point within `max_gap_s`) is nearer than its own sub-track's without it.
3. **Keep** sub-tracks largest first; a point falling inside the time span of points already
   kept is dropped (the vehicle is one vehicle: two units reporting over the same minutes cannot
   both be it), the others are kept. A sub-track's dropped points are a second device
   (`second_device`) when they alternate with kept ones (at least `min_points` separate runs),
   else GPS outliers (`speed_jump`). A vehicle with a second device is reported as interleaved.

The caller then walks the kept points in time order: a step above the speed limit inside one
sub-track drops the point (`speed_jump`), and between two sub-tracks starts a new trip, so every
trip is one consistent track.
"""
from __future__ import annotations

import numpy as np

REFINE_PASSES = 5
SEPARATION_M = 500.0   # two units closer than this are not told apart (nor a U-turn from a hop to another unit)


def assign_tracks(t: np.ndarray, x: np.ndarray, y: np.ndarray, max_speed_mps: float, max_gap_s: float) -> np.ndarray:
    """Sub-track label of each point (strictly increasing `t`), greedily by the lowest speed needed."""
    labels = np.empty(len(t), dtype=int)
    tails: dict[int, list[int]] = {}   # open sub-track -> its last two points (previous, last)
    n_tracks = 0
    for i in range(len(t)):
        best, best_v, via_spike, near, near_m = -1, max_speed_mps, False, -1, SEPARATION_M
        for k, tail in list(tails.items()):
            if t[i] - t[tail[-1]] > max_gap_s:
                del tails[k]   # a long gap ends a sub-track; trips are split there anyway
                continue
            spike = len(tail) == 2 and _spike(*tail, i, x, y)
            j = tail[0] if spike else tail[-1]   # past a spike, the point before it is the track's end
            d = np.hypot(x[i] - x[j], y[i] - y[j])
            if d / (t[i] - t[j]) <= best_v:
                best, best_v, via_spike = k, d / (t[i] - t[j]), spike
            if d <= near_m:
                near, near_m = k, d
        if best < 0 and near >= 0:
            best = near   # too fast but close by: a jittery fix of this track (dropped later), not a device
        if best < 0:
            best, n_tracks = n_tracks, n_tracks + 1
            tails[best] = []
        elif via_spike:
            j = tails[best].pop()          # another device's first fix: it starts its own sub-track
            labels[j], tails[n_tracks] = n_tracks, [j]
            n_tracks += 1
        labels[i] = best
        tails[best] = (tails[best] + [i])[-2:]
    return labels


def _spike(p: int, j: int, i: int, x, y) -> bool:
    """Whether j lies far off the way from p to i (further than SEPARATION_M from both, which are much nearer
    each other): a hop to another device and back, not a drive."""
    d_pj, d_ji, d_pi = (np.hypot(x[b] - x[a], y[b] - y[a]) for a, b in ((p, j), (j, i), (p, i)))
    return min(d_pj, d_ji) > SEPARATION_M and d_pi < 0.5 * min(d_pj, d_ji)


def _position_of(track: np.ndarray, t, x, y, at: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Where sub-track `track` (point indices) is at times `at`: N x 2, NaN where it is not within
    `max_gap_s` of a point of the sub-track. A point of the sub-track itself is left out."""
    tt = t[track]
    k = np.searchsorted(tt, at)                    # first sub-track point at or after `at`
    own = (k < len(tt)) & (tt[np.minimum(k, len(tt) - 1)] == at)
    after = np.where(own, k + 1, k)                # skip the point itself
    before = k - 1
    has_b, has_a = before >= 0, after < len(tt)
    b, a = np.clip(before, 0, len(tt) - 1), np.clip(after, 0, len(tt) - 1)
    tb, ta = tt[b], tt[a]
    w = np.where(has_b & has_a, (at - tb) / np.maximum(ta - tb, 1e-9), np.where(has_a, 1.0, 0.0))
    px = x[track][b] + w * (x[track][a] - x[track][b])
    py = y[track][b] + w * (y[track][a] - y[track][b])
    near = (has_b & (at - tb <= max_gap_s)) | (has_a & (ta - at <= max_gap_s))
    ok = (has_b | has_a) & near
    return np.where(ok[:, None], np.column_stack([px, py]), np.nan)


def refine_tracks(labels: np.ndarray, t, x, y, max_gap_s: float) -> np.ndarray:
    """Move points to the sub-track whose interpolated position is nearest (step 2 of the module doc)."""
    labels = labels.copy()
    for _ in range(REFINE_PASSES):
        tracks = [k for k in np.unique(labels) if np.sum(labels == k) >= 2]
        if len(tracks) < 2:
            break
        dist = np.full((len(tracks), len(t)), np.inf)
        for r, k in enumerate(tracks):
            pos = _position_of(np.flatnonzero(labels == k), t, x, y, t, max_gap_s)
            dist[r] = np.where(np.isnan(pos[:, 0]), np.inf, np.hypot(x - pos[:, 0], y - pos[:, 1]))
        best = np.asarray(tracks)[np.argmin(dist, axis=0)]
        own_rows = {k: r for r, k in enumerate(tracks)}
        own = np.array([dist[own_rows[k], i] if k in own_rows else np.inf for i, k in enumerate(labels)])
        # only points of a sub-track that has a position without them move: a lone outlier stays alone
        move = np.isfinite(own) & (dist.min(axis=0) < own) & (best != labels)
        if not move.any():
            break
        labels[move] = best[move]
    return labels


def keep_points(labels: np.ndarray, t: np.ndarray, min_points: int) -> tuple[np.ndarray, int, int]:
    """Kept points (mask), and how many were dropped as a second device and as outliers.

    Sub-tracks largest first: a point inside the time span of a run of points already kept is
    dropped (one vehicle is in one place at a time), the others are kept, in runs that cover their
    spans in turn. A sub-track's dropped points are a second device when they interleave with the
    kept ones (at least `min_points` separate runs), else outliers."""
    keep = np.zeros(len(t), dtype=bool)
    covered: list[tuple[float, float]] = []
    for k in np.argsort(-np.bincount(labels), kind="stable"):
        idx = np.flatnonzero(labels == k)
        inside = np.zeros(len(idx), dtype=bool)
        for lo, hi in covered:
            inside |= (t[idx] >= lo) & (t[idx] <= hi)
        keep[idx[~inside]] = True
        for run in np.split(idx, np.flatnonzero(np.diff(inside.astype(int))) + 1):
            if len(run) and keep[run[0]]:
                covered.append((float(t[run[0]]), float(t[run[-1]])))
    kept_before = np.cumsum(keep)
    second = 0
    for k in np.unique(labels[~keep]):
        gone = np.flatnonzero(~keep & (labels == k))
        runs = 1 + int(np.sum(np.diff(kept_before[gone]) > 0))   # kept points between them: separate runs
        second += len(gone) if runs >= min_points else 0
    return keep, second, int(np.sum(~keep)) - second


def separate_devices(t, x, y, max_speed_mps: float, max_gap_s: float, min_points: int) -> dict:
    """Split into sub-tracks and choose the kept points. Returns `keep` (mask), `label` (per point),
    `second_device` and `outliers` (how many points were dropped as either)."""
    labels = assign_tracks(t, x, y, max_speed_mps, max_gap_s)
    if labels.max(initial=0) > 0:
        labels = refine_tracks(labels, t, x, y, max_gap_s)
    keep, second, outliers = keep_points(labels, t, min_points)
    return {"keep": keep, "label": labels, "second_device": second, "outliers": outliers}
