"""sumo-gui overlays through a traci connection: RSUs and coverage, vehicles by serving RSU and FL phase,
handovers where and when they happen, the round status as text in the view, screenshots.

Everything goes through the public traci API of `conn` (a `traci.Connection` or the `traci` module), so
the same code serves `iovsim gui` and tests. Object ids all start with `iovsim_` so they never clash
with a scenario's own POIs/polygons.

Screenshots: sumo-gui writes the file `conn.gui.screenshot(...)` asks for at the *next* simulation step
(it renders after the step). The caller must step at least once after `GuiOverlay.screenshot` before it
reads the file or closes SUMO.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from iovsim.mobility.rsu import RSU_COLORS, rsu_color  # noqa: F401 - RSU_COLORS is part of the overlay's API
from iovsim.viz.gui_view import Box, Follower, ViewSpec, centred_box

log = logging.getLogger(__name__)

PHASES = ("idle", "download", "train", "upload", "split_up", "split_edge", "split_down", "done", "migrated", "early",
          "lost")
# A vehicle in one of these is in a round (full colour; the `auto` view follows it). Split training's
# sub-phases (engine.split_transfer): its device compute shows as "train".
IN_ROUND = ("download", "train", "upload", "split_up", "split_edge", "split_down")
NOT_CONNECTED = (35, 35, 35, 255)  # FL vehicle without a serving RSU: near black
BACKGROUND_VEHICLE = "205,205,205"  # traffic that is not in the FL fleet (settings file fallback colour)
# A disc under each vehicle that is in a round; its colour says the phase. Idle vehicles have none.
PHASE_MARKER = {
    "download": (0, 200, 255, 230),   # cyan
    "train": (255, 215, 0, 230),      # gold
    "upload": (255, 0, 200, 230),     # magenta
    "split_up": (160, 80, 255, 230),  # violet: split step, activations (or their gradient) going up
    "split_edge": (255, 90, 0, 230),  # vermilion: split step, the RSU's edge server computes the encoder
    "split_down": (0, 140, 140, 230),  # teal: split step, the pooled output (or a gradient) coming down
    "done": (255, 255, 255, 240),     # white: update delivered, waiting for the round to close
    "migrated": (0, 255, 140, 240),   # spring green: delivered through a handover (forwarded to the new RSU)
    "early": (40, 40, 255, 240),      # blue: delivered early, after the local steps that fit the dwell
    "lost": (20, 20, 20, 235),        # a black X (not a disc): update lost (handover, left the map, deadline)
}
# Black, not red: red is an RSU colour (RSU 3) and must not be read as a serving cell.
HANDOVER_COLOR = (20, 20, 20, 255)
STATUS_TEXT_COLOR = (0, 0, 0, 0)
# Coverage: a light wash of the RSU's colour (overlaps stay readable) under a clear outline.
COVERAGE_FILL_ALPHA = 28
COVERAGE_EDGE_ALPHA = 170
RSU_OUTLINE = (25, 25, 25, 255)
PHASE_KEY = "rings: cyan download  |  gold train  |  magenta upload  |  white done  |  X lost"  # invisible POI body; only its type text shows
SPLIT_KEY = "split training: violet up  |  vermilion edge server  |  teal down  |  gold on the vehicle"
SCHEME = "iovsim"

# Layers: coverage below the roads, markers above the roads but below the vehicles' default drawing
# order, RSU symbols and text on top.
LAYER_COVERAGE_FILL = -2
LAYER_COVERAGE_EDGE = -1
LAYER_MARKER = 5
LAYER_DOT = 6
LAYER_LOST = 40
LAYER_HANDOVER = 50
LAYER_RSU = 60
LAYER_TEXT = 100


def _pale(rgb, k: float = 0.55) -> tuple[int, int, int, int]:
    """Blend towards white: idle vehicles keep their RSU's hue but step back."""
    return tuple(int(round(c + (255 - c) * k)) for c in rgb) + (255,)


def _circle(x: float, y: float, r: float, n: int = 48) -> list[tuple[float, float]]:
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return [(float(x + r * np.cos(t)), float(y + r * np.sin(t))) for t in a]


def _scaled(shape, x: float, y: float, k: float) -> list[tuple[float, float]]:
    return [(float(x + k * (px - x)), float(y + k * (py - y))) for px, py in shape]


def _median_spacing_m(xy: np.ndarray) -> float:
    """Median distance from each RSU to its nearest neighbour (inf for fewer than two)."""
    if len(xy) < 2:
        return float("inf")
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def _cross(x: float, y: float, r: float) -> list[tuple[float, float]]:
    """An X (a plus rotated by 45°) of half-size r, as one closed polygon."""
    w = 0.28 * r
    plus = [(w, w), (r, w), (r, -w), (w, -w), (w, -r), (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r), (w, r)]
    c = s = math.sqrt(0.5)
    return [(float(x + c * px - s * py), float(y + s * px + c * py)) for px, py in plus]


def _boundary(b) -> tuple[float, float, float, float]:
    """[xmin, ymin, xmax, ymax] (sumolib) or ((xmin, ymin), (xmax, ymax)) (traci) → flat tuple."""
    a = np.asarray(b, dtype=float).ravel()
    if a.size != 4:
        raise ValueError(f"net boundary must have 4 numbers, got {b!r}")
    return float(a[0]), float(a[1]), float(a[2]), float(a[3])


class GuiOverlay:
    """Draws iovsim's state into a running sumo-gui through `conn`.

    `rsu_xy_m` (n×2, net coordinates), `radius_m` (scalar or one per RSU) and `net_boundary`
    ([xmin, ymin, xmax, ymax]) come from the engine. Colours: RSU i has colour `RSU_COLORS[i]`, the same
    as rsus.add.xml and the report's map.
    """

    def __init__(self, conn, rsu_xy_m: np.ndarray, radius_m: float | np.ndarray, net_boundary,
                 view_id: str | None = None, handover_fade_s: float = 6.0, marker_radius_m: float | None = None,
                 fit_view: bool = True, view: ViewSpec | None = None, aspect: float = 1280 / 900):
        self.conn = conn
        self.rsu_xy_m = np.asarray(rsu_xy_m, dtype=float).reshape(-1, 2)
        n = len(self.rsu_xy_m)
        self.radius_m = np.broadcast_to(np.asarray(radius_m, dtype=float), (n,)).copy()
        self.boundary = _boundary(net_boundary)
        self.view_id = view_id or getattr(getattr(conn, "gui", None), "DEFAULT_VIEW", "View #0")
        self.handover_fade_s = float(handover_fade_s)
        xmin, ymin, xmax, ymax = self.boundary
        self.extent_m = max(xmax - xmin, ymax - ymin, 100.0)
        self.view = view or ViewSpec("net")
        self.aspect = float(aspect)
        # Marks are sized to the width of the view (in metres), so they read the same at any zoom.
        self.view_width_m = self._view_width_m()
        self.marker_radius_m = float(marker_radius_m) if marker_radius_m else 0.013 * self.view_width_m
        # Dense RSUs (small cells every 200 m) get marks smaller than their spacing, and no labels
        # once more than about a dozen stand across the view: a carpet of names reads as nothing.
        spacing_m = _median_spacing_m(self.rsu_xy_m)
        self.rsu_size_m = min(0.02 * self.view_width_m, 0.15 * spacing_m)
        self.rsu_labels = spacing_m >= 0.08 * self.view_width_m
        self.coverage_line_m = max(1.5, min(0.0025 * self.view_width_m, 0.02 * spacing_m))
        self.fit_view = fit_view
        self.view_box: Box = self.boundary
        self._follower = Follower(self.view.width_m, self.aspect) if self.view.kind == "auto" else None
        self._tracking = False
        self._colors: dict[str, tuple] = {}        # vehicle -> colour last set (skip redundant calls)
        self._markers: dict[str, tuple] = {}       # vehicle -> (phase, colour) of its phase mark
        self._dots: dict[str, tuple] = {}          # vehicle -> (None, colour) of its RSU dot
        self._handovers: list[tuple[float, list[str], list[tuple[str, tuple]]]] = []  # (start_s, pois, (polygon, colour))
        self._ho_count = 0
        self._status_lines = 0
        self._drawn = False
        self._screenshot_pending = False

    # ------------------------------------------------------------------ view
    def _view_width_m(self) -> float:
        if self.view.kind == "net":
            return self.extent_m
        if self.view.kind == "rsu":
            return 2.4 * float(self.radius_m[self._rsu_index()])
        return self.view.width_m

    def _rsu_index(self) -> int:
        i = int(self.view.target)
        if not 0 <= i < len(self.rsu_xy_m):
            raise ValueError(f"--view rsu:{i}: expected an RSU index from 0 to {len(self.rsu_xy_m) - 1}")
        return i

    def setup_view(self, schema: str | None = SCHEME) -> None:
        """Scheme from write_gui_settings (if loaded) and the first view: the whole net (`net`, and `auto`
        and `vehicle` until their vehicles show), a fixed box, or an RSU's coverage."""
        if schema:
            try:
                self.conn.gui.setSchema(self.view_id, schema)
            except Exception as e:  # noqa: BLE001 - the scheme exists only if the settings file was loaded
                log.debug("scheme %s not available: %s", schema, e)
        kind = self.view.kind
        if kind == "box":
            self.set_view(centred_box(self.view.x_m, self.view.y_m, self.view.width_m, self.aspect))
        elif kind == "rsu":
            x, y = self.rsu_xy_m[self._rsu_index()]
            self.set_view(centred_box(float(x), float(y), self.view_width_m, self.aspect))
        else:
            xmin, ymin, xmax, ymax = self.boundary
            pad = 0.03 * self.extent_m
            # A band above the net for the status text (show_status), so it never covers roads or RSUs.
            self.set_view((xmin - pad, ymin - pad, xmax + pad, ymax + pad + 4 * 0.035 * self.extent_m))

    def set_view(self, box: Box) -> None:
        """Show `box` (xmin, ymin, xmax, ymax); the status text moves to its top left corner."""
        self.view_box = tuple(float(v) for v in box)
        self.conn.gui.setBoundary(self.view_id, *self.view_box)
        self._place_text()

    def _follow(self, vehicle_ids: Sequence[str], xy_m: np.ndarray, phase: Sequence[str]) -> None:
        """`auto`: move to the busiest area every few seconds; `vehicle:ID`: zoom on it, then track it."""
        if self._follower is not None:
            in_round = np.array([p in IN_ROUND for p in phase], dtype=bool)
            box = self._follower.update(self._now(), xy_m, in_round)
            if box is not None:
                self.set_view(box)
        elif self.view.kind == "vehicle" and not self._tracking and self.view.target in vehicle_ids:
            x, y = xy_m[list(vehicle_ids).index(self.view.target)]
            self.set_view(centred_box(float(x), float(y), self.view.width_m, self.aspect))
            self.track(self.view.target)
            self._tracking = True

    def _line_m(self) -> float:
        return 0.035 * (self.view_box[2] - self.view_box[0])

    # ------------------------------------------------------------------ RSUs
    def draw_rsus(self) -> None:
        """A POI per RSU (its id as type text) and a coverage disc per RSU (translucent, below the roads)."""
        poi, poly = self.conn.poi, self.conn.polygon
        for i, ((x, y), r) in enumerate(zip(self.rsu_xy_m, self.radius_m)):
            c = rsu_color(i)
            shape = _circle(x, y, r)
            poly.add(f"iovsim_cov_{i}", shape, c + (COVERAGE_FILL_ALPHA,), fill=True, polygonType=f"coverage RSU {i}",
                     layer=LAYER_COVERAGE_FILL)
            poly.add(f"iovsim_covedge_{i}", shape + [shape[0]], c + (COVERAGE_EDGE_ALPHA,), fill=False,
                     polygonType="", layer=LAYER_COVERAGE_EDGE, lineWidth=self.coverage_line_m)
            # A diamond with a dark rim, so an RSU never reads as one of the round vehicle dots.
            h = self.rsu_size_m
            diamond = [(x + h, y), (x, y + h), (x - h, y), (x, y - h)]
            poly.add(f"iovsim_rsurim_{i}", _scaled(diamond, x, y, 1.25), RSU_OUTLINE, fill=True, polygonType="",
                     layer=LAYER_RSU - 1)
            poly.add(f"iovsim_rsusym_{i}", diamond, c + (255,), fill=True, polygonType="", layer=LAYER_RSU)
            if self.rsu_labels:
                poi.add(f"iovsim_rsu_{i}", float(x), float(y) - 1.8 * h, (0, 0, 0, 0), poiType=f"RSU {i}",
                        layer=LAYER_TEXT, width=1, height=1)
        self._drawn = True
        if self.fit_view:
            self.setup_view()

    # ------------------------------------------------------------------ vehicles
    def vehicle_color(self, serving: int, phase: str) -> tuple[int, int, int, int]:
        """Serving RSU's colour; pale while not in a round; grey without a serving RSU."""
        if serving is None or serving < 0:
            return NOT_CONNECTED
        rgb = rsu_color(serving)
        if phase in IN_ROUND or phase == "lost":
            return rgb + (255,)
        return _pale(rgb)

    def dot_color(self, serving: int) -> tuple[int, int, int, int]:
        """The dot drawn on every FL vehicle: its serving RSU's colour, near black without one."""
        if serving is None or serving < 0:
            return NOT_CONNECTED
        return rsu_color(serving) + (255,)

    def color_vehicles(self, vehicle_ids: Sequence[str], serving: np.ndarray, phase: Sequence[str],
                       xy_m: np.ndarray | None = None) -> None:
        """Colour every listed (FL) vehicle by serving RSU (index, -1 = none) and its FL phase. Call once
        per step with the FL fleet; also retires handover marks whose time is over.

        Each FL vehicle gets a dot in its serving RSU's colour (visible with the whole net in view), its
        body is coloured the same (pale while idle/done); a vehicle in a round has a ring around the dot
        in the colour of its phase; a lost update is a red X. `xy_m` (n×2) saves a position query per
        vehicle."""
        self._screenshot_pending = False  # a step has happened since any screenshot request
        veh = self.conn.vehicle
        serving = np.asarray(serving).reshape(-1)
        present = set(vehicle_ids)
        pos = None if xy_m is None else np.asarray(xy_m, dtype=float).reshape(-1, 2)
        if pos is not None and len(pos) == len(vehicle_ids):
            self._follow(vehicle_ids, pos, phase)
        for k, vid in enumerate(vehicle_ids):
            ph = phase[k] if k < len(phase) else "idle"
            srv = int(serving[k]) if k < len(serving) else -1
            col = self.vehicle_color(srv, ph)
            if self._colors.get(vid) != col:
                try:
                    veh.setColor(vid, col)
                    self._colors[vid] = col
                except Exception as e:  # noqa: BLE001 - vehicle left between snapshot and call
                    log.debug("setColor %s: %s", vid, e)
                    continue
            try:
                x, y = (pos[k] if pos is not None else veh.getPosition(vid))
            except Exception:  # noqa: BLE001
                continue
            x, y = float(x), float(y)
            self._set_mark(self._dots, f"iovsim_dot_{vid}", vid, _circle(x, y, 0.55 * self.marker_radius_m, n=12),
                           self.dot_color(srv), LAYER_DOT)
            marker = PHASE_MARKER.get(ph)
            mid = f"iovsim_phase_{vid}"
            if marker is None:
                if vid in self._markers:
                    self._remove_polygon(mid)
                    del self._markers[vid]
                continue
            old = self._markers.get(vid)
            if old is not None and (old[0] == "lost") != (ph == "lost"):
                self._remove_polygon(mid)  # the X sits above the vehicle, rings below it: new layer
                del self._markers[vid]
            self._set_mark(self._markers, mid, vid, self._marker_shape(ph, x, y), marker,
                           LAYER_LOST if ph == "lost" else LAYER_MARKER, key=ph)
        for store, prefix in ((self._markers, "iovsim_phase_"), (self._dots, "iovsim_dot_")):
            for vid in [v for v in store if v not in present]:
                self._remove_polygon(prefix + vid)
                del store[vid]
        for vid in [v for v in self._colors if v not in present]:
            del self._colors[vid]
        if self._handovers:
            self.fade(self._now())

    def _set_mark(self, store: dict, pid: str, vid: str, shape, color, layer: float, key=None) -> None:
        """Add the polygon the first time, then move it (and recolour it only when its colour changes)."""
        old = store.get(vid)
        if old is None:
            self.conn.polygon.add(pid, shape, color, fill=True, polygonType="", layer=layer)
        else:
            self.conn.polygon.setShape(pid, shape)
            if old[1] != color:
                self.conn.polygon.setColor(pid, color)
        store[vid] = (key, color)

    def _marker_shape(self, phase: str, x: float, y: float) -> list[tuple[float, float]]:
        if phase == "lost":
            return _cross(x, y, 1.3 * self.marker_radius_m)
        return _circle(x, y, self.marker_radius_m, n=16)

    # ------------------------------------------------------------------ handovers
    def highlight_handover(self, vehicle_id: str, x_m: float, y_m: float, time_s: float) -> None:
        """A dark ring and a label at the handover location, fading out over `handover_fade_s` (it stays
        where the handover happened; the vehicle drives on with its new RSU's colour)."""
        self._ho_count += 1
        k = self._ho_count
        # Only the newest handover keeps its text label; older ones keep their fading ring.
        for j, (start, pois, polys) in enumerate(self._handovers):
            for p in pois:
                self._remove_poi(p)
            self._handovers[j] = (start, [], polys)
        ring, label = f"iovsim_ho_ring_{k}", f"iovsim_ho_label_{k}"
        r = 1.8 * self.marker_radius_m
        shape = _circle(x_m, y_m, r, n=32)
        self.conn.polygon.add(ring, shape + [shape[0]], HANDOVER_COLOR, fill=False, polygonType="handover",
                              layer=LAYER_HANDOVER, lineWidth=0.18 * self.marker_radius_m)
        self.conn.poi.add(label, float(x_m), float(y_m) + 1.6 * r, (0, 0, 0, 0),
                          poiType=f"handover {vehicle_id}", layer=LAYER_TEXT, width=1, height=1)
        log.info("handover of %s at t=%.1f s, (%.0f, %.0f)", vehicle_id, time_s, x_m, y_m)
        self._handovers.append((float(time_s), [label], [(ring, HANDOVER_COLOR)]))

    def fade(self, now_s: float) -> None:
        """Handover marks lose opacity linearly with their age and go once `handover_fade_s` is over."""
        keep = []
        for start, pois, polys in self._handovers:
            left = 1.0 - (now_s - start) / self.handover_fade_s if self.handover_fade_s > 0 else 0.0
            if left <= 0:
                for p in pois:
                    self._remove_poi(p)
                for p, _ in polys:
                    self._remove_polygon(p)
                continue
            for p, c in polys:
                try:
                    self.conn.polygon.setColor(p, c[:3] + (max(1, int(round(c[3] * left))),))
                except Exception as e:  # noqa: BLE001
                    log.debug("fade %s: %s", p, e)
            keep.append((start, pois, polys))
        self._handovers = keep

    def expire(self, now_s: float) -> None:
        """Remove every handover mark at once when `now_s` is infinite, else fade them (kept for callers)."""
        if math.isinf(now_s):
            for _, pois, polys in self._handovers:
                for p in pois:
                    self._remove_poi(p)
                for p, _ in polys:
                    self._remove_polygon(p)
            self._handovers = []
        else:
            self.fade(now_s)

    # ------------------------------------------------------------------ status text
    def show_status(self, round: int, participants: int, accuracy_by_task: dict,  # noqa: A002
                    statuses: dict | None = None) -> None:
        """Round, participants, the updates' fates (`statuses`: status -> count) and per-task accuracy as
        text lines at the top left of the net (POI type texts; shown because the settings file enables
        POI types)."""
        lines = [f"round {round}  |  {participants} participants"]
        if statuses:
            lost = sum(n for k, n in statuses.items() if k.startswith("lost"))
            lines.append(f"ok {statuses.get('ok', 0)}  |  migrated {statuses.get('migrated', 0)}  |  "
                         f"early {statuses.get('early', 0)}  |  lost {lost}")
        for task, acc in accuracy_by_task.items():
            a = float(acc) if acc is not None and acc != "" else math.nan
            lines.append(f"{task}: accuracy {a:.3f}" if math.isfinite(a) else f"{task}: accuracy -")
        self.show_text(lines + [PHASE_KEY, SPLIT_KEY])

    def show_text(self, lines: Iterable[str]) -> None:
        """Text lines at the top left of the view (they follow it when it moves)."""
        lines = list(lines)
        poi = self.conn.poi
        for j, text in enumerate(lines):
            pid = f"iovsim_status_{j}"
            if j < self._status_lines:
                poi.setType(pid, text)
            else:
                x, y = self._text_xy(j)
                poi.add(pid, x, y, STATUS_TEXT_COLOR, poiType=text, layer=LAYER_TEXT, width=1, height=1)
        for j in range(len(lines), self._status_lines):
            self._remove_poi(f"iovsim_status_{j}")
        self._status_lines = len(lines)

    def _text_xy(self, j: int) -> tuple[float, float]:
        xmin, _, xmax, ymax = self.view_box
        dy = self._line_m()
        # Left aligned: the text is centred on its POI, so push it right by about half a line's length.
        return xmin + 0.3 * (xmax - xmin), ymax - (j + 0.8) * dy

    def _place_text(self) -> None:
        for j in range(self._status_lines):
            try:
                self.conn.poi.setPosition(f"iovsim_status_{j}", *self._text_xy(j))
            except Exception as e:  # noqa: BLE001
                log.debug("status text %d: %s", j, e)

    # ------------------------------------------------------------------ screenshots
    def screenshot(self, path: str | Path, width: int = -1, height: int = -1) -> None:
        """Ask sumo-gui for a PNG of the view. SUMO writes it at the next simulation step: step once
        after this call before reading the file or closing the connection."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn.gui.screenshot(self.view_id, str(path), width, height)
        self._screenshot_pending = True

    def flush(self) -> bool:
        """Before closing SUMO: if a screenshot was asked for and no step has followed (no
        `color_vehicles` call since), step once so sumo-gui writes it. Returns whether it stepped."""
        if not self._screenshot_pending:
            return False
        self._screenshot_pending = False
        try:
            self.conn.simulationStep()
        except Exception as e:  # noqa: BLE001 - SUMO may already have ended
            log.debug("flush step: %s", e)
            return False
        return True

    def track(self, vehicle_id: str) -> None:
        """Let the view follow one vehicle (`""` stops tracking)."""
        self.conn.gui.track(vehicle_id, self.view_id)

    # ------------------------------------------------------------------ cleanup
    def clear(self) -> None:
        """Remove everything the overlay added (vehicle colours stay)."""
        for vid in list(self._markers):
            self._remove_polygon(f"iovsim_phase_{vid}")
        self._markers.clear()
        for vid in list(self._dots):
            self._remove_polygon(f"iovsim_dot_{vid}")
        self._dots.clear()
        self.expire(math.inf)
        for j in range(self._status_lines):
            self._remove_poi(f"iovsim_status_{j}")
        self._status_lines = 0
        if self._drawn:
            for i in range(len(self.rsu_xy_m)):
                self._remove_poi(f"iovsim_rsu_{i}")
                self._remove_polygon(f"iovsim_cov_{i}")
                self._remove_polygon(f"iovsim_covedge_{i}")
                self._remove_polygon(f"iovsim_rsurim_{i}")
                self._remove_polygon(f"iovsim_rsusym_{i}")
            self._drawn = False

    def _now(self) -> float:
        try:
            return float(self.conn.simulation.getTime())
        except Exception:  # noqa: BLE001
            return -math.inf

    def _remove_poi(self, pid: str) -> None:
        try:
            self.conn.poi.remove(pid)
        except Exception as e:  # noqa: BLE001
            log.debug("poi.remove %s: %s", pid, e)

    def _remove_polygon(self, pid: str) -> None:
        try:
            self.conn.polygon.remove(pid)
        except Exception as e:  # noqa: BLE001
            log.debug("polygon.remove %s: %s", pid, e)


# ---------------------------------------------------------------------- settings file
def write_gui_settings(path: str | Path, *, delay_ms: float = 0, vehicle_exaggeration: float = 6.0,
                       text_size: float = 60.0, boundary=None) -> Path:
    """A sumo-gui settings file (`--gui-settings-file`): the readable "iovsim" scheme (light background,
    dark roads, vehicles drawn larger at constant size, POI types shown as text), delay 0 and, when
    `boundary` is given, a viewport on the whole net. Attributes not written keep sumo-gui's defaults."""
    vp = ""
    if boundary is not None:
        xmin, ymin, xmax, ymax = _boundary(boundary)
        # sumo-gui's zoom 100 shows roughly the whole net on the default window; the overlay refines
        # the view with gui.setBoundary once the connection is up.
        vp = (f'    <viewport zoom="100" x="{(xmin + xmax) / 2:.2f}" y="{(ymin + ymax) / 2:.2f}" angle="0.00"/>\n')
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- sumo-gui view settings written by iovsim (iovsim.viz.gui.write_gui_settings) -->
<viewsettings>
    <scheme name="{SCHEME}">
        <opengl dither="0" fps="0" drawBoxLines="0" forceDrawPositionSelection="0" forceDrawRerouterSelection="0"/>
        <background backgroundColor="238,240,236" showGrid="0" gridXSize="100.00" gridYSize="100.00"/>
        <edges laneEdgeMode="0" scaleMode="0" laneShowBorders="0" showBikeMarkings="0" showLinkDecals="0" showLinkRules="0"
               showRails="1" hideConnectors="1" widthExaggeration="1.50" minSize="0.00" showDirection="0" showSublanes="0"
               edgeName_show="0" streetName_show="0">
            <colorScheme name="uniform">
                <entry color="105,105,105" name="road"/>
                <entry color="170,170,170" name="sidewalk"/>
                <entry color="200,180,150" name="bike lane"/>
                <entry color="0,0,0,0" name="green verge"/>
                <entry color="150,200,200" name="waterway"/>
                <entry color="140,140,140" name="no passenger"/>
                <entry color="red" name="closed"/>
                <entry color="green" name="connector"/>
            </colorScheme>
        </edges>
        <vehicles vehicleMode="0" vehicleQuality="1" vehicle_minSize="1.00" vehicle_exaggeration="{vehicle_exaggeration:.2f}"
                  vehicle_constantSize="0" showBlinker="0" drawMinGap="0" vehicleName_show="0">
            <colorScheme name="given vehicle/type/route color">
                <entry color="{BACKGROUND_VEHICLE}"/>
            </colorScheme>
        </vehicles>
        <junctions junctionMode="0" junctionName_show="0" drawLinkTLIndex_show="0" drawLinkJunctionIndex_show="0"
                   showLane2Lane="0" drawShape="1">
            <colorScheme name="uniform">
                <entry color="105,105,105"/>
                <entry color="150,200,200" name="waterway"/>
            </colorScheme>
        </junctions>
        <pois poi_minSize="0.00" poi_exaggeration="1.00" poi_constantSize="0" poiName_show="0"
              poiType_show="1" poiType_size="{text_size:.2f}" poiType_color="20,20,20" poiType_bgColor="255,255,255,200"
              poiType_constantSize="1"/>
        <polys poly_minSize="0.00" poly_exaggeration="1.00" poly_constantSize="0" polyName_show="0" polyType_show="0"/>
        <legend showSizeLegend="1" showColorLegend="0" showVehicleColorLegend="0"/>
    </scheme>
{vp}    <delay value="{float(delay_ms):.2f}"/>
</viewsettings>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml)
    return path


# ---------------------------------------------------------------------- animation
def frames_to_gif(pngs: Sequence[str | Path], out: str | Path, duration_ms: int = 800, max_width: int = 960) -> Path:
    """An animated GIF (looping) from screenshots, all scaled to the first frame's size (at most max_width)."""
    from PIL import Image

    pngs = [Path(p) for p in pngs]
    if not pngs:
        raise ValueError("frames_to_gif: no frames")
    frames = []
    size = None
    for p in pngs:
        im = Image.open(p).convert("RGB")
        if size is None:
            w, h = im.size
            if w > max_width:
                h, w = int(round(h * max_width / w)), max_width
            size = (w, h)
        if im.size != size:
            im = im.resize(size, Image.LANCZOS)
        frames.append(im.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(duration_ms), loop=0, optimize=False)
    return out
