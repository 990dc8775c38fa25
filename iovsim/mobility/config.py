"""Configuration of the traffic side: which SUMO scenario, how it is run, and where RSUs stand
(their radio parameters are in the channel section)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Backend = Literal["libsumo", "traci"]
Enrol = Literal["first", "random"]
RsuPlacement = Literal["regular", "junctions", "kmeans", "file"]
"""The placement methods of `mobility.placement.place_rsus` (its METHODS are read from here)."""


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
    backend: Backend = "libsumo"
    """`libsumo` (in-process, fast) or `traci` (a sumo process; needed for sumo-gui)."""
    step_length_s: float = field(default=1.0, metadata={"gt": 0, "le": 3600})
    """SUMO step length."""
    begin_s: float = field(default=0.0, metadata={"ge": 0, "le": 1e8})
    """SUMO begin time."""
    warmup_s: float = field(default=120.0, metadata={"ge": 0, "le": 1e8})
    """Traffic runs this long before round 1, so the map fills up."""
    end_s: float = field(default=3600.0, metadata={"gt": 0, "le": 1e8})
    """SUMO end time; the experiment stops when it is reached."""
    fl_vehicles: int = field(default=40, metadata={"ge": 0, "le": 10**6})
    """How many federated vehicles are on the map at once (0 = every vehicle); a vehicle inserted
    while fewer are present joins, so the fleet is replenished as vehicles leave. The others are
    background traffic."""
    enrol: Enrol = "first"
    """Which inserted vehicles join: `first` (every one while there is room) or `random` (each with `enrol_probability`)."""
    enrol_probability: float = field(default=0.2, metadata={"gt": 0, "le": 1})
    """With `enrol: random`, the chance that an inserted vehicle takes part."""
    scale: float = field(default=1.0, metadata={"gt": 0, "le": 1000})
    """SUMO's --scale: multiplies the demand."""
    sumo_args: list[str] = field(default_factory=list)
    """Extra command-line options passed to SUMO as they are."""

    def file_fields(self):
        yield "net_file", self.net_file
        for i, f in enumerate(self.route_files):
            yield f"route_files[{i}]", f
        for i, f in enumerate(self.additional_files):
            yield f"additional_files[{i}]", f
        if not self.net_file and self.scenario:
            yield "scenario", self.scenario

    def validate(self, err):
        if self.end_s <= self.begin_s + self.warmup_s:
            err("end_s", f"expected more than begin_s + warmup_s ({self.begin_s + self.warmup_s:g} s), got {self.end_s:g}")


@dataclass
class RsuConfig:
    placement: RsuPlacement = "regular"
    """How RSUs are placed: `regular` (every `spacing_m` along the busiest roads), `junctions`,
    `kmeans` (on vehicle density from the warm-up), or `file`."""
    count: int = field(default=6, metadata={"ge": 1, "le": 10**5})
    """How many RSUs (upper bound for `regular`)."""
    spacing_m: float = field(default=500.0, metadata={"gt": 0, "le": 1e6})
    """Minimum distance between RSUs."""
    file: str = ""
    """With placement `file`: CSV (lon,lat or x,y columns) or a SUMO additional file of POIs."""
    coverage_radius_m: float = field(default=0.0, metadata={"ge": 0, "le": 1e6})
    """Radius drawn and used for coverage statistics; 0 = derived from the link budget."""
    edge_flops_per_s: float | list[float] = field(default=2e13, metadata={"gt": 0, "le": 1e18, "unit": "FLOP/s"})
    """Sustained training throughput of each RSU's edge server, which runs the encoder in split
    training; one number, or a list with one per RSU (in the RSUs' order, as in a run's rsus.csv).
    Shared equally by the split jobs on it at the same moment (processor sharing). Default:
    an NVIDIA T4-class edge GPU (65 TFLOP/s FP16 tensor-core peak) at ~30 % utilisation, typical of
    transformer training (our assumption, not a figure from arXiv 2407.02924)."""
    edge_power_w: float = field(default=70.0, metadata={"gt": 0, "le": 1e6})
    """Power the edge server draws at full load (T4 board power: 70 W); a split job's edge energy =
    this x its edge compute seconds (its FLOPs / `edge_flops_per_s`). Logged apart from the vehicles'."""

    def validate(self, err):
        if self.placement == "file" and not self.file:
            err("file", "expected a CSV or POI file when placement is 'file'")
