"""Progress for long work: rich bars with ETA, nothing (`quiet`), or one JSON object per line (`json_mode`).

The engine only talks to this facade, so the CLI's `--quiet` / `--json` never reach engine code.
"""
from __future__ import annotations

import json
import math
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        o = float(o)
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, float) and not math.isfinite(o):
        return None  # JSON has no NaN/inf; a reader gets null
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    return str(o)


class TaskHandle:
    """What `Progress.task` yields: `advance(k)` moves the bar (k may be fractional)."""

    def __init__(self, progress: "Progress", name: str, total: float | None, completed: float = 0.0):
        self._p = progress
        self.name = name
        self.total = total
        self.completed = float(completed)
        self._rich_id = None

    def advance(self, k: float = 1) -> None:
        self.completed += float(k)
        if self._rich_id is not None:
            self._p._bars.update(self._rich_id, advance=float(k))

    def update(self, completed: float | None = None, total: float | None = None) -> None:
        if completed is not None:
            self.completed = float(completed)
        if total is not None:
            self.total = total
        if self._rich_id is not None:
            self._p._bars.update(self._rich_id, completed=self.completed, total=self.total)


class Progress:
    """`Progress(quiet=False, json_mode=False)`.

    - `with p.task(name, total=N) as t: t.advance(k)` – a bar with ETA (nested tasks share one live display)
    - `p.round_table(rows)` – per-round table (round, SUMO time, per-task accuracy, participants, …)
    - `p.event(kind, **data)` – a machine-readable event (a JSON line in json mode; ignored otherwise)
    - `p.message(text)` – a line of text for a human (a `{"event": "message"}` line in json mode)
    """

    def __init__(self, quiet: bool = False, json_mode: bool = False, console=None, stream=None):
        self.quiet = bool(quiet)
        self.json_mode = bool(json_mode)
        self._stream = stream  # None: sys.stdout looked up at write time (works with capsys/redirects)
        self._console = console
        self._bars = None
        self._depth = 0
        self._table_header_done = False

    # ------------------------------------------------------------------ output channels
    @property
    def console(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self._stream or sys.stdout)
        return self._console

    def _emit_json(self, obj: dict) -> None:
        out = self._stream or sys.stdout
        out.write(json.dumps(_jsonable(obj), allow_nan=False) + "\n")
        out.flush()

    # ------------------------------------------------------------------ API
    @contextmanager
    def task(self, name: str, total: float | None = None, completed: float = 0) -> Iterator[TaskHandle]:
        """A phase of work with a bar and ETA; json mode reports its start and end as events."""
        handle = TaskHandle(self, name, total, completed)
        t0 = time.time()
        if self.json_mode and not self.quiet:
            self._emit_json({"event": "task_start", "name": name, "total": total})
        elif not self.quiet:
            self._start_bars()
            handle._rich_id = self._bars.add_task(name, total=total, completed=completed)
        self._depth += 1
        try:
            yield handle
        finally:
            self._depth -= 1
            if handle._rich_id is not None:
                # Finished phases of a round disappear; the top level stays as a record.
                if self._depth > 0:
                    self._bars.remove_task(handle._rich_id)
                handle._rich_id = None
            if self._depth == 0:
                self._stop_bars()
            if self.json_mode and not self.quiet:
                self._emit_json({"event": "task_end", "name": name, "completed": handle.completed,
                                 "total": total, "wall_s": time.time() - t0})

    def event(self, kind: str, **data: Any) -> None:
        """A machine-readable event, e.g. `event("round", round=3, tasks={...})`; only json mode prints it."""
        if self.json_mode and not self.quiet:
            self._emit_json({"event": kind, **data})

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self.json_mode:
            self._emit_json({"event": "message", "text": str(text)})
        else:
            self.console.print(str(text), markup=False, highlight=False)

    def round_table(self, rows: list[dict]) -> None:
        """Print rows of the per-round table (keys: round, sumo_time_s, acc_<task>…, participants,
        lost_updates, round_latency_s, energy_j; unknown keys are shown too)."""
        if self.quiet or not rows:
            return
        if self.json_mode:
            for r in rows:
                self._emit_json({"event": "round_row", **r})
            return
        from rich.markup import escape
        from rich.table import Table

        from iovsim.viz.table_layout import table_layout

        keys = list(rows[0].keys())
        for r in rows[1:]:
            keys += [k for k in r if k not in keys]
        # Standard errors are printed with their accuracy ("0.812±0.012", or under it), not as columns.
        keys = [k for k in keys if not k.startswith("se_")]
        layout = table_layout(keys, self.console.width)
        show_header = not self._table_header_done or len(rows) > 1
        if show_header and layout.legend:
            self.console.print(layout.legend, markup=False, highlight=False)
        table = Table(show_header=show_header, box=None, pad_edge=False)
        for c in layout.columns:
            # Fixed widths: each round prints its own table, and the columns must line up across rounds;
            # a value longer than its column folds onto a second line rather than being cut.
            table.add_column(escape(c.title), justify="right", width=c.width, overflow="fold")
        for r in rows:
            table.add_row(*(escape(_fmt_cell(k, r.get(k, ""), r.get("se_" + k[4:]), layout.se_below))
                            for k in keys))
        self._table_header_done = True
        self.console.print(table)

    # ------------------------------------------------------------------ rich internals
    def _start_bars(self) -> None:
        if self._bars is not None:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._bars = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                  console=self.console, transient=False)
        self._bars.start()

    def _stop_bars(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None


def _fmt_cell(col: str, v, se=None, se_below: bool = False) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, (float, np.floating)):
        if col.startswith("acc"):
            if se is None or not np.isfinite(se):
                return f"{v:.3f}"
            sep = "\n" if se_below else ""  # a narrow terminal: the s.e. on a line of its own
            return f"{v:.3f}{sep}±{se:.3f}"
        if 1e4 <= abs(v) < 1e7:  # "12346", not "1.235e+04": shorter, and read at a glance
            return f"{v:.0f}"
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)
