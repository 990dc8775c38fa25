"""Where the sumo-gui view looks: the `--view` choice, and the box that follows the busiest area.

Pure numpy; `iovsim.viz.gui.GuiOverlay` applies the boxes with `gui.setBoundary`.

`--view` forms:
  `auto` (default) or `auto:WIDTH_M`  follow the busiest federated vehicles, WIDTH_M wide (default 700 m)
  `net`                               the whole net (marks sized to it)
  `X,Y,WIDTH_M`                       a fixed box centred on (X, Y) in net coordinates, WIDTH_M wide
  `rsu:INDEX`                         RSU INDEX's coverage disc
  `vehicle:ID`                        follow vehicle ID (sumo-gui tracks it) once it is on the map
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_WIDTH_M = 700.0
VIEW_FORMS = "auto, auto:WIDTH_M, net, X,Y,WIDTH_M, rsu:INDEX or vehicle:ID"
# A participant (downloading, training, uploading) counts this many times more than an idle vehicle:
# the view should show the round, not just the traffic.
PARTICIPANT_WEIGHT = 4.0

Box = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in net coordinates (m)


@dataclass(frozen=True)
class ViewSpec:
    kind: str                  # auto | net | box | rsu | vehicle
    width_m: float = DEFAULT_WIDTH_M
    x_m: float = 0.0
    y_m: float = 0.0
    target: str = ""           # RSU index or vehicle id


def parse_view(text: str | None) -> ViewSpec:
    """`--view` text → ViewSpec; ValueError (one line, naming the option) when it is none of the forms."""
    t = (text or "auto").strip()
    bad = ValueError(f"--view {text}: expected {VIEW_FORMS}")
    if t == "auto" or t == "net":
        return ViewSpec(t)
    kind, _, arg = t.partition(":")
    if kind == "auto":
        return ViewSpec("auto", width_m=_positive(arg, bad))
    if kind == "rsu":
        if not arg.isdigit():
            raise bad
        return ViewSpec("rsu", target=arg)
    if kind == "vehicle" and arg:
        return ViewSpec("vehicle", target=arg)
    parts = t.split(",")
    if len(parts) != 3:
        raise bad
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise bad from None
    return ViewSpec("box", width_m=_positive(parts[2], bad), x_m=x, y_m=y)


def _positive(s: str, bad: ValueError) -> float:
    try:
        v = float(s)
    except ValueError:
        raise bad from None
    if not v > 0:
        raise bad
    return v


def centred_box(x_m: float, y_m: float, width_m: float, aspect: float) -> Box:
    """A box `width_m` wide and `width_m / aspect` high around (x_m, y_m)."""
    h = width_m / aspect
    return (x_m - width_m / 2, y_m - h / 2, x_m + width_m / 2, y_m + h / 2)


def busiest_box(xy_m: np.ndarray, weight: np.ndarray, width_m: float, aspect: float) -> Box | None:
    """The box of `width_m` × `width_m / aspect` around the busiest vehicles: find the vehicle with the
    most weight within half a box of it (x and y), and centre the box on the middle of those vehicles'
    bounding box, which is at most one box wide, so every one of them is inside. None without vehicles."""
    xy = np.asarray(xy_m, dtype=float).reshape(-1, 2)
    w = np.asarray(weight, dtype=float).reshape(-1)
    if len(xy) == 0 or w.sum() <= 0:
        return None
    half = np.array([width_m / 2, width_m / aspect / 2])
    inside = (np.abs(xy[:, None, :] - xy[None, :, :]) <= half).all(axis=2)  # N×N, vehicle j near vehicle i
    best = int(np.argmax(inside @ w))
    near = xy[inside[best]]
    centre = (near.min(axis=0) + near.max(axis=0)) / 2
    return centred_box(float(centre[0]), float(centre[1]), width_m, aspect)


class Follower:
    """The auto view: a new box every `every_s` of simulated time, only when the busiest area moved by
    more than `min_shift` of the width (so the picture does not jitter); at once when a round starts
    (vehicles enter a round), so the view shows its participants."""

    def __init__(self, width_m: float, aspect: float, every_s: float = 10.0, min_shift: float = 0.2):
        self.width_m, self.aspect = float(width_m), float(aspect)
        self.every_s, self.min_shift = float(every_s), float(min_shift)
        self.box: Box | None = None
        self._next_s = -np.inf
        self._in_round = False

    def update(self, now_s: float, xy_m: np.ndarray, in_round: np.ndarray) -> Box | None:
        """The box to show now if it changed, else None."""
        in_round = np.asarray(in_round, dtype=bool)
        round_started = bool(in_round.any()) and not self._in_round
        self._in_round = bool(in_round.any())
        if now_s < self._next_s and not round_started:
            return None
        w = 1.0 + (PARTICIPANT_WEIGHT - 1.0) * in_round.astype(float)
        box = busiest_box(xy_m, w, self.width_m, self.aspect)
        if box is None:
            return None
        self._next_s = now_s + self.every_s
        if self.box is not None:
            shift = np.hypot(box[0] - self.box[0], box[1] - self.box[1])
            if shift <= self.min_shift * self.width_m:
                return None
        self.box = box
        return box
