"""Bounded Dijkstra over the map matcher's edge graph, compiled with numba (plain Python without it).

The HMM matcher (`mapmatch_hmm`) asks, for every candidate edge of a GPS fix, which edges can be
reached from its end within a few hundred metres, and how far they are: thousands of searches per
trip. In pure Python the heap operations were nearly nine tenths of the import's time (0.08 s a
trip); compiled, the same search with the same heap order (entries compared as tuples
(cost, metres, edge, predecessor), as `heapq` compares them in Python) gives the same edges,
distances and predecessors, bit for bit (`tests/test_fleet_import.py`).

The graph is in compressed sparse row form: the successors of edge i are `to[ptr[i]:ptr[i + 1]]`,
with the metres and seconds across the junction to each (`gap_m`, `gap_s`).
"""
from __future__ import annotations

import heapq
import os

import numpy as np

try:  # an accelerator: the searches give the same results without it, ~50 times slower
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

COMPILED = numba is not None and os.environ.get("IOVSIM_NUMBA", "1") != "0"


def successors_csr(succ: list[list[tuple[int, float, float]]]) -> tuple[np.ndarray, ...]:
    """(ptr, to, gap_m, gap_s) of per-edge successor lists [(next edge, metres, seconds), ...]."""
    ptr = np.zeros(len(succ) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(row) for row in succ])
    flat = [s for row in succ for s in row]
    to = np.array([s[0] for s in flat], dtype=np.int64)
    gap_m = np.array([s[1] for s in flat], dtype=np.float64)
    gap_s = np.array([s[2] for s in flat], dtype=np.float64)
    return ptr, to, gap_m, gap_s


def reach_arrays(ptr, to, gap_m, gap_s, length_m, time_s, src: int, bound_m: float, fastest: bool,
                 targets: np.ndarray | None = None):
    """Edges reached from the end of edge `src` (by time if `fastest`, else by length) while the
    metres driven before entering the edge leave it within `bound_m`: per edge of the graph, the
    metres to its start (inf where not reached) and its predecessor (-1 where not reached), and
    whether the search ran to its end.

    With `targets` (distinct edge indices) the search stops once all of them are settled: what it found up
    to then (those targets included, and the edges on their paths) is exactly what the whole
    search finds, since Dijkstra never revisits a settled edge."""
    fn = _reach_compiled if COMPILED else _reach
    targets = np.asarray(targets if targets is not None else [], dtype=np.int64)
    return fn(ptr, to, gap_m, gap_s, length_m, time_s, np.int64(src), float(bound_m), bool(fastest), targets)


def _reach(ptr, to, gap_m, gap_s, length_m, time_s, src, bound_m, fastest, targets):
    n = length_m.size
    left = targets.size   # targets not settled yet; the search ends when none is left
    done = np.zeros(n, dtype=np.bool_)
    dist = np.full(n, np.inf)
    pred = np.full(n, -1, dtype=np.int64)
    heap = [(0.0, 0.0, np.int64(0), np.int64(0))]   # typed for numba, emptied below
    heap.pop()
    for q in range(ptr[src], ptr[src + 1]):
        heap.append((gap_s[q] if fastest else gap_m[q], gap_m[q], to[q], src))
    heapq.heapify(heap)
    while len(heap) > 0:
        c, d, j, p = heapq.heappop(heap)
        if done[j]:
            continue
        done[j] = True
        dist[j] = d
        pred[j] = p
        if left > 0:
            for t in targets:
                if t == j:
                    left -= 1
                    if left == 0:
                        return dist, pred, False
        if d + length_m[j] <= bound_m:
            c += time_s[j] if fastest else length_m[j]
            d += length_m[j]
            for q in range(ptr[j], ptr[j + 1]):
                k = to[q]
                if not done[k]:
                    heapq.heappush(heap, (c + (gap_s[q] if fastest else gap_m[q]), d + gap_m[q], k, j))
    return dist, pred, True


def reachable(ptr, to, src: int, dst: int) -> bool:
    """Whether edge `dst` can be reached from the end of edge `src` at all (a walk over the graph)."""
    fn = _reachable_compiled if COMPILED else _reachable
    return bool(fn(ptr, to, np.int64(src), np.int64(dst)))


def _reachable(ptr, to, src, dst):
    seen = np.zeros(ptr.size - 1, dtype=np.bool_)
    stack = np.empty(ptr.size, dtype=np.int64)   # each edge is pushed at most once
    stack[0], top = src, 1
    while top > 0:
        top -= 1
        j = stack[top]
        for q in range(ptr[j], ptr[j + 1]):
            k = to[q]
            if k == dst:
                return True
            if not seen[k]:
                seen[k] = True
                stack[top] = k
                top += 1
    return False


_reach_compiled = numba.njit(cache=True, nogil=True)(_reach) if numba is not None else _reach
_reachable_compiled = numba.njit(cache=True, nogil=True)(_reachable) if numba is not None else _reachable
