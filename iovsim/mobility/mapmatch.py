"""Map matching: a cleaned trip -> consecutive edges of the SUMO net that SUMO can drive."""
from __future__ import annotations

from iovsim.mobility.traces_clean import Trip
from iovsim.mobility.traces_report import ImportReport

def match_trip(trip: Trip, net, *, delta_m: float = 50.0, fill_gaps_m: float = 2000.0,
               vclass: str = "passenger") -> Trip:
    """Map-match a trip to consecutive edges; repair disconnections with the shortest path.

    Where no path exists (a dead end at the map's edge, a one-way matched against its direction)
    the route is cut there and the longest connected piece is kept (status `truncated`).
    """
    import sumolib

    pts = list(zip(trip.x_m.tolist(), trip.y_m.tolist()))
    edges = sumolib.route.mapTrace(pts, net, delta_m, verbose=False, fillGaps=fill_gaps_m, vClass=vclass)
    edges = [e for e in edges if e.allows(vclass)]
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
        path, _cost = net.getShortestPath(prev, e, vClass=vclass)
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


def match_trips(trips: list[Trip], net, report: ImportReport | None = None, **kw) -> list[Trip]:
    report = report if report is not None else ImportReport()
    for trip in trips:
        match_trip(trip, net, **kw)
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
