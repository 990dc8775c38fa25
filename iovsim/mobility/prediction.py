"""Where a vehicle will be: positions along its SUMO route ahead, for handover-window prediction."""
from __future__ import annotations

import numpy as np


class RouteAhead:
    """Walks each vehicle's remaining route on the net's lane geometry at its current speed."""

    def __init__(self, net, min_speed_mps: float = 2.0):
        self.net = net
        self.min_speed_mps = min_speed_mps
        self._shapes: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _shape(self, edge_id: str):
        got = self._shapes.get(edge_id)
        if got is None:
            try:
                edge = self.net.getEdge(edge_id)
                shape = np.asarray(edge.getLanes()[0].getShape(), dtype=float)
            except (KeyError, IndexError):
                shape = np.zeros((0, 2))
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(shape, axis=0), axis=1))]) if len(shape) else np.zeros(0)
            got = self._shapes[edge_id] = (shape, cum)
        return got

    def positions(self, route: tuple[str, ...], route_index: int, edge: str, lane_pos_m: float,
                  xy_m: np.ndarray, speed_mps: float, horizon_s: float, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(times_s, xy_m) along the route ahead, every dt_s up to horizon_s, at the current speed
        (floored at min_speed_mps so that a queued vehicle is still expected to move on).
        Positions after the route's end repeat its last point (the vehicle leaves the map there)."""
        speed = max(float(speed_mps), self.min_speed_mps)
        times = np.arange(dt_s, horizon_s + 1e-9, dt_s)
        # Concatenate the polylines of the current edge (from lane_pos) and the edges ahead.
        start = route_index + 1 if edge.startswith(":") or (route_index < len(route) and route[route_index] != edge) else route_index
        pieces = [np.asarray(xy_m, dtype=float)[None, :]]
        reach_m = speed * horizon_s
        total_m = 0.0
        for k, eid in enumerate(route[start:]):
            shape, cum = self._shape(eid)
            if len(shape) < 2:
                continue
            if k == 0 and eid == edge:  # skip the part of the current edge already driven
                keep = cum > float(lane_pos_m)
                total_m += cum[-1] - float(lane_pos_m)
            else:
                keep = np.ones(len(shape), dtype=bool)
                total_m += cum[-1]
            pieces.append(shape[keep])
            if total_m > reach_m:
                break
        path = np.concatenate(pieces, axis=0)
        seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        dist = np.minimum(speed * times, cum[-1])
        xy = np.column_stack([np.interp(dist, cum, path[:, 0]), np.interp(dist, cum, path[:, 1])])
        return times, xy
