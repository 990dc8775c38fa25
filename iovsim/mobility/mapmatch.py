"""Map matching: a cleaned trip -> consecutive edges of the SUMO net that SUMO can drive.

Two matchers: `hmm` (default; `mapmatch_hmm`, Newson & Krumm 2009) and `sumolib`
(`sumolib.route.mapTrace`, the matcher used before; kept for comparison). Either result goes through
the same repair: consecutive edges that are not connected are joined by the shortest path, and where
no path exists the route is cut and its longest connected piece kept (status `truncated`).
"""
from __future__ import annotations

import typing
from typing import Literal

import numpy as np

from iovsim.mobility.mapmatch_hmm import HmmParams, NetIndex, hmm_match
from iovsim.mobility.mapmatch_routes import reachable
from iovsim.mobility.traces_clean import Trip
from iovsim.mobility.traces_read import TraceError
from iovsim.mobility.traces_report import ImportReport

Matcher = Literal["hmm", "sumolib"]
MATCHERS = typing.get_args(Matcher)


def match_trip(trip: Trip, net, *, matcher: str = "hmm", delta_m: float = 50.0, fill_gaps_m: float = 2000.0,
               vclass: str = "passenger", sigma_m: float = 10.0, beta_m: float | None = None) -> Trip:
    """Map-match a trip to consecutive edges (`matcher` hmm or sumolib) and repair disconnections.

    `delta_m`: search radius around each point; `fill_gaps_m`: longest route between two points;
    `sigma_m`, `beta_m`: the HMM's GPS noise and transition scale (HmmParams' defaults when None)."""
    xy = np.column_stack([trip.x_m, trip.y_m])
    if matcher == "hmm":
        params = HmmParams(sigma_m=sigma_m, radius_m=delta_m, max_route_m=fill_gaps_m,
                           **({} if beta_m is None else {"beta_m": beta_m}))
        pieces, trip.unreachable_points = hmm_match(xy, net, vclass, params)
        edges = [e for piece in pieces for e in piece]
    elif matcher == "sumolib":
        import sumolib

        edges = sumolib.route.mapTrace(xy.tolist(), net, delta_m, verbose=False, fillGaps=fill_gaps_m, vClass=vclass)
        edges = [e for e in edges if e.allows(vclass)]
    else:
        raise TraceError(f"matcher: expected one of {', '.join(MATCHERS)}, got {matcher!r}")
    return connect(trip, edges, net, vclass)


def connect(trip: Trip, edges: list, net, vclass: str) -> Trip:
    """Set trip.edges from matched edges: gaps repaired by the shortest path, else the longest piece kept."""
    if not edges:
        trip.status = "unmatched"
        return trip
    pieces = [[edges[0]]]
    repaired = [0]
    for e in edges[1:]:
        prev = pieces[-1][-1]
        if e is prev:
            continue
        if e in prev.getOutgoing():
            pieces[-1].append(e)
            continue
        path = _shortest_path(net, prev, e, vclass)
        if path is None:
            pieces.append([e])
            repaired.append(0)
        else:
            pieces[-1].extend(path[1:])
            repaired[-1] += 1
    k = max(range(len(pieces)), key=lambda i: sum(x.getLength() for x in pieces[i]))
    trip.edges = [x.getID() for x in pieces[k]]
    trip.repaired_gaps = repaired[k]
    trip.status = "matched" if len(pieces) == 1 else "truncated"
    return trip


def _shortest_path(net, a, b, vclass: str) -> list | None:
    """sumolib's shortest path from edge a to edge b, or None. Where there is none, sumolib searches the
    whole net first (30 ms on San Francisco); a compiled walk over the same connections says so at once."""
    index = NetIndex.of(net, vclass)
    i, j = index.position.get(a.getID()), index.position.get(b.getID())
    if i is not None and j is not None and not reachable(*index.csr[:2], i, j):
        return None
    return net.getShortestPath(a, b, vClass=vclass)[0]


def match_trips(trips: list[Trip], net, report: ImportReport | None = None, **kw) -> list[Trip]:
    for trip in trips:
        match_trip(trip, net, **kw)
    return count_matched(trips, report)


def count_matched(trips: list[Trip], report: ImportReport | None = None) -> list[Trip]:
    """Add matched trips' outcomes to the report (matched, cut, repaired, unmatched, unreachable points)."""
    report = report if report is not None else ImportReport()
    for trip in trips:
        report.points_unreachable += trip.unreachable_points
        if trip.status == "unmatched":
            report.trips_unmatched += 1
            continue
        report.trips_matched += 1
        if trip.status == "truncated":
            report.trips_truncated += 1
        elif trip.repaired_gaps:
            report.trips_repaired += 1
        else:
            report.trips_fully_connected += 1
    return trips
