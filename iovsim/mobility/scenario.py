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
    outputs: dict = field(default_factory=dict)
    """Output files the source configuration names (option -> file as written there, e.g.
    `tripinfo-output: tripinfos.xml`); `output_args` sends them into the run folder."""
    source: str = ""
    """How the scenario's files are made (a scenario YAML's `source`), named when a file is missing."""
    origin: str = ""
    """The .sumocfg or scenario YAML the files were read from (named when one of them is missing)."""
    output_options: list[str] = field(default_factory=list)
    """Non-file options of the source configuration's <output> section (e.g. `--fcd-output.geo true`)."""
    _additional_origin: dict = field(default_factory=dict, repr=False, compare=False)

    def command_args(self) -> list[str]:
        args = ["-n", str(self.net_file)]
        if self.route_files:
            args += ["-r", ",".join(str(p) for p in self.route_files)]
        if self.additional_files:
            args += ["-a", ",".join(str(p) for p in self.additional_files)]
        return args + list(self.sumo_options)

    def output_args(self, out_dir: str | Path, *, skip: tuple[str, ...] = ("log", "log-file")) -> list[str]:
        """SUMO options that write every output the scenario names into `out_dir`, never beside the inputs.

        Output files of the source .sumocfg become `out_dir/<file name>`. Additional files that
        write outputs (detectors, edgeData, timedEvent, ...) are replaced, in `additional_files`,
        by rewritten copies under `out_dir/inputs/` whose outputs point into `out_dir` and whose
        input references point back to the originals. `skip`: options the caller sets itself
        (SumoSession writes `--log` into its out_dir).
        """
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        args: list[str] = []
        used: set[str] = set()
        for opt, value in self.outputs.items():
            if opt in skip:
                continue
            files = []
            for v in [x for x in str(value).replace(" ", ",").split(",") if x]:
                name = Path(v).name
                if name in used:  # two options naming one file would clobber each other
                    name = f"{opt}_{name}"
                used.add(name)
                files.append(str(out_dir / name))
            args += [f"--{opt}", ",".join(files)]
        args += list(self.output_options)
        for i, p in enumerate(self.additional_files):
            origin = Path(self._additional_origin.get(str(p), p))
            if additional_writes_outputs(origin):
                copy = rewrite_additional_outputs(origin, out_dir, out_dir / "inputs")
                self.additional_files[i] = copy
                self._additional_origin[str(copy)] = str(origin)
        return args


def _list_attr(elem, tag: str) -> list[str]:
    node = elem.find(tag)
    if node is None or not node.get("value"):
        return []
    return [v for v in node.get("value").replace(" ", ",").split(",") if v]


# Elements of SUMO additional files that write a file, and the attribute naming it.
OUTPUT_ELEMENTS = {
    "e1Detector": "file", "inductionLoop": "file", "instantInductionLoop": "file",
    "e2Detector": "file", "laneAreaDetector": "file", "e3Detector": "file", "entryExitDetector": "file",
    "edgeData": "file", "laneData": "file", "edgeRelation": "file", "tazRelation": "file",
    "routeProbe": "file", "vTypeProbe": "file", "timedEvent": "dest", "calibrator": "output",
    "routeCalibrator": "output", "laneCalibrator": "output", "chargingStation": "output",
}
# Options of a .sumocfg's <report> section that name files SUMO writes.
REPORT_FILE_OPTIONS = {"log", "log-file", "error-log", "message-log"}


def additional_writes_outputs(path: Path) -> bool:
    """Whether an additional file has elements writing output files (detectors, edgeData, ...)."""
    try:
        for _, elem in ElementTree.iterparse(path, events=("start",)):
            attr = OUTPUT_ELEMENTS.get(elem.tag)
            if attr and elem.get(attr):
                return True
    except (ElementTree.ParseError, OSError):
        return False
    return False


def rewrite_additional_outputs(path: Path, out_dir: Path, copy_dir: Path) -> Path:
    """A copy of an additional file whose outputs go into out_dir (input references kept absolute)."""
    path = Path(path).resolve()
    tree = ElementTree.parse(path)
    for elem in tree.getroot().iter():
        out_attr = OUTPUT_ELEMENTS.get(elem.tag)
        for attr, value in list(elem.attrib.items()):
            if attr == out_attr and value:
                if value.upper() in ("NUL", "/DEV/NULL"):
                    continue
                elem.set(attr, str(out_dir / Path(value).name))
            elif attr in ("file", "href", "routes") and value and not Path(value).is_absolute() \
                    and (path.parent / value).exists():
                elem.set(attr, str(path.parent / value))  # an input (rerouter intervals, included files)
    copy_dir.mkdir(parents=True, exist_ok=True)
    copy = copy_dir / path.name
    tree.write(copy, encoding="UTF-8", xml_declaration=True)
    return copy


def scenario_from_sumocfg(path: Path) -> Scenario:
    """Read net, routes and additionals from a .sumocfg; the outputs it names are recorded (not
    applied): `Scenario.output_args(out_dir)` redirects them into the run folder."""
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
    outputs: dict[str, str] = {}
    output_options: list[str] = []
    out = root.find("output")
    for child in (list(out) if out is not None else []):
        value = child.get("value")
        if value is None:
            continue
        if _is_file_value(child.tag, value):
            if child.tag != "output-prefix":   # applied to plain names; absolute paths would break it
                outputs[child.tag] = value
        else:
            output_options += [f"--{child.tag}", value]
    rep = root.find("report")
    for child in (list(rep) if rep is not None else []):
        if child.tag in REPORT_FILE_OPTIONS and child.get("value"):
            outputs[child.tag] = child.get("value")
    return Scenario(net_file=base / nets[0], route_files=routes, additional_files=adds,
                    sumo_options=opts, name=path.stem, outputs=outputs, output_options=output_options,
                    origin=str(path))


def _is_file_value(option: str, value: str) -> bool:
    """An <output> option naming a file (e.g. tripinfo-output), as opposed to a flag or a number."""
    if value.lower() in ("true", "false", "on", "off", "yes", "no"):
        return False
    try:
        float(value)
        return False
    except ValueError:
        pass
    return option.endswith(("-output", "-dump", "-prefix")) or option in {"netstate-dump", "vehroutes", "tripinfo"} \
        or "." in value or "/" in value


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
        source=str(data.get("source") or ""),
        origin=str(path),
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
            hint = f" (this scenario's files are made by: {sc.source})" if sc.source else ""
            named = f" (named in {sc.origin})" if sc.origin else ""
            raise ScenarioError(f"file not found: {p}{named}{hint}")
    check_root(sc.net_file, ("net",), "a SUMO net")
    for p in [*sc.route_files, *sc.additional_files]:
        check_root(p, ("routes", "additional", "additionals"), "a SUMO route or additional file")
    return sc


def check_root(path: Path, roots: tuple[str, ...], what: str):
    """The file's first XML element is one of `roots` (SUMO ignores a file of another kind silently).

    Only the first element is parsed; SUMO reports errors further in, with their line."""
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for _, elem in ElementTree.iterparse(fh, events=("start",)):
                if elem.tag not in roots:
                    raise ScenarioError(f"{path}: line 1: root element <{elem.tag}>: expected "
                                        f"<{'> or <'.join(roots)}> ({what})")
                return
    except ElementTree.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else 1
        raise ScenarioError(f"{path}: line {line}: not {what} (XML: {' '.join(str(e).split(':')[0].split())})") from None
    except (OSError, EOFError) as e:
        raise ScenarioError(f"{path}: cannot read {what} ({e})") from None
