"""Experiment schema and YAML loading.

Every section of an experiment is a dataclass that lives beside the code that uses it
(`mobility.config`, `channel.config`, `fl.config`, `strategies.config`); this module composes
them and turns a YAML file into typed, validated objects. Every error names the file and the
dotted field, and says what was expected.
"""
from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from iovsim.channel.config import ChannelConfig
from iovsim.costs.tiers import DeviceTier, default_device_tiers
from iovsim.fl.config import MINILM_NAMES, FlConfig, looks_like_path
from iovsim.mobility.config import MobilityConfig, RsuConfig
from iovsim.mobility.scenario import ScenarioError, resolve_file
from iovsim.schema import (check_choice, coerce_number, describe_choice, describe_number, describe_number_or_list,
                           number_forms, numeric_kind, number_spec)
from iovsim.strategies.config import StrategyConfig


class ConfigError(ValueError):
    """A config problem, already phrased for the user: `FILE: field X: expected Y, got Z`."""

    def __init__(self, source: str | Path | None, field_path: str, message: str):
        self.source = str(source) if source is not None else "<config>"
        self.field_path = field_path
        self.message = message
        where = f"field '{field_path}': " if field_path else ""
        super().__init__(f"{self.source}: {where}{message}")


DEFAULT_RUNS_DIR = "runs"  # under the working directory, where `make run` and `make clean` expect it


@dataclass
class OutputConfig:
    runs_dir: str = ""
    """Folder under which each run gets its own folder (relative: against the config file's folder);
    empty = `runs` in the working directory. `iovsim run --out DIR` replaces it (DIR from the working
    directory)."""
    run_name: str = ""
    """Name of the run folder; empty means `<experiment name>-<timestamp>`."""
    checkpoint_every: int = field(default=1, metadata={"ge": 1, "le": 10**6})
    """Write a checkpoint after every N rounds (and always after the last)."""
    report: bool = True
    """Write figures and the HTML report at the end of the run."""
    trackers: list[Literal["tensorboard", "mlflow"]] = field(default_factory=list)
    """Experiment trackers, any of `tensorboard`, `mlflow`: fed each round (metrics), once (the config as parameters) and at the end (the
    figures), into local stores in the run folder: `tensorboard/`, `mlflow.db` + `mlartifacts/`. Each
    needs its extra: `pip install 'iovsim[tensorboard]'`, `'iovsim[mlflow]'`."""

    def runs_path(self) -> Path:
        """The folder of the run folders (runs_dir is absolute once a config file is loaded)."""
        return Path(self.runs_dir or DEFAULT_RUNS_DIR).absolute()

    def validate(self, err):
        from iovsim.trackers import missing_extra

        if len(set(self.trackers)) != len(self.trackers):
            err("trackers", f"expected each tracker once, got {self.trackers}")
        for name in self.trackers:
            if missing_extra(name):
                err("trackers", f"'{name}' is not installed: pip install 'iovsim[{name}]'")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    """Experiment name (run folders are named after it)."""
    seed: int = field(default=0, metadata={"ge": 0, "le": 2**31 - 1})
    """One seed for SUMO, channel randomness, data partition and training (SUMO takes 0..2^31-1)."""
    mobility: MobilityConfig = field(default_factory=MobilityConfig)
    """Traffic: SUMO scenario, backend, warm-up, federated fleet."""
    rsu: RsuConfig = field(default_factory=RsuConfig)
    """Road-side units: placement (their radio parameters are in `channel`)."""
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    """Propagation, RSU radios, association/handover, bandwidth allocation."""
    devices: list[DeviceTier] = field(default_factory=default_device_tiers)
    """Device tiers of the federated vehicles (compute speed, power, memory)."""
    fl: FlConfig = field(default_factory=FlConfig)
    """Federated learning: model, LoRA, tasks, rounds."""
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    """The algorithm that plans each round and aggregates."""
    output: OutputConfig = field(default_factory=OutputConfig)
    """Run folder, checkpoints, report."""

    # Where the config came from; relative paths inside it resolve against this folder.
    source_path: str = field(default="", metadata={"internal": True})

    def validate(self, err):
        if not self.devices:
            err("devices", "expected at least one device tier")
        share = sum(t.share for t in self.devices)
        if abs(share - 1.0) > 1e-6:
            err("devices", f"expected tier shares summing to 1, got {share:g}")
        # A round cannot outlast the simulated traffic; the bound also keeps the per-step arrays of
        # the dwell prediction (2 x deadline / step) proportionate to the simulation.
        span_s = self.mobility.end_s - self.mobility.begin_s - self.mobility.warmup_s
        if self.fl.round_deadline_s > span_s:
            err("fl.round_deadline_s", f"expected a number of seconds <= mobility.end_s - begin_s - warmup_s "
                f"({span_s:g} s, the simulated time left for rounds), got {self.fl.round_deadline_s:g}")

    @property
    def base_dir(self) -> Path:
        return Path(self.source_path).resolve().parent if self.source_path else Path.cwd()

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the config: `sumo:` under SUMO_HOME, relative ones against the config file's folder."""
        return resolve_file(str(value), self.base_dir)

    def make_paths_absolute(self):
        """Every relative path of the config made absolute against the config file's folder (`sumo:`
        paths kept), so that code anywhere (Ray actors, compare's children) and the run folder's
        config.yaml (a resume from any working directory) read the same files. `fl.model` only when
        it names a folder there or looks like a path; otherwise it stays a hub id (`org/name`)."""
        mob, fl = self.mobility, self.fl
        mob.scenario, mob.net_file, self.rsu.file = map(self._absolute, (mob.scenario, mob.net_file, self.rsu.file))
        mob.route_files = [self._absolute(f) for f in mob.route_files]
        mob.additional_files = [self._absolute(f) for f in mob.additional_files]
        for task in fl.tasks:
            task.data_dir = self._absolute(task.data_dir)
            if task.dataset.startswith("csv:"):
                task.dataset = "csv:" + self._absolute(task.dataset[len("csv:"):])
        if fl.model and fl.model not in MINILM_NAMES and not fl.model.startswith("sumo:"):
            folder = self.resolve_path(fl.model)
            if folder.exists() or looks_like_path(fl.model):
                fl.model = str(folder)
        self.output.runs_dir = self._absolute(self.output.runs_dir)  # empty: `runs` in the working directory

    def _absolute(self, value: str) -> str:
        return value if not value or value.startswith("sumo:") else str(self.resolve_path(value))


# ----------------------------------------------------------------------------- loading

log = logging.getLogger(__name__)

#: Keys that moved to another section: old dotted key -> new dotted key. Old files keep loading.
MOVED_KEYS = {
    "rsu.height_m": "channel.rsu_height_m",
    "rsu.tx_power_dbm": "channel.rsu_tx_power_dbm",
    "rsu.bandwidth_hz": "channel.rsu_bandwidth_hz",
    "rsu.noise_figure_db": "channel.rsu_noise_figure_db",
}


def _move_deprecated_keys(data: dict, source) -> dict:
    """A copy of `data` with MOVED_KEYS under their new names; one warning line names the file and the keys."""
    moved = []
    for old, new in MOVED_KEYS.items():
        (old_sec, old_key), (new_sec, new_key) = old.split("."), new.split(".")
        sec, target = data.get(old_sec), data.get(new_sec) or {}
        if not isinstance(sec, dict) or old_key not in sec or not isinstance(target, dict):
            continue
        if new_key in target:
            raise ConfigError(source, old, f"set only {new} (the new name of this key), not both")
        data = {**data, old_sec: {k: v for k, v in sec.items() if k != old_key},
                new_sec: {**target, new_key: sec[old_key]}}
        moved.append(f"{old} -> {new}")
    if moved:
        log.warning("%s: deprecated keys, please rename: %s", source, ", ".join(moved))
    return data


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    if origin is typing.Literal:
        return describe_choice(tp)
    if tp is float:
        return "a number"
    return {int: "an integer", str: "a string", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp, path: str, source) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, path, source)
            except ConfigError:
                pass
        raise ConfigError(source, path, f"expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(source, path, f"expected null, got {value!r}")
    if origin is typing.Literal:
        try:
            return check_choice(value, tp)
        except ValueError as e:
            raise ConfigError(source, path, str(e)) from None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(source, path, f"expected a mapping, got {value!r}")
        return build_dataclass(tp, value, source, path)
    if origin in (list, tuple):
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, path, f"expected {_type_name(tp)}, got {value!r}")
        return [_coerce(v, item_tp, f"{path}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, path, f"expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        if args:
            return {str(k): _coerce(v, args[1], f"{path}.{k}", source) for k, v in value.items()}
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(source, path, f"expected true or false, got {value!r}")
    if tp in (int, float):
        return _number(value, tp, {}, path, source)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(source, path, f"expected a string, got {value!r}")
    return value


def build_dataclass(cls, data: dict, source=None, path: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys, wrong types and numbers out of
    their declared range, then validate."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(source, sub, f"unknown key; known keys here: {known}")
        kwargs[key] = _coerce_field(cls, key, hints[key], value, sub, source)
    obj = cls(**kwargs)
    validate_tree(obj, source, path)
    return obj


def _coerce_field(cls, name: str, tp, value, path: str, source):
    """A field's value: numbers (and lists of numbers) checked against their declared range."""
    kind = numeric_kind(tp)
    if kind is None:
        return _coerce(value, tp, path, source)
    spec = number_spec(cls, name)
    one, many = number_forms(tp)
    if many and isinstance(value, (list, tuple)):
        return [_number(v, kind, spec, f"{path}[{i}]", source) for i, v in enumerate(value)]
    if not one:
        raise ConfigError(source, path, f"expected a list, each {describe_number(kind, spec)}, got {value!r}")
    if not many:
        return _number(value, kind, spec, path, source)
    try:  # one number or a list of them
        return coerce_number(value, kind, spec)
    except ValueError:
        raise ConfigError(source, path, f"expected {describe_number_or_list(kind, spec)}, got {value!r}") from None


def _number(value, kind: type, spec: dict, path: str, source):
    try:
        return coerce_number(value, kind, spec)
    except ValueError as e:
        raise ConfigError(source, path, str(e)) from None


def validate_tree(obj, source=None, path: str = ""):
    """Run `validate(err)` of this dataclass (children are validated when they are built)."""
    check = getattr(obj, "validate", None)
    if check is None:
        return

    def err(field_name: str, message: str):
        raise ConfigError(source, f"{path}.{field_name}" if path else field_name, message)

    check(err)


def to_dict(obj) -> Any:
    """Plain-data form of a config (for the resolved config.yaml in the run folder)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.metadata.get("internal")}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_config(path: str | Path, overrides: dict | None = None) -> ExperimentConfig:
    """Read, type-check and validate an experiment YAML; raise ConfigError on any problem."""
    path = Path(path)
    data = read_yaml_mapping(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value, path)
    cfg = build_dataclass(ExperimentConfig, _move_deprecated_keys(data, path), path)
    cfg.source_path = str(path.resolve())
    cfg.make_paths_absolute()
    check_files(cfg, path)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first at line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml_mapping(path: Path) -> dict:
    """A YAML file's top-level mapping; ConfigError naming the file (and the line) otherwise."""
    if not path.exists():
        raise ConfigError(path, "", "config file not found")
    if path.is_dir():
        raise ConfigError(path, "", "expected a YAML file, got a folder")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(path, "", f"not UTF-8 text: byte 0x{raw[e.start]:02x} at line {line}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(path, "", f"not valid YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(path, "", "the file is empty; expected a mapping of sections (mobility, fl, ...)")
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def config_from_dict(data: dict, source: str | Path = "<dict>", base_dir: str | Path | None = None) -> ExperimentConfig:
    """Same as load_config for a mapping built in code (tests, compare)."""
    cfg = build_dataclass(ExperimentConfig, _move_deprecated_keys(data, source), source)
    if base_dir is not None:
        cfg.source_path = str(Path(base_dir).resolve() / "config.yaml")
    cfg.make_paths_absolute()
    check_files(cfg, source)
    return cfg


def _set_dotted(data: dict, dotted: str, value, source=None):
    """Apply one `--set FIELD=VALUE` override (a dotted path into the sections)."""
    keys = dotted.split(".")
    if not dotted or not all(keys):
        raise ConfigError(source, dotted, f"--set {dotted}={value!r}: expected a dotted field name, e.g. fl.rounds")
    node = data
    for i, k in enumerate(keys[:-1]):
        where = ".".join(keys[:i + 1])
        name, index = _indexed(k)
        node = node.setdefault(name, {})
        if index is not None:  # `fl.tasks[0].max_length`: an entry of a list the file gives
            if not isinstance(node, list) or index >= len(node):
                raise ConfigError(source, where, f"--set {dotted}: the file has no entry {index} of '{name}' to change")
            node = node[index]
        if not isinstance(node, dict):
            raise ConfigError(source, where, f"--set {dotted}: '{where}' is a value, not a section")
    node[keys[-1]] = value


def _indexed(key: str) -> tuple[str, int | None]:
    """`tasks[0]` -> ("tasks", 0); `fl` -> ("fl", None)."""
    if key.endswith("]") and "[" in key:
        name, _, idx = key[:-1].partition("[")
        if idx.isdigit():
            return name, int(idx)
    return key, None


def check_files(cfg: ExperimentConfig, source):
    """Every file a config names must exist; say which field names a missing one."""
    named = [(f"mobility.{name}", value) for name, value in cfg.mobility.file_fields()] + [("rsu.file", cfg.rsu.file)]
    for field_path, value in named:
        if not value:
            continue
        try:
            found = cfg.resolve_path(value).exists()
        except ScenarioError as e:  # `sumo:` without a SUMO installation
            raise ConfigError(source, field_path, str(e)) from None
        if not found:
            raise ConfigError(source, field_path, f"file not found: {value}")


def save_config(cfg: ExperimentConfig, path: Path):
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def field_docs(cls) -> list[tuple[str, str, str]]:
    """(name, default, doc) for each field of a config dataclass, from its attribute docstrings."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    try:
        tree = ast.parse(inspect.getsource(cls))
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = str(nxt.value.value).strip()
    except (OSError, TypeError):
        pass
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = f.default_factory()
            if dataclasses.is_dataclass(value):
                default = "(see below)"
            elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
                default = f"({len(value)} entries, see below)"
            else:
                default = repr(value)
        else:
            default = "required"
        out.append((f.name, default, docs.get(f.name, "")))
    return out
