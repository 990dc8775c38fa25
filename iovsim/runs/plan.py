"""The run list of a comparison or sweep: one (group, seed) pair per run, its config overrides and folder.

A group is a strategy (`compare`) or a grid point (`sweep`). Folders are `<out>/<group>/seed-<s>/`,
so re-running the same command finds the same folders; `plan.json` in `<out>` records what they
hold, and a command whose config or overrides differ is refused rather than mixed in. Other groups or
seeds of the same config extend the plan (said in one line); the baseline is not part of it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PLAN_FILE = "plan.json"


class PlanError(ValueError):
    """A bad --seeds/--grid value or an output folder holding another comparison (one line)."""


@dataclass(frozen=True)
class RunSpec:
    group: str                                   # strategy name or grid-point label
    seed: int
    run_dir: Path
    overrides: dict = field(default_factory=dict, hash=False)   # dotted config field -> value


#: A larger count is far more likely a seed typed as a count (`--seeds 2509`) than a wish for that many runs.
MAX_SEED_COUNT = 1000


def parse_seeds(text: str | None, first_seed: int) -> list[int]:
    """`N` -> N seeds from the config's seed on; `1,2,3` (or `5,`) -> those seeds."""
    text = (text or "1").strip()
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if "," not in text and seeds:  # a count
        count, seeds = seeds[0], []
        if count > MAX_SEED_COUNT:
            raise PlanError(f"--seeds {text}: a count of {count} runs per group (at most {MAX_SEED_COUNT}); for the "
                            f"one seed {count} write --seeds {count},")
        if count >= 1:
            return [first_seed + i for i in range(count)]
    if not seeds:
        raise PlanError(f"--seeds {text}: expected a count >= 1 or a comma-separated list of integers")
    if len(set(seeds)) != len(seeds):
        raise PlanError(f"--seeds {text}: expected distinct integers")
    return seeds


def parse_grid(items: list[str]) -> dict[str, list]:
    """`["fl.lora_rank=4,8,16"]` -> `{"fl.lora_rank": [4, 8, 16]}` (values read as YAML scalars)."""
    grid = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        vals = [yaml.safe_load(v) for v in values.split(",") if v.strip()] if sep else []
        if not key.strip() or not vals:
            raise PlanError(f"--grid {item}: expected FIELD=V1,V2,..., e.g. --grid fl.lora_rank=4,8,16")
        grid[key.strip()] = vals
    if not grid:
        raise PlanError("--grid: expected at least one FIELD=V1,V2,...")
    return grid


def grid_groups(grid: dict[str, list]) -> list[tuple[str, dict]]:
    """Every combination of the grid's values: (label, overrides), e.g. ("fl.lora_rank=4", {...})."""
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        over = dict(zip(keys, combo))
        out.append((",".join(f"{k}={v}" for k, v in over.items()), over))
    return out


def folder_name(group: str) -> str:
    """A group label as one path component (user strategies are `path/file.py:Class`)."""
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "_", group).strip("_") or "_"


def make_specs(groups: list[tuple[str, dict]], seeds: list[int], out_dir: Path) -> list[RunSpec]:
    """Group-major run list; each run's folder is `<out>/<group>/seed-<s>`."""
    folders = [folder_name(g) for g, _ in groups]
    if len(set(folders)) != len(folders):
        raise PlanError(f"two groups share a folder name: {folders}")
    out_dir = Path(out_dir).resolve()
    return [RunSpec(g, s, out_dir / f / f"seed-{s}", dict(over))
            for (g, over), f in zip(groups, folders) for s in seeds]


def run_state(run_dir: Path) -> str:
    """`finished` (summary.json says so), `resume` (a checkpoint exists) or `fresh` (start over)."""
    try:
        if json.loads((run_dir / "summary.json").read_text()).get("finished") is True:
            return "finished"
    except (OSError, ValueError):
        pass
    if any((run_dir / "checkpoints").glob("round_*/state.json")):
        return "resume"
    return "fresh"


def identity(kind: str, config_path: Path, sets: dict) -> dict:
    """What every run of one comparison shares: the command, the config file's bytes, the --set fields."""
    config_path = Path(config_path).resolve()
    return {"kind": kind, "config": str(config_path),
            "config_sha256": hashlib.sha256(config_path.read_bytes()).hexdigest(), "set": sets}


def _sets_text(sets: dict) -> str:
    return " ".join(f"--set {k}={json.dumps(v)}" for k, v in sets.items()) or "no --set"


def _refusal(out_dir: Path, old: dict, new: dict) -> str:
    """Why `new` (this command's identity) cannot add to the plan of identity `old`, naming what differs."""
    kind = old.get("kind", "")
    if kind != new["kind"]:
        what = f"a {kind}, not a {new['kind']} (plan.json)"
    elif old.get("config") != new["config"]:
        what = f"a {kind} of {old.get('config')}, not of {new['config']} (plan.json)"
    elif old.get("config_sha256") != new["config_sha256"]:
        what = f"a {kind} of an earlier version of {new['config']} (the file changed since plan.json was written)"
    else:
        what = f"a {kind} with {_sets_text(old.get('set') or {})}, not {_sets_text(new['set'])} (plan.json)"
    return f"{out_dir}: holds {what}; choose another --out"


def record_plan(out_dir: Path, ident: dict, specs: list[RunSpec]) -> dict:
    """Write or extend `<out>/plan.json`; refuse a folder that holds runs of another config or overrides.

    Other groups or seeds of the same config and --set values extend the plan. Returns the runs the plan
    held before (folder -> run; empty for a new plan)."""
    out_dir = Path(out_dir)
    path = out_dir / PLAN_FILE
    runs = {str(s.run_dir.relative_to(out_dir.resolve())): {"group": s.group, "seed": s.seed, "overrides": s.overrides}
            for s in specs}
    old_runs = {}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("identity") != json.loads(json.dumps(ident)):
            raise PlanError(_refusal(out_dir, old.get("identity") or {}, json.loads(json.dumps(ident))))
        old_runs = old["runs"]
        for rel, run in runs.items():
            if rel in old_runs and old_runs[rel] != json.loads(json.dumps(run)):
                raise PlanError(f"{out_dir / rel}: was planned with other overrides (plan.json); choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"identity": ident, "runs": {**old_runs, **runs}}, indent=2) + "\n")
    return old_runs


def _plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") else noun + "s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun if n == 1 else _plural(noun)}"


def _shape(runs: list[tuple[str, int]], noun: str) -> str:
    """`4 strategies x 7 seeds`, with the run count where not every group has every seed."""
    groups, seeds = {g for g, _ in runs}, {s for _, s in runs}
    text = f"{_count(len(groups), noun)} x {_count(len(seeds), 'seed')}"
    return text if len(set(runs)) == len(groups) * len(seeds) else f"{text}, {_count(len(set(runs)), 'run')}"


def describe_addition(out_dir: Path, kind: str, noun: str, old_runs: dict, specs: list[RunSpec]) -> str:
    """One line for a command that adds runs to an existing plan ('' when the plan is new or nothing is
    added), e.g. `runs/x: adding seeds 9,10 (4 runs; plan.json now 2 strategies x 4 seeds); compare.csv/.md
    cover this command's 2 strategies x 2 seeds`."""
    out_dir = Path(out_dir)
    new = [s for s in specs if str(s.run_dir.relative_to(out_dir.resolve())) not in old_runs]
    if not old_runs or not new:
        return ""
    old_groups, old_seeds = {r["group"] for r in old_runs.values()}, {r["seed"] for r in old_runs.values()}
    new_groups = [g for g in dict.fromkeys(s.group for s in new) if g not in old_groups]
    new_seeds = [str(x) for x in dict.fromkeys(s.seed for s in new) if x not in old_seeds]
    parts = [f"{word if len(names) == 1 else _plural(word)} {','.join(names)}"
             for word, names in ((noun, new_groups), ("seed", new_seeds)) if names]
    what = " and ".join(parts) or f"new pairings of its {_plural(noun)} and seeds"
    everything = [(r["group"], r["seed"]) for r in old_runs.values()] + [(s.group, s.seed) for s in new]
    return (f"{out_dir}: adding {what} ({_count(len(new), 'run')}; plan.json now {_shape(everything, noun)}); "
            f"{kind}.csv/.md cover this command's {_shape([(s.group, s.seed) for s in specs], noun)}")
