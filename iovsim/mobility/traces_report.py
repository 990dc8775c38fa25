"""What an import did: points read and dropped per reason, trips, matching, acceptance."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

DROP_REASONS = ("duplicate", "time_reversal", "speed_jump", "second_device", "off_map", "short_trip")


@dataclass
class ImportReport:
    """What `import_traces` did; `dropped_points` counts points per reason, `trips` counts trips."""

    files: list[str] = field(default_factory=list)
    vehicles: int = 0
    points_read: int = 0
    points_kept: int = 0
    dropped_points: dict = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})
    interleaved: dict = field(default_factory=dict)
    """vehicle -> {jumps_over_max_speed, second_device_points, points_kept} for each vehicle whose
    points came from two devices at once (`traces_tracks`); only one consistent track is kept."""
    trips_split: int = 0
    trips_short: int = 0
    trips_in_bounds: int = 0
    trips_matched: int = 0
    trips_fully_connected: int = 0
    trips_repaired: int = 0
    trips_unmatched: int = 0
    trips_truncated: int = 0
    points_unreachable: int = 0
    """Fixes the HMM matcher left out, each a piece on its own that no route joins to the others."""
    routes_written: int = 0
    routes_accepted: int | None = None
    first_depart_s: float = 0.0
    last_depart_s: float = 0.0
    time_compression: float = 1.0
    matcher: str = "hmm"
    routes_file: str = ""
    replay_file: str = ""
    fcd_file: str = ""
    elapsed_s: float = 0.0

    @property
    def acceptance(self) -> float | None:
        """Share of in-bounds trips that became routes SUMO accepted (None if not validated)."""
        if self.routes_accepted is None or not self.trips_in_bounds:
            return None
        return self.routes_accepted / self.trips_in_bounds

    def summary(self) -> str:
        d = self.dropped_points
        lines = [
            f"read {self.points_read} points of {self.vehicles} vehicles from {len(self.files)} file(s)",
            "dropped points: " + ", ".join(f"{r} {d.get(r, 0)}" for r in DROP_REASONS),
            *([f"two devices interleaved: {len(self.interleaved)} vehicle(s) ("
               + ", ".join(sorted(self.interleaved)[:5]) + (", ..." if len(self.interleaved) > 5 else "")
               + "), the consistent track kept"] if self.interleaved else []),
            f"trips: {self.trips_in_bounds} in bounds (split on gaps into {self.trips_split}, "
            f"{self.trips_short} too short dropped)",
            f"map matching ({self.matcher}): {self.trips_matched} matched ({self.trips_fully_connected} connected as matched, "
            f"{self.trips_repaired} repaired by shortest path, {self.trips_truncated} cut to their longest "
            f"connected piece), {self.trips_unmatched} unmatched (no road within reach)"
            + (f"; {self.points_unreachable} lone fixes no route reaches left out" if self.points_unreachable else ""),
            f"routes written: {self.routes_written}, departures {self.first_depart_s:.0f}-{self.last_depart_s:.0f} s"
            + (f" (compressed {self.time_compression:g}x)" if self.time_compression != 1 else ""),
        ]
        if self.routes_accepted is not None:
            lines.append(f"SUMO accepted {self.routes_accepted} routes = {100 * self.acceptance:.1f}% of in-bounds trips")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["acceptance"] = self.acceptance
        return d


def merge_reports(reports: list[ImportReport], *, matcher: str = "hmm") -> ImportReport:
    """One report summing several (the vehicles of a fleet imported one by one): counts added, files
    and interleaved vehicles gathered; what is written later (routes, departures) left at defaults."""
    out = ImportReport(matcher=matcher)
    summed = ("vehicles", "points_read", "points_kept", "trips_split", "trips_short", "trips_in_bounds",
              "trips_matched", "trips_fully_connected", "trips_repaired", "trips_unmatched", "trips_truncated",
              "points_unreachable")
    for r in reports:
        out.files += r.files
        for name in summed:
            setattr(out, name, getattr(out, name) + getattr(r, name))
        for reason, n in r.dropped_points.items():
            out.dropped_points[reason] = out.dropped_points.get(reason, 0) + n
        out.interleaved.update(r.interleaved)
    out.files = sorted(set(out.files))
    return out
