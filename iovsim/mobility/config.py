"""Configuration of the traffic side: which SUMO scenario, how it is run, and where RSUs stand
(their radio parameters are in the channel section)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MobilityConfig:
    scenario: str = "sumo:tools/game/A10KW"
    """A scenario: `sumo:<path under SUMO_HOME>` (a folder with osm.net.xml and *.rou.xml, or a
    .sumocfg), a scenario YAML made by `iovsim scenario`, a `.sumocfg`, or a folder. Ignored when
    `net_file` is given."""
    net_file: str = ""
    """SUMO network (.net.xml); overrides the scenario's."""
    route_files: list[str] = field(default_factory=list)
    """Route/demand files (.rou.xml); override the scenario's."""
    additional_files: list[str] = field(default_factory=list)
    """Extra SUMO additional files (e.g. vehicle types)."""
    backend: str = "libsumo"
    """`libsumo` (in-process, fast) or `traci` (a sumo process; needed for sumo-gui)."""
    step_length_s: float = 1.0
    """SUMO step length."""
    begin_s: float = 0.0
    """SUMO begin time."""
    warmup_s: float = 120.0
    """Traffic runs this long before round 1, so the map fills up."""
    end_s: float = 3600.0
    """SUMO end time; the experiment stops when it is reached."""
    fl_vehicles: int = 40
    """How many federated vehicles are on the map at once (0 = every vehicle); a vehicle inserted
    while fewer are present joins, so the fleet is replenished as vehicles leave. The others are
    background traffic."""
    enrol: str = "first"
    """Which inserted vehicles join: `first` (every one while there is room) or `random` (each with `enrol_probability`)."""
    enrol_probability: float = 0.2
    """With `enrol: random`, the chance that an inserted vehicle takes part."""
    scale: float = 1.0
    """SUMO's --scale: multiplies the demand."""
    sumo_args: list[str] = field(default_factory=list)
    """Extra command-line options passed to SUMO as they are."""

    def file_fields(self):
        yield "net_file", self.net_file
        for i, f in enumerate(self.route_files):
            yield f"route_files[{i}]", f
        for i, f in enumerate(self.additional_files):
            yield f"additional_files[{i}]", f
        if not self.net_file and self.scenario and not self.scenario.startswith("sumo:"):
            yield "scenario", self.scenario

    def validate(self, err):
        if self.backend not in ("libsumo", "traci"):
            err("backend", f"expected libsumo or traci, got {self.backend!r}")
        if self.step_length_s <= 0:
            err("step_length_s", f"expected a positive number, got {self.step_length_s}")
        if self.warmup_s < 0:
            err("warmup_s", f"expected a number >= 0, got {self.warmup_s}")
        if self.end_s <= self.begin_s + self.warmup_s:
            err("end_s", f"expected more than begin_s + warmup_s ({self.begin_s + self.warmup_s:g}), got {self.end_s:g}")
        if self.fl_vehicles < 0:
            err("fl_vehicles", f"expected an integer >= 0, got {self.fl_vehicles}")
        if self.enrol not in ("first", "random"):
            err("enrol", f"expected first or random, got {self.enrol!r}")
        if not 0 < self.enrol_probability <= 1:
            err("enrol_probability", f"expected a number in (0, 1], got {self.enrol_probability}")
        if self.scale <= 0:
            err("scale", f"expected a positive number, got {self.scale}")


@dataclass
class RsuConfig:
    placement: str = "regular"
    """How RSUs are placed: `regular` (every `spacing_m` along the busiest roads), `junctions`,
    `kmeans` (on vehicle density from the warm-up), or `file`."""
    count: int = 6
    """How many RSUs (upper bound for `regular`)."""
    spacing_m: float = 500.0
    """Minimum distance between RSUs."""
    file: str = ""
    """With placement `file`: CSV (lon,lat or x,y columns) or a SUMO additional file of POIs."""
    coverage_radius_m: float = 0.0
    """Radius drawn and used for coverage statistics; 0 = derived from the link budget."""

    def validate(self, err):
        if self.placement not in ("regular", "junctions", "kmeans", "file"):
            err("placement", f"expected regular, junctions, kmeans or file, got {self.placement!r}")
        if self.placement == "file" and not self.file:
            err("file", "expected a CSV or POI file when placement is 'file'")
        if self.count < 1:
            err("count", f"expected an integer >= 1, got {self.count}")
        if self.spacing_m <= 0:
            err("spacing_m", f"expected a positive distance in metres, got {self.spacing_m}")
