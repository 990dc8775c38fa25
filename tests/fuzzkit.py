"""A small harness for bad-input fuzzing: generated cases run through `iovsim.cli.main` in-process.

A `Case` is a set of files written into a fresh folder, a command line (with `{dir}` standing for
that folder and `{run}` for an existing run folder), the exit status it must end with and the words
its one stderr line must contain (the file and the field). `run_case` runs it, hashes the run folder
before and after, and sorts the outcome into one class; `report` prints the counts by class.
Reusable by any test that feeds the CLI bad files (configs, SUMO inputs, traces, strategies).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import os
import time
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

# Outcome classes: the first two keep the promise, the others break it.
OK_ERROR, OK_VALID = "ok: one-line error", "ok: valid, exit 0"
TRACEBACK, VAGUE, MULTI_LINE, WRONG_EXIT, TOUCHED = ("traceback", "vague: file or field not named",
                                                     "more than one stderr line", "wrong exit status",
                                                     "run folder changed")


@dataclass
class Case:
    name: str                                   # e.g. "fl.batch_size=nan"
    kind: str                                   # a class of cases, for the report
    files: dict[str, str | bytes]               # written into the case folder before the run
    argv: list[str]                             # `{dir}`: the case folder, `{run}`: the existing run folder
    expect_exit: int = 2
    words: list[str] = field(default_factory=list)   # must appear in the stderr line (file, field)
    why: str = ""                               # for a case expected to pass: why the value is valid
    mutate_run: Callable[[Path], None] | None = None  # changes the run folder before hashing (resume cases)


@dataclass
class Outcome:
    case: Case
    cls: str
    exit: int | None
    stderr: str
    detail: str = ""
    wall_s: float = 0.0


# ----------------------------------------------------------------------------- config walking

def config_fields(cls, prefix: str = "") -> list[tuple[str, type, str, object]]:
    """(dotted path, owning dataclass, field name, type) of every user field under dataclass `cls`;
    lists of dataclasses are entered at index 0 (`fl.tasks[0].max_length`)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += config_fields(tp, f"{prefix}{f.name}.")
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            out += config_fields(typing.get_args(tp)[0], f"{prefix}{f.name}[0].")
        else:
            out.append((prefix + f.name, cls, f.name, tp))
    return out


def sections(cls, prefix: str = "") -> list[str]:
    """Dotted prefixes of every section (`""`, `"fl."`, `"fl.tasks[0]."`, ...)."""
    out = [prefix]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += sections(tp, f"{prefix}{f.name}.")
        elif typing.get_origin(tp) is list and tp is not str and typing.get_args(tp) \
                and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            out += sections(typing.get_args(tp)[0], f"{prefix}{f.name}[0].")
    return out


def set_path(data: dict, dotted: str, value) -> dict:
    """A deep copy of `data` with `dotted` (`fl.tasks[0].max_length`) set to `value`."""
    data = copy.deepcopy(data)
    node = data
    keys = dotted.split(".")
    for k in keys[:-1]:
        if k.endswith("[0]"):
            lst = node.setdefault(k[:-3], [{}])
            node = lst[0]
        else:
            node = node.setdefault(k, {})
    node[keys[-1]] = value
    return data


def in_range(value, spec: dict) -> bool:
    """Whether a number satisfies a field's declared bounds (NaN never does)."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return (("ge" not in spec or value >= spec["ge"]) and ("gt" not in spec or value > spec["gt"])
            and ("le" not in spec or value <= spec["le"]) and ("lt" not in spec or value < spec["lt"]))


def dump_yaml(data) -> str:
    return yaml.safe_dump(data, sort_keys=False)


# ----------------------------------------------------------------------------- running

def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path (empty folders listed too)."""
    out = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if not filenames and not dirnames:
            out[f"{rel}/"] = "dir"
        for name in filenames:
            p = Path(dirpath) / name
            out[str(rel / name)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(case: Case, work: Path, run_dir: Path | None, main, capfd) -> Outcome:
    """`classify` timed (the report shows where the time goes)."""
    t0 = time.perf_counter()
    out = classify(case, work, run_dir, main, capfd)
    out.wall_s = time.perf_counter() - t0
    return out


def classify(case: Case, work: Path, run_dir: Path | None, main, capfd) -> Outcome:
    """Write the case's files into `work`, run `main(argv)`, classify what happened.

    `capfd` (pytest) captures file-descriptor output too, so SUMO's or a library's own writes to
    stderr count as extra lines.
    """
    work.mkdir(parents=True, exist_ok=True)
    for name, content in case.files.items():
        p = work / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    if case.mutate_run is not None and run_dir is not None:
        case.mutate_run(run_dir)
    before = tree_hash(run_dir) if run_dir is not None else {}
    argv = [a.replace("{dir}", str(work)).replace("{run}", str(run_dir or "")) for a in case.argv]
    capfd.readouterr()
    code, escaped = None, ""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code if isinstance(e.code, int) else 2
    except BaseException as e:  # noqa: BLE001 - an escaped exception is exactly what this looks for
        escaped = f"{type(e).__name__}: {e}"
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    after = tree_hash(run_dir) if run_dir is not None else {}
    if escaped or "Traceback (most recent call last)" in err:
        return Outcome(case, TRACEBACK, code, err, escaped or lines[-1])
    if before != after:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return Outcome(case, TOUCHED, code, err, ", ".join(changed[:5]))
    if code != case.expect_exit:
        return Outcome(case, WRONG_EXIT, code, err, f"exit {code}, expected {case.expect_exit}")
    if case.expect_exit == 0:
        return Outcome(case, OK_VALID, code, err)
    if len(lines) != 1:
        return Outcome(case, MULTI_LINE, code, err, f"{len(lines)} lines")
    missing = [w for w in case.words if w not in lines[0]]
    if missing:
        return Outcome(case, VAGUE, code, err, f"missing {missing}")
    return Outcome(case, OK_ERROR, code, err)


def report(outcomes: list[Outcome], title: str = "fuzz") -> str:
    """Counts by kind and by outcome class, then every broken case with its stderr's first line."""
    by_cls = Counter(o.cls for o in outcomes)
    kinds = sorted({o.case.kind for o in outcomes})
    lines = [f"{title}: {len(outcomes)} cases"]
    lines += [f"  {cls:32s} {n}" for cls, n in by_cls.most_common()]
    lines.append("  by kind (cases / broken / seconds):")
    for k in kinds:
        mine = [o for o in outcomes if o.case.kind == k]
        bad = sum(o.cls not in (OK_ERROR, OK_VALID) for o in mine)
        lines.append(f"    {k:28s} {len(mine):4d} / {bad:3d} / {sum(o.wall_s for o in mine):6.1f}")
    broken = [o for o in outcomes if o.cls not in (OK_ERROR, OK_VALID)]
    if broken:
        lines.append("  broken cases:")
        for o in broken:
            first = (o.stderr.strip().splitlines() or [""])[-1][:160]
            lines.append(f"    [{o.cls}] {o.case.name}: {o.detail[:120]} | {first}")
    return "\n".join(lines)
