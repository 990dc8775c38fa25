"""SUMO's failures as one line for the user, and SUMO's own stderr kept off the terminal.

SUMO reports a bad input as a multi-line "Error: ..." block (in a libsumo exception, in its log,
or on its stderr); `sumo_failure` turns it into a `SumoError` naming the input file and, where SUMO
says it, the line. A message that names no file (an unknown edge, a vehicle id) is looked up in
the route and additional files, so the user still learns where to look.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from iovsim.mobility.scenario import ScenarioError

# Exception texts that carry no reason; the reason is then in SUMO's stderr or log.
_GENERIC = ("could not parse commandline options", "connection closed by sumo", "process error", "")
_MAX_SCAN_BYTES = 64 * 2**20    # files larger than this are not searched for an id


class SumoError(ScenarioError):
    """SUMO refused an input or stopped; one line, with the file, line and option where known."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, option: str = "",
                 time_s: float | None = None, died: bool = False):
        super().__init__(message)
        self.file, self.line, self.option, self.time_s, self.died = file, line, option, time_s, died


@dataclass
class SumoMessage:
    """One "Error: ..." block of SUMO, parsed."""

    text: str
    file: str = ""
    line: int | None = None
    column: int | None = None
    option: str = ""


def parse_error(block: str) -> SumoMessage:
    """The reason, file, line and option of a SUMO error block (its continuation lines start with a space)."""
    lines = [x.strip() for x in block.strip().splitlines() if x.strip()]
    lines = [x[len("Error:"):].strip() if x.startswith("Error:") else x for x in lines]
    msg = SumoMessage("")
    rest = []
    for x in lines:
        m_file = re.match(r"In file '(.+)'$", x)
        m_pos = re.match(r"At line/column (\d+)/(\d+)", x)
        if m_file:
            msg.file = m_file.group(1)
        elif m_pos:
            msg.line, msg.column = int(m_pos.group(1)), int(m_pos.group(2))
        else:
            m_opt = re.match(r"On processing option '(-+[^']+)':?\s*(.*)$", x)
            if m_opt:
                msg.option, x = m_opt.group(1), m_opt.group(2)
            if x:
                rest.append(x)
    msg.text = " ".join(rest).rstrip(":")
    return msg


def error_blocks(text: str) -> list[str]:
    """The "Error: ..." blocks of a SUMO log or stderr, in order."""
    blocks, cur = [], None
    for line in text.splitlines():
        if line.startswith("Error:"):
            cur = [line]
            blocks.append(cur)
        elif cur is not None and line.startswith(" ") and line.strip():
            cur.append(line)
        else:
            cur = None
    return ["\n".join(b) for b in blocks]


def find_id(message: str, files: list[Path]) -> tuple[str, int] | None:
    """The first (file, line) among `files` whose XML names an id or edge quoted in SUMO's message."""
    tokens = [t for t in re.findall(r"'([^'\s]+)'", message)]
    for tok in tokens:
        pat = re.compile(r'["\s]' + re.escape(tok) + r'["\s]')
        for f in files:
            try:
                if f.stat().st_size > _MAX_SCAN_BYTES:
                    continue
                with open(f, encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        if pat.search(line):
                            return str(f), n
            except OSError:
                continue
    return None


def _read_tail(path: Path | None, start: int = 0) -> str:
    if path is None or not Path(path).exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read().decode("utf-8", errors="replace")


def exit_description(returncode: int | None) -> str:
    if returncode is None:
        return "its connection was lost"
    if returncode < 0:
        try:
            return f"its process was killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"its process was killed by signal {-returncode}"
    return f"its process exited with status {returncode}"


def sumo_failure(exc: BaseException, *, texts: list[str], inputs: list[Path], where: str,
                 time_s: float | None, returncode: int | None = None, log_hint: str = "") -> SumoError:
    """The SumoError for `exc`: SUMO's reason from the exception or from its log/stderr `texts`.

    `where`: "start" or "step"; `returncode`: the traci process's exit status when it has ended.
    """
    reason = " ".join(str(exc).split())
    blocks = [b for t in texts for b in error_blocks(t)]
    if reason.lower().rstrip(".") in _GENERIC or not reason:
        parsed = parse_error(blocks[0]) if blocks else None
    else:
        parsed = parse_error(str(exc))
        if not parsed.file and blocks:   # the exception may carry less than the log's block
            richer = parse_error(blocks[0])
            parsed = richer if richer.file or richer.option else parsed
    at = f" at SUMO time {time_s:g} s" if where == "step" and time_s is not None else ""
    if parsed is None:
        died = returncode is not None or "connection closed" in reason.lower()
        what = exit_description(returncode) if died else reason or type(exc).__name__
        hint = f"; SUMO's log: {log_hint}" if log_hint else ""
        return SumoError(f"SUMO stopped{at}: {what}{hint}", time_s=time_s, died=died)
    text = parsed.text or reason
    if parsed.option:
        return SumoError(f"SUMO option {parsed.option}: {text}", option=parsed.option, time_s=time_s)
    file, line = parsed.file, parsed.line
    if not file:
        hit = find_id(text, inputs)
        if hit:
            file, line = hit
    if file:
        pos = f": line {line}" if line else ""
        return SumoError(f"{file}{pos}: SUMO{at}: {text}", file=file, line=line, time_s=time_s)
    names = ", ".join(str(p) for p in inputs) or "its inputs"
    return SumoError(f"SUMO{at} could not go on with {names}: {text}", time_s=time_s)


@contextlib.contextmanager
def stderr_to(fh):
    """Point file descriptor 2 at `fh` (libsumo and SUMO child processes write there, below Python)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:   # no fd 2 (a detached process): nothing reaches a terminal anyway
        yield
        return
    try:
        os.dup2(fh.fileno(), 2)
        yield
    finally:
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a closed capture stream must not hide SUMO's error
            pass
        os.dup2(saved, 2)
        os.close(saved)


def read_since(path: Path | None, offset: int) -> str:
    """What `path` gained after `offset` bytes (the part of a log this session wrote)."""
    return _read_tail(path, offset)
