"""RSU coverage: the share of vehicle-seconds spent within range of an RSU."""
from __future__ import annotations

import numpy as np


def covered(vehicle_xy: np.ndarray, rsu_xy: np.ndarray, radius_m: float | np.ndarray) -> np.ndarray:
    """Boolean per vehicle: within `radius_m` (scalar or one per RSU) of at least one RSU."""
    v = np.asarray(vehicle_xy, dtype=float).reshape(-1, 2)
    r = np.asarray(rsu_xy, dtype=float).reshape(-1, 2)
    if len(v) == 0 or len(r) == 0:
        return np.zeros(len(v), dtype=bool)
    d2 = ((v[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    rad = np.broadcast_to(np.asarray(radius_m, dtype=float), (len(r),))
    return np.any(d2 <= rad[None, :] ** 2, axis=1)


def coverage_share(vehicle_xy_over_time, rsu_xy, radius_m, step_length_s: float = 1.0) -> float:
    """Vehicle-seconds within range of an RSU / all vehicle-seconds.

    `vehicle_xy_over_time`: an iterable of (N_t, 2) arrays, one per step (equal step lengths), or
    one (M, 2) array of all sampled positions. Returns 0.0 when there are no vehicles.
    """
    if isinstance(vehicle_xy_over_time, np.ndarray) and vehicle_xy_over_time.ndim == 2:
        frames = [vehicle_xy_over_time]
    else:
        frames = list(vehicle_xy_over_time)
    inside = total = 0
    for xy in frames:
        c = covered(xy, rsu_xy, radius_m)
        inside += int(c.sum())
        total += len(c)
    return inside / total if total else 0.0

