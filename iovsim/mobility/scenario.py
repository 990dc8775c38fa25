"""Scenarios: which net, demand and additional files SUMO loads, resolved to absolute paths.

A file reference may start with `sumo:`, meaning a path under the SUMO installation's
`SUMO_HOME` (the maps shipped with the eclipse-sumo wheel are read in place, never copied).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import yaml


class ScenarioError(ValueError):
    """A scenario problem phrased for the user (names the file and what was expected)."""


def sumo_home() -> Path:
    """SUMO_HOME of the eclipse-sumo wheel (or the environment's SUMO_HOME)."""
    try:
        import sumo  # the eclipse-sumo wheel

        return Path(sumo.SUMO_HOME)
    except ImportError:
        if os.environ.get("SUMO_HOME"):
            return Path(os.environ["SUMO_HOME"])
        raise ScenarioError("SUMO not found: install the eclipse-sumo wheel or set SUMO_HOME") from None


def sumo_binary(name: str = "sumo") -> str:
    """Path of a SUMO binary (sumo, sumo-gui, netconvert, duarouter) from the wheel."""
    path = sumo_home() / "bin" / name
    if not path.exists():
        raise ScenarioError(f"SUMO binary {name} not found under {path.parent}")
    return str(path)


def resolve_file(value: str, base_dir: Path) -> Path:
    """`sumo:rel/path` -> under SUMO_HOME; relative -> against base_dir."""
    if value.startswith("sumo:"):
        return sumo_home() / value[len("sumo:"):]
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base_dir / p)


@dataclass
class Scenario:
    """Absolute paths of what SUMO loads, plus scenario-level SUMO options."""

    net_file: Path
    route_files: list[Path] = field(default_factory=list)
    additional_files: list[Path] = field(default_factory=list)
    sumo_options: list[str] = field(default_factory=list)
    rsu_file: Path | None = None
    name: str = ""
    replay: dict = field(default_factory=dict)
    """Exact trajectory replay (`{"file": ..., "mode": "exact"}`), handled by mobility.replay."""

    def command_args(self) -> list[str]:
        args = ["-n", str(self.net_file)]
        if self.route_files:
            args += ["-r", ",".join(str(p) for p in self.route_files)]
        if self.additional_files:
            args += ["-a", ",".join(str(p) for p in self.additional_files)]
        return args + list(self.sumo_options)


def _list_attr(elem, tag: str) -> list[str]:
    node = elem.find(tag)
    if node is None or not node.get("value"):
        return []
    return [v for v in node.get("value").replace(" ", ",").split(",") if v]


def scenario_from_sumocfg(path: Path) -> Scenario:
    """Read net, routes and additionals from a .sumocfg (outputs it names are not kept)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as e:
        raise ScenarioError(f"{path}: not a readable SUMO configuration ({e})") from None
    inp = root.find("input")
    if inp is None:
        raise ScenarioError(f"{path}: no <input> section")
    base = path.parent
    nets = _list_attr(inp, "net-file")
    if not nets:
        raise ScenarioError(f"{path}: field 'input/net-file' missing")
    routes = [base / r for r in _list_attr(inp, "route-files")]
    adds = [base / a for a in _list_attr(inp, "additional-files")]
    opts: list[str] = []
    time = root.find("time")
    if time is not None:
        sl = time.find("step-length")
        if sl is not None and sl.get("value"):
            opts += ["--step-length", sl.get("value")]
    return Scenario(net_file=base / nets[0], route_files=routes, additional_files=adds,
                    sumo_options=opts, name=path.stem)


def scenario_from_folder(folder: Path) -> Scenario:
    nets = sorted(folder.glob("*.net.xml")) + sorted(folder.glob("*.net.xml.gz"))
    if not nets:
        raise ScenarioError(f"{folder}: no *.net.xml in this folder")
    routes = sorted(Path(p) for p in glob.glob(str(folder / "*.rou.xml")))
    return Scenario(net_file=nets[0], route_files=routes, name=folder.name)


def scenario_from_yaml(path: Path) -> Scenario:
    """A scenario YAML (as `iovsim scenario from-osm` writes): net_file, route_files, additional_files, rsu_file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or "net_file" not in data:
        raise ScenarioError(f"{path}: field 'net_file' missing (expected a scenario YAML)")
    base = path.parent
    known = {"name", "net_file", "route_files", "additional_files", "sumo_options", "rsu_file",
             "description", "replay", "source"}
    for key in data:
        if key not in known:
            raise ScenarioError(f"{path}: field '{key}': unknown key; known keys: {', '.join(sorted(known))}")
    sc = Scenario(
        net_file=resolve_file(str(data["net_file"]), base),
        route_files=[resolve_file(str(r), base) for r in data.get("route_files") or []],
        additional_files=[resolve_file(str(a), base) for a in data.get("additional_files") or []],
        sumo_options=[str(o) for o in data.get("sumo_options") or []],
        rsu_file=resolve_file(str(data["rsu_file"]), base) if data.get("rsu_file") else None,
        name=str(data.get("name") or path.stem),
        replay=dict(data.get("replay") or {}),
    )
    if sc.replay.get("file"):
        sc.replay["file"] = str(resolve_file(str(sc.replay["file"]), base))
    return sc


def load_scenario(value: str, base_dir: Path) -> Scenario:
    """Resolve the `mobility.scenario` value: a .sumocfg, a scenario YAML, or a folder."""
    path = resolve_file(value, base_dir)
    if not path.exists():
        raise ScenarioError(f"scenario not found: {value} ({path})")
    if path.is_dir():
        sc = scenario_from_folder(path)
    elif path.suffix == ".sumocfg":
        sc = scenario_from_sumocfg(path)
    elif path.suffix in (".yaml", ".yml"):
        sc = scenario_from_yaml(path)
    else:
        raise ScenarioError(f"scenario {value}: expected a .sumocfg, a scenario .yaml or a folder")
    return sc


def build_scenario(mobility_cfg, base_dir: Path) -> Scenario:
    """The scenario of a MobilityConfig: its explicit files, else what `scenario` names."""
    if mobility_cfg.net_file:
        sc = Scenario(net_file=resolve_file(mobility_cfg.net_file, base_dir), name=Path(mobility_cfg.net_file).stem)
    else:
        sc = load_scenario(mobility_cfg.scenario, base_dir)
    if mobility_cfg.route_files:
        sc.route_files = [resolve_file(r, base_dir) for r in mobility_cfg.route_files]
    sc.additional_files = sc.additional_files + [resolve_file(a, base_dir) for a in mobility_cfg.additional_files]
    for p in [sc.net_file, *sc.route_files, *sc.additional_files]:
        if not p.exists():
            raise ScenarioError(f"file not found: {p}")
    return sc
