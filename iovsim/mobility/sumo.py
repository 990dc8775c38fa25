"""A SUMO session: libsumo (in-process) or traci (a sumo / sumo-gui process), read through subscriptions.

Per step the session returns a `Snapshot` of the tracked (federated) vehicles as numpy arrays.
Vehicles are subscribed once, when they are enrolled; nothing calls per-vehicle getters per step.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iovsim.mobility.scenario import Scenario, sumo_binary

# traci constant values (identical in libsumo); kept here so the module imports without either.
VAR_POSITION = 0x42
VAR_SPEED = 0x40
VAR_ANGLE = 0x43
VAR_ROAD_ID = 0x50
VAR_LANEPOSITION = 0x56
VAR_ROUTE_INDEX = 0x69
SUBSCRIBED = (VAR_POSITION, VAR_SPEED, VAR_ANGLE, VAR_ROAD_ID, VAR_LANEPOSITION, VAR_ROUTE_INDEX)

_labels = itertools.count()


@dataclass
class Snapshot:
    """Tracked vehicles at one SUMO time, as arrays aligned with `vehicle_ids`."""

    time_s: float
    vehicle_ids: list[str]
    xy_m: np.ndarray
    speed_mps: np.ndarray
    angle_deg: np.ndarray
    edge: list[str]
    lane_pos_m: np.ndarray
    route_index: np.ndarray
    departed: list[str] = field(default_factory=list)   # enrolled in this step
    arrived: list[str] = field(default_factory=list)    # tracked vehicles that left in this step


class SumoSession:
    """Runs one SUMO simulation and tracks the federated vehicles.

    Once enrolment is opened (`open_enrolment()`, after warm-up) newly inserted vehicles join the
    federated fleet while fewer than `max_vehicles` are on the map (0 = no cap), so the fleet is
    replenished as vehicles leave. `enrol: random` admits each candidate with `probability` (seeded).
    """

    def __init__(self, scenario: Scenario, *, seed: int, step_length_s: float = 1.0, begin_s: float = 0.0,
                 end_s: float = 3600.0, backend: str = "libsumo", gui: bool = False, out_dir: Path | None = None,
                 extra_args: list[str] | None = None, max_vehicles: int = 0, enrol: str = "first",
                 probability: float = 1.0, scale: float = 1.0):
        self.scenario = scenario
        self.seed = seed
        self.step_length_s = step_length_s
        self.begin_s = begin_s
        self.end_s = end_s
        self.backend = "traci" if gui else backend
        self.gui = gui
        self.out_dir = Path(out_dir) if out_dir else None
        self.extra_args = list(extra_args or [])
        self.max_vehicles = max_vehicles
        self.enrol = enrol
        self.probability = probability
        self.scale = scale
        self.api = None
        self.routes: dict[str, tuple[str, ...]] = {}
        self.enrolled: list[str] = []          # every vehicle ever enrolled, in order
        self._tracked: set[str] = set()
        self._enrol_open = False
        self._pending: list[str] = []
        self._rng = np.random.default_rng([seed, 6])
        self.time_s = begin_s

    # ------------------------------------------------------------------ lifecycle
    def command(self) -> list[str]:
        cmd = [sumo_binary("sumo-gui" if self.gui else "sumo")]
        cmd += self.scenario.command_args()
        cmd += ["--seed", str(self.seed), "--step-length", f"{self.step_length_s:g}",
                "--begin", f"{self.begin_s:g}", "--end", f"{self.end_s:g}",
                "--scale", f"{self.scale:g}", "--no-step-log", "true", "--no-warnings", "true",
                "--duration-log.disable", "true", "--verbose", "false"]
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--log", str(self.out_dir / "sumo_log.txt")]
        return cmd + self.extra_args

    def start(self) -> "SumoSession":
        cmd = self.command()
        if self.backend == "libsumo":
            import libsumo

            libsumo.start(cmd)
            self.api = libsumo
        else:
            import traci

            label = f"iovsim{next(_labels)}"
            traci.start(cmd, label=label)
            self.api = traci.getConnection(label)
        self.time_s = float(self.api.simulation.getTime())
        return self

    def close(self):
        if self.api is not None:
            try:
                self.api.close()
            except Exception:  # noqa: BLE001 - SUMO may already be gone (GUI closed by the user)
                pass
            self.api = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ stepping
    def open_enrolment(self):
        """Start enrolling: vehicles already on the map join first (in insertion order), then new ones."""
        self._enrol_open = True
        for vid in self.api.vehicle.getIDList():
            if self._maybe_enrol(vid):
                self._subscribe(vid)
                self._pending.append(vid)

    def _subscribe(self, vid: str):
        self.api.vehicle.subscribe(vid, SUBSCRIBED)
        self.routes[vid] = tuple(self.api.vehicle.getRoute(vid))
        self.enrolled.append(vid)
        self._tracked.add(vid)

    def _maybe_enrol(self, vid: str) -> bool:
        if not self._enrol_open:
            return False
        if self.max_vehicles and len(self._tracked) >= self.max_vehicles:
            return False
        if self.enrol == "random" and self._rng.random() >= self.probability:
            return False
        return True

    def step(self) -> Snapshot:
        """Advance SUMO one step and return the tracked vehicles."""
        api = self.api
        api.simulationStep()
        self.time_s = float(api.simulation.getTime())
        departed, self._pending = self._pending, []
        for vid in api.simulation.getDepartedIDList():
            if self._maybe_enrol(vid):
                self._subscribe(vid)
                departed.append(vid)
        arrived = [v for v in api.simulation.getArrivedIDList() if v in self._tracked]
        for vid in arrived:
            self._tracked.discard(vid)
        return self._snapshot(departed, arrived)

    def _snapshot(self, departed, arrived) -> Snapshot:
        results = self.api.vehicle.getAllSubscriptionResults()
        ids = [v for v in self.enrolled if v in self._tracked and v in results]
        n = len(ids)
        xy = np.empty((n, 2))
        speed = np.empty(n)
        angle = np.empty(n)
        lane_pos = np.empty(n)
        route_index = np.empty(n, dtype=int)
        edge = []
        for i, vid in enumerate(ids):
            r = results[vid]
            xy[i] = r[VAR_POSITION]
            speed[i] = r[VAR_SPEED]
            angle[i] = r[VAR_ANGLE]
            lane_pos[i] = r[VAR_LANEPOSITION]
            route_index[i] = r[VAR_ROUTE_INDEX]
            edge.append(r[VAR_ROAD_ID])
        return Snapshot(self.time_s, ids, xy, speed, angle, edge, lane_pos, route_index, departed, arrived)

    def run_until(self, time_s: float, on_step=None) -> Snapshot | None:
        """Step until SUMO time reaches `time_s`; `on_step(snapshot)` after each step."""
        snap = None
        while self.time_s + 1e-9 < time_s and not self.finished():
            snap = self.step()
            if on_step is not None:
                on_step(snap)
        return snap

    def finished(self) -> bool:
        return self.time_s + 1e-9 >= self.end_s
