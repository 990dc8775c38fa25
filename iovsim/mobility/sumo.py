"""A SUMO session: libsumo (in-process) or traci (a sumo / sumo-gui process), read through subscriptions.

Per step the session returns a `Snapshot` of the tracked (federated) vehicles as numpy arrays.
Vehicles are subscribed once, when they are enrolled; nothing calls per-vehicle getters per step.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iovsim.mobility.scenario import Scenario, sumo_binary
from iovsim.mobility.sumo_errors import SumoError, read_since, stderr_to, sumo_failure

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


def import_libsumo():
    """libsumo, without the line its import prints to stdout when the installed pyarrow's version differs
    from the Arrow it was built with (pyarrow >= 24 comes with `iovsim[online]`'s `datasets`). The
    wheel links its own copy of Arrow under a private name (libsumo.libs/libarrow-<hash>.so), so the
    two do not meet; the print would corrupt stdout, which `--json` and the tables use."""
    with contextlib.redirect_stdout(io.StringIO()):
        import libsumo
    return libsumo


class SumoSession:
    """Runs one SUMO simulation and tracks the federated vehicles.

    Once enrolment is opened (`open_enrolment()`, after warm-up) newly inserted vehicles join the
    federated fleet while fewer than `max_vehicles` are on the map (0 = no cap), so the fleet is
    replenished as vehicles leave. `enrol: random` admits each candidate with `probability` (seeded).
    Only vehicles whose id starts with `id_prefix` are candidates.
    """

    def __init__(self, scenario: Scenario, *, seed: int, step_length_s: float = 1.0, begin_s: float = 0.0,
                 end_s: float = 3600.0, backend: str = "libsumo", gui: bool = False, out_dir: Path | None = None,
                 extra_args: list[str] | None = None, max_vehicles: int = 0, enrol: str = "first",
                 probability: float = 1.0, scale: float = 1.0, id_prefix: str = ""):
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
        self.id_prefix = id_prefix
        self.api = None
        self.routes: dict[str, tuple[str, ...]] = {}
        self.enrolled: list[str] = []          # every vehicle ever enrolled, in order
        self._tracked: set[str] = set()
        self._enrol_open = False
        self._pending: list[str] = []
        self._rng = np.random.default_rng([seed, 6])
        self.time_s = begin_s
        self._process: subprocess.Popen | None = None   # the traci backend's SUMO
        self._capture = None               # SUMO's stderr (and a traci child's stdout) go here
        self._capture_path: Path | None = None
        self._capture_start = 0

    # ------------------------------------------------------------------ lifecycle
    def command(self) -> list[str]:
        # libsumo runs SUMO in this process and reads the first word as a program name only: a machine
        # with the libsumo wheel and no eclipse-sumo (no binary) runs it; traci starts the binary itself.
        program = sumo_binary("sumo-gui" if self.gui else "sumo") if self.backend == "traci" else "sumo"
        cmd = [program]
        cmd += self.scenario.command_args()
        cmd += ["--seed", str(self.seed), "--step-length", f"{self.step_length_s:g}",
                "--begin", f"{self.begin_s:g}", "--end", f"{self.end_s:g}",
                "--scale", f"{self.scale:g}", "--no-step-log", "true", "--no-warnings", "true",
                "--duration-log.disable", "true", "--verbose", "false"]
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--log", str(self.out_dir / "sumo_log.txt")]
        return cmd + self.extra_args

    @property
    def log_path(self) -> Path | None:
        """SUMO's own log (`--log`), None without an out_dir."""
        return self.out_dir / "sumo_log.txt" if self.out_dir is not None else None

    def start(self) -> "SumoSession":
        """Start SUMO; a refused input or option raises a one-line SumoError (SUMO's text in the log)."""
        cmd = self.command()
        self._open_capture()
        try:
            if self.backend == "libsumo":
                libsumo = import_libsumo()
                with stderr_to(self._capture):   # libsumo writes option errors straight to fd 2
                    libsumo.start(cmd)
                self.api = libsumo
            else:
                self.api = self._start_traci(cmd)
            self.time_s = float(self.api.simulation.getTime())
        except Exception as e:  # noqa: BLE001 - only SUMO's own errors are translated
            if not is_sumo_exception(e):
                raise
            err = self.failure(e, "start")
            self.close()
            raise err from None
        return self

    def _start_traci(self, cmd: list[str]):
        """A sumo / sumo-gui process whose stdout and stderr go to the capture file, and its connection."""
        import traci

        label = f"iovsim{next(_labels)}"
        port = traci.getFreeSocketPort()
        self._process = subprocess.Popen(cmd + ["--remote-port", str(port)], stdout=self._capture,
                                         stderr=self._capture, stdin=subprocess.DEVNULL)
        try:
            # Polled every 0.1 s (traci.start waits 1 s) for up to 2 min while SUMO loads; traci prints retries.
            with contextlib.redirect_stdout(io.StringIO()):
                traci.connect(port, numRetries=1200, proc=self._process, waitBetweenRetries=0.1, label=label)
        except Exception:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            raise
        return traci.getConnection(label)

    def _open_capture(self):
        if self._capture is not None:
            return
        if self.out_dir is not None:
            self._capture_path = self.out_dir / "sumo_stderr.txt"
            self._capture = open(self._capture_path, "ab")
        else:
            fd, name = tempfile.mkstemp(prefix="iovsim-sumo-", suffix=".txt")
            self._capture, self._capture_path = os.fdopen(fd, "ab"), Path(name)
        self._capture_start = self._capture.tell()

    def failure(self, exc: BaseException, where: str = "step") -> SumoError:
        """The one-line SumoError for a SUMO exception raised while starting or stepping."""
        proc, returncode = self._process, None
        if proc is not None:
            fatal = type(exc).__name__ == "FatalTraCIError" or isinstance(exc, (ConnectionError, EOFError))
            try:   # a lost connection: give the dying process a moment to report its exit status
                returncode = proc.wait(timeout=5) if fatal else proc.poll()
            except subprocess.TimeoutExpired:
                returncode = None
        if self._capture is not None:
            self._capture.flush()
        texts = [read_since(self._capture_path, self._capture_start)]
        if self.log_path is not None:
            texts.append(read_since(self.log_path, 0))
        inputs = [*self.scenario.route_files, *self.scenario.additional_files]
        hint = str(self.log_path) if self.log_path is not None else ""
        return sumo_failure(exc, texts=texts, inputs=inputs, where=where, time_s=self.time_s,
                            returncode=returncode, log_hint=hint)

    def close(self):
        if self.api is not None:
            try:
                self.api.close()
            except Exception:  # noqa: BLE001 - SUMO may already be gone (GUI closed by the user)
                pass
            self.api = None
        proc = self._process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if self._capture is not None:
            self._capture.close()
            self._capture = None
            if self.out_dir is None and self._capture_path is not None:
                self._capture_path.unlink(missing_ok=True)

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
        if not self._enrol_open or not vid.startswith(self.id_prefix):
            return False
        if self.max_vehicles and len(self._tracked) >= self.max_vehicles:
            return False
        if self.enrol == "random" and self._rng.random() >= self.probability:
            return False
        return True

    def step(self) -> Snapshot:
        """Advance SUMO one step and return the tracked vehicles; SUMO's failure raises a SumoError."""
        try:
            return self._step()
        except Exception as e:  # noqa: BLE001 - only SUMO's own errors are translated
            if not is_sumo_exception(e):
                raise
            raise self.failure(e, "step") from None

    def _step(self) -> Snapshot:
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


def is_sumo_exception(exc: BaseException) -> bool:
    """Raised by libsumo or traci (including a lost connection to a SUMO process)."""
    module = type(exc).__module__ or ""
    return module.startswith(("libsumo", "traci")) or isinstance(exc, (ConnectionError, EOFError))
