"""Hidden-Markov map matching (Newson & Krumm 2009) on a SUMO net read with sumolib.

P. Newson, J. Krumm, "Hidden Markov map matching through noise and sparseness", ACM SIGSPATIAL GIS
2009, pp. 336-343. Each GPS point's hidden state is a position on an edge within `radius_m`; the
emission is Gaussian in the point-to-edge distance (`sigma_m`), the transition exponential in
|route distance - straight-line distance between the two GPS points| (`beta_m`), and Viterbi picks the
most likely sequence. Route distances come from a Dijkstra over the net's edges and their
connections for the vehicle class (turn restrictions and one-ways included), bounded by
`2 * straight-line distance + route_slack_m`. Where no candidate of a point can be reached from any
candidate of the previous one, the chain restarts there (a new piece; the caller repairs or cuts).

Route searches are compiled (`mapmatch_routes`). Candidate search is vectorised: every edge shape is
cut into pieces of at most `PIECE_M`, whose midpoints sit in a scipy cKDTree built once per net and
vehicle class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iovsim.mobility.mapmatch_routes import reach_arrays, successors_csr

PIECE_M = 20.0   # edge shapes are cut into pieces this long at most for the neighbour search
_CACHE_ATTR = "_iovsim_hmm_index"


@dataclass(frozen=True)
class HmmParams:
    """The matcher's parameters (defaults measured in docs/maps_and_traces.md)."""

    sigma_m: float = 10.0
    """Standard deviation of the GPS error across the road (emission)."""
    beta_m: float = 20.0
    """Scale of |route - straight-line distance| between consecutive points (transition)."""
    radius_m: float = 50.0
    """Edges further than this from a point are not candidates for it."""
    max_candidates: int = 8
    """At most this many nearest edges per point."""
    route_slack_m: float = 500.0
    """A route between two points may be 2 x their straight-line distance + this long at most."""
    max_route_m: float = 2000.0
    """...and never longer than this."""
    fastest: bool = True
    """Between two points take the fastest path (length / speed limit), else the shortest: where a grid
    offers several paths of about the same length, drivers (and SUMO's router) take the faster roads."""
    thin: bool = True
    """Drop points closer than `backtrack_m` to the previous point kept (see `moving_points`)."""

    @property
    def backtrack_m(self) -> float:
        """A point this far behind the previous one on the same edge is GPS noise (the vehicle stood or
        crept forward), not a drive round the block: three standard deviations of the along-road
        difference of two fixes, 3 * sqrt(2) * sigma_m."""
        return 3.0 * np.sqrt(2.0) * self.sigma_m


class NetIndex:
    """Edges a vehicle class may use, their successors and the cut shapes' search tree.

    Lengths are measured along the drawn edge shapes, and crossing a junction costs the straight
    distance from one edge's end to the next one's start: GPS positions measure the ground, and
    SUMO's lane lengths leave out the junctions (tens of metres where netconvert joins a cluster of
    OSM nodes), which made routes look shorter than the drive and drew the matcher into detours."""

    ARRAYS = ("length_m", "time_s", "succ_ptr", "succ_to", "succ_gap_m", "succ_gap_s", "p0", "p1", "owner", "offset_m")
    """The arrays that make an index (with its edges); `netindex_cache` stores them."""

    def __init__(self, edges: list, arrays: dict[str, np.ndarray]):
        from scipy.spatial import cKDTree

        self.edges = edges
        self.position = {e.getID(): i for i, e in enumerate(edges)}   # edge id -> its index here
        self.length_m, self.time_s = arrays["length_m"], arrays["time_s"]
        self.csr = tuple(arrays[k] for k in ("succ_ptr", "succ_to", "succ_gap_m", "succ_gap_s"))
        self.p0, self.p1 = arrays["p0"], arrays["p1"]
        self.owner, self.offset_m = arrays["owner"], arrays["offset_m"]
        self.tree = cKDTree(0.5 * (self.p0 + self.p1))
        self.reach_m = 0.5 * float(np.hypot(*(self.p1 - self.p0).T).max())

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(self.ARRAYS, (self.length_m, self.time_s, *self.csr, self.p0, self.p1, self.owner,
                                      self.offset_m)))

    @classmethod
    def build(cls, net, vclass: str) -> NetIndex:
        """The index of the edges of `net` that `vclass` may use, computed from the net."""
        edges = [e for e in net.getEdges() if e.allows(vclass)]
        shapes = [np.asarray(e.getShape(), dtype=float)[:, :2] for e in edges]
        # distances are along the drawn shapes (what GPS positions measure), junctions included
        length_m = np.array([np.hypot(*np.diff(sh, axis=0).T).sum() for sh in shapes])
        time_s = length_m / np.array([max(e.getSpeed(), 0.1) for e in edges])
        csr = successors_csr(_successors(edges, vclass, shapes))
        p0, p1, owner, off = [], [], [], []
        for i, shape in enumerate(shapes):
            seg = np.hypot(*np.diff(shape, axis=0).T)
            for k in np.flatnonzero(seg > 0):
                n = int(np.ceil(seg[k] / PIECE_M))
                f = np.linspace(0.0, 1.0, n + 1)[:, None]
                pts = shape[k] + f * (shape[k + 1] - shape[k])
                p0.append(pts[:-1])
                p1.append(pts[1:])
                owner.append(np.full(n, i))
                off.append(seg[:k].sum() + f[:-1, 0] * seg[k])
        if not p0:   # no road this vehicle class may use: every point is without candidates
            p0 = p1 = [np.full((1, 2), 1e15)]
            owner, off = [np.zeros(1, dtype=int)], [np.zeros(1)]
        arrays = dict(zip(cls.ARRAYS, (length_m, time_s, *csr, np.concatenate(p0),
                                       np.concatenate(p1), np.concatenate(owner), np.concatenate(off))))
        return cls(edges, arrays)

    @classmethod
    def of(cls, net, vclass: str) -> NetIndex:
        """The index of `net` for `vclass`, built on first use and kept on the net object."""
        cache = net.__dict__.setdefault(_CACHE_ATTR, {})
        if vclass not in cache:
            cache[vclass] = cls.build(net, vclass)
        return cache[vclass]

    def keep_on(self, net, vclass: str) -> NetIndex:
        """Make this the index `of(net, vclass)` returns (one loaded from `netindex_cache`)."""
        net.__dict__.setdefault(_CACHE_ATTR, {})[vclass] = self
        return self

    def candidates(self, xy: np.ndarray, radius_m: float, k: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per point: (edge index, position along the edge in m, distance in m) of the k nearest edges."""
        out = []
        for q, near in zip(xy, self.tree.query_ball_point(xy, radius_m + self.reach_m)):
            near = np.asarray(near, dtype=int)
            if not len(near):
                out.append((near, np.zeros(0), np.zeros(0)))
                continue
            a, b = self.p0[near], self.p1[near]
            ab = b - a
            t = np.clip(np.einsum("ij,ij->i", q - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
            dist = np.hypot(*(q - (a + t[:, None] * ab)).T)
            edge = self.owner[near]
            pos = self.offset_m[near] + t * np.hypot(*ab.T)
            order = np.lexsort((dist, edge))
            _, first = np.unique(edge[order], return_index=True)   # the nearest piece of each edge
            best = order[first]
            best = best[dist[best] <= radius_m]
            best = best[np.argsort(dist[best])][:k]
            out.append((edge[best], np.minimum(pos[best], self.length_m[edge[best]]), dist[best]))
        return out

    def reach(self, src: int, bound_m: float, fastest: bool, targets=None) -> tuple[np.ndarray, np.ndarray, bool]:
        """Dijkstra (by time if `fastest`, else by length) from the end of edge `src`, as far as `bound_m`
        metres: per edge, the distance in metres to its start (inf where not reached) and its
        predecessor (-1), as arrays, and whether the search ran to its end; with `targets` it stops
        once they are all settled (`mapmatch_routes`, compiled)."""
        return reach_arrays(*self.csr, self.length_m, self.time_s, src, bound_m, fastest, targets)


def _successors(edges: list, vclass: str, shapes) -> list[list[tuple[int, float, float]]]:
    """Per edge: (next edge, metres across the junction, seconds across it) for each allowed connection."""
    pos = {e.getID(): i for i, e in enumerate(edges)}
    out = []
    for i, e in enumerate(edges):
        row = []
        for o in e.getAllowedOutgoing(vclass):
            k = pos.get(o.getID())
            if k is None:
                continue
            gap = float(np.hypot(*(shapes[k][0] - shapes[i][-1])))
            row.append((k, gap, gap / max(o.getSpeed(), 0.1)))
        out.append(row)
    return out


class _Routes:
    """Dijkstra runs of one trip, one per source edge, reused while their bound covers the question.

    A run stops once the edges asked about from its source (every target so far) are settled; a
    later question about other edges runs it again, for all of them, with the same bound. So each
    answer, and each path `path` walks, is what a run to the end with that bound gives."""

    def __init__(self, index: NetIndex, fastest: bool):
        self.index, self.fastest = index, fastest
        self.runs: dict[int, tuple] = {}   # source -> (bound, dist, pred, ran to the end, targets)

    def tree(self, src: int, bound_m: float, targets: np.ndarray) -> np.ndarray:
        """Metres from the end of `src` to the start of each edge (inf: not reached within the bound);
        exact at `targets` (distinct edges) and on the paths to them."""
        run = self.runs.get(src)
        if run is not None:
            if run[0] >= bound_m and (run[3] or np.all(np.isfinite(run[1][targets]))):
                return run[1]
            # again, for the earlier targets too (`path` may walk to them), as far as the larger bound
            bound_m, targets = max(run[0], bound_m), np.union1d(run[4], targets)
        run = self.runs[src] = (bound_m, *self.index.reach(src, bound_m, self.fastest, targets), targets)
        return run[1]

    def path(self, src: int, dst: int) -> list[int]:
        """Edges strictly between src and dst on the shortest path found (dst reached from src)."""
        pred, out, j = self.runs[src][2], [], dst
        while (j := int(pred[j])) != src:   # Dijkstra's tree: the chain ends at one of src's successors
            if j < 0:
                raise AssertionError(f"edge {dst} was not reached from edge {src}")
            out.append(j)
        return out[::-1]


def _route_matrix(routes: _Routes, a, b, straight_m: float, p: HmmParams) -> np.ndarray:
    """Route distance (m) from each candidate of one point (a) to each of the next (b); inf if too far."""
    (ea, pa, _), (eb, pb, _) = a, b
    bound = min(2.0 * straight_m + p.route_slack_m, p.max_route_m)
    length = routes.index.length_m
    out = np.full((len(ea), len(eb)), np.inf)
    for i, (e, s) in enumerate(zip(ea, pa)):
        via = routes.tree(int(e), bound, eb)[eb]
        out[i] = length[e] - s + via + pb
        same = (eb == e) & (pb >= s - p.backtrack_m)
        out[i, same] = np.maximum(pb[same] - s, 0.0)
    return out


def viterbi(xy: np.ndarray, cands, routes: _Routes, p: HmmParams) -> list[list[tuple[int, float, int]]]:
    """Most likely (edge, position, point index) per point, as pieces where the chain had to restart."""
    pieces, score, back, idx = [], None, [], []
    for t, c in enumerate(cands):
        if not len(c[0]):
            continue   # no road within reach of this point: it has no state
        emit = -0.5 * (c[2] / p.sigma_m) ** 2
        if score is not None:
            straight = float(np.hypot(*(xy[t] - xy[idx[-1]])))
            trans = -np.abs(_route_matrix(routes, cands[idx[-1]], c, straight, p) - straight) / p.beta_m
            total = score[:, None] + trans
            if np.isfinite(total).any():
                back.append(np.argmax(total, axis=0))
                score = total.max(axis=0) + emit
                idx.append(t)
                continue
            pieces.append(_backtrack(score, back, idx, cands))
        score, back, idx = emit, [], [t]
    if score is not None:
        pieces.append(_backtrack(score, back, idx, cands))
    return pieces


def _backtrack(score, back, idx, cands) -> list[tuple[int, float, int]]:
    j = int(np.argmax(np.where(np.isfinite(score), score, -np.inf)))
    states = []
    for k in range(len(idx) - 1, -1, -1):
        e, s, _ = cands[idx[k]]
        states.append((int(e[j]), float(s[j]), idx[k]))
        if k:
            j = int(back[k - 1][j])
    return states[::-1]


def moving_points(xy: np.ndarray, min_move_m: float) -> np.ndarray:
    """The points at least `min_move_m` from the previous one kept (and the last point).

    Newson & Krumm drop such points too: a vehicle standing at a junction scatters its fixes on
    both sides of it, which a route can only join by driving round the block."""
    if len(xy) < 2:
        return xy
    keep = [0]
    for i in range(1, len(xy)):
        if np.hypot(*(xy[i] - xy[keep[-1]])) >= min_move_m:
            keep.append(i)
    if keep[-1] != len(xy) - 1:   # end where the trace ends: the last point replaces the one near it
        if len(keep) > 1:
            keep[-1] = len(xy) - 1
        else:
            keep.append(len(xy) - 1)
    return xy[keep]


def hmm_match(xy: np.ndarray, net, vclass: str = "passenger", params: HmmParams | None = None) -> tuple[list, int]:
    """Match points (N x 2, net metres) to edges: pieces (lists of connected sumolib edges) and how many
    fixes were left out as unreachable.

    A fix that makes a piece on its own (no route joins it to the fixes before and after it, e.g. one
    fix on a ramp the map cut off) is left out rather than cutting the route there."""
    p = params or HmmParams()
    index = NetIndex.of(net, vclass)
    routes = _Routes(index, p.fastest)
    xy = np.asarray(xy, dtype=float)
    if p.thin:
        xy = moving_points(xy, p.backtrack_m)
    cands = index.candidates(xy, p.radius_m, p.max_candidates)
    pieces = viterbi(xy, cands, routes, p)
    joined = [states for states in pieces if len(states) > 1]
    left_out = len(pieces) - len(joined) if joined else 0
    pieces = joined or pieces
    out = []
    for states in pieces:
        seq = [states[0][0]]
        for (e, s, _), (f, r, _) in zip(states, states[1:]):
            if e == f and r >= s - p.backtrack_m:
                continue
            seq += routes.path(e, f) + [f]
        out.append([index.edges[i] for i in seq])
    return out, left_out
