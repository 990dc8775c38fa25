"""Bad input, as a new user writes it: every config field x {wrong type, negative, zero, NaN, huge},
unknown keys in every section, broken YAML documents, broken `--set`s, broken run folders for
`--resume`, model/data-dependent values and broken user strategy files. Each case runs in-process
through `iovsim.cli.main` and must end with exit status 2 and one stderr line naming the file and
the field (or exit 0 where the value is valid), without a traceback, leaving an existing run folder
given as `--out` or `--resume` byte-identical. `pytest -s` prints the report.
"""
from __future__ import annotations

import json
import math
import shutil
import typing

import pytest

from conftest import A10KW_ROUTES, tiny_config
from fuzzkit import (OK_ERROR, OK_VALID, Case, config_fields, dump_yaml, in_range, report, run_case, sections,
                     set_path)
from iovsim.cli import main
from iovsim.config import ExperimentConfig, config_from_dict, to_dict
from iovsim.schema import number_spec, numeric_kind

CFG = "exp.yaml"
RUN_ARGS = ["run", "{dir}/" + CFG, "--out", "{run}", "--quiet"]    # config errors come before any write
CHECK_ARGS = ["check", "{dir}/" + CFG, "--quiet"]                   # loads, validates, builds; no training
FIELDS_ARGS = CHECK_ARGS + ["--no-build"]                           # loads and validates only

# Valid values that are also built (SUMO warm-up, RSUs, model, data, strategy: ~1-3 s each): those
# where 0 switches a behaviour rather than scaling a number. Every other valid value is checked by
# the config layer only, which is what decides it.
BUILD_VALID = {"mobility.fl_vehicles=zero", "mobility.warmup_s=zero", "rsu.coverage_radius_m=zero",
               "fl.tasks[0].max_samples=zero", "fl.min_samples_per_vehicle=zero", "fl.threads=zero",
               "channel.max_spectral_efficiency_bps_hz=zero", "devices[0].kappa=zero"}
RESUME_ARGS = ["run", "--resume", "{run}", "--quiet"]

# Inside a field's declared range, yet wrong with the rest of the tiny config: case -> the field named.
INVALID_IN_RANGE = {
    "devices[0].share=zero": "devices",                                       # shares no longer sum to 1
    "channel.vehicle_max_tx_power_dbm=zero": "channel.vehicle_tx_power_dbm",  # below the default 23 dBm
    "channel.vehicle_max_tx_power_dbm=negative": "channel.vehicle_tx_power_dbm",
    "channel.reuse_groups=zero": "channel.reuse_groups",                      # one group for 5 RSUs
    "channel.mcs_sinr_db=negative": "channel.mcs_efficiency_bps_hz",          # one threshold, 15 efficiencies
    "channel.mcs_sinr_db=zero": "channel.mcs_efficiency_bps_hz",
}


def _wrong_type(tp):
    """A value of the wrong type for a non-numeric field."""
    if tp is bool:
        return "maybe"
    if typing.get_origin(tp) is typing.Literal:
        return 12345
    if typing.get_origin(tp) is dict:
        return "abc"
    return {"a": 1}   # a mapping where a string or a list of strings is expected


def numeric_cases(base: dict) -> list[Case]:
    """Every numeric field x {wrong type, negative, zero, NaN, huge}; in-range values must build."""
    out = []
    for path, cls, name, tp in config_fields(ExperimentConfig):
        kind = numeric_kind(tp)
        if kind is None:
            continue
        spec = number_spec(cls, name)
        huge = 10**30 if kind is int else 1e300
        for label, v in (("wrong-type", "abc"), ("negative", -1), ("zero", 0), ("nan", math.nan), ("huge", huge)):
            case_name = f"{path}={label}"
            files = {CFG: dump_yaml(set_path(base, path, [v] if kind is not tp else v))}
            valid = not isinstance(v, str) and in_range(v, spec)
            named = INVALID_IN_RANGE.get(case_name, path if not valid else None)
            if named is None:
                # Inside the declared range and consistent: it must load and the experiment build.
                built = case_name in BUILD_VALID
                out.append(Case(case_name, f"valid {label}" + (" (built)" if built else ""), files,
                                CHECK_ARGS if built else FIELDS_ARGS, 0,
                                why=f"{v!r} is inside {path}'s declared range"))
            else:
                # In range yet wrong with the rest: only a build can tell, so `check` it.
                out.append(Case(case_name, f"field {label}", files, CHECK_ARGS if valid else RUN_ARGS, 2, [CFG, named]))
    return out


def type_cases(base: dict) -> list[Case]:
    """Every non-numeric field given a value of the wrong type."""
    out = []
    for path, _cls, _name, tp in config_fields(ExperimentConfig):
        if numeric_kind(tp) is not None or tp is typing.Any:
            continue
        files = {CFG: dump_yaml(set_path(base, path, _wrong_type(tp)))}
        out.append(Case(f"{path}=wrong-type", "field wrong-type", files, RUN_ARGS, 2, [CFG, path]))
    return out


def unknown_key_cases(base: dict) -> list[Case]:
    out = []
    for prefix in sections(ExperimentConfig):
        path = prefix + "no_such_key"
        files = {CFG: dump_yaml(set_path(base, path, 1))}
        out.append(Case(f"{path}", "unknown key", files, RUN_ARGS, 2, [CFG, path]))
    return out


def yaml_cases(base: dict) -> list[Case]:
    good = dump_yaml(base)
    docs = {
        "syntax error": ("name: x\nfl: {rounds: 3\nseed: 1\n", ["line"]),
        "tab indentation": ("name: x\nfl:\n\trounds: 3\n", ["line"]),
        "unclosed quote": ('name: "x\nseed: 1\n', ["line"]),
        "bad indentation": ("fl:\n  rounds: 3\n    local_steps: 2\n", ["line"]),
        "top-level list": ("- a\n- b\n", ["mapping"]),
        "top-level scalar": ("just a string\n", ["mapping"]),
        "empty file": ("", ["empty"]),
        "only comments": ("# nothing here\n", ["empty"]),
        "not utf-8": (b"name: \xff\xfe\x00x\n", ["UTF-8"]),
        "two documents": (good + "---\nseed: 3\n", ["document"]),
        "section is a number": (good.replace("fl:\n", "fl: 3\nfl_was:\n", 1), ["fl"]),
        "section is null": (dump_yaml({**base, "mobility": None}), ["mobility"]),
        "section is a list": (dump_yaml({**base, "channel": [1, 2]}), ["channel"]),
        "devices not a list": (dump_yaml({**base, "devices": {"name": "x"}}), ["devices"]),
        "tasks entry a string": (dump_yaml(set_path(base, "fl.tasks", ["tweets"])), ["fl.tasks[0]"]),
        "duplicate key": ("seed: 1\nseed: 2\n" + good, ["seed"]),
        "binary garbage": (bytes(range(256)) * 4, [CFG]),
    }
    return [Case(f"yaml: {name}", "broken YAML", {CFG: text}, RUN_ARGS, 2, [CFG, *words])
            for name, (text, words) in docs.items()]


def set_cases(base: dict) -> list[Case]:
    """`--set FIELD=VALUE` mistakes: the line names the override (it is not in the file)."""
    files = {CFG: dump_yaml(base)}
    sets = {"fl.rounds.x=3": "fl.rounds", "seed=.nan": "seed", "nosuch.key=1": "nosuch", "fl=3": "fl",
            "fl.tasks[0].max_length=3": "fl.tasks", "mobility.end_s=-5": "mobility.end_s",
            "fl.rounds=[1, 2": "fl.rounds", "=3": "--set", "fl.batch_size=": "fl.batch_size"}
    return [Case(f"--set {s}", "--set", files, ["run", "{dir}/" + CFG, "--set", s, "--out", "{run}", "--quiet"],
                 2, [named]) for s, named in sets.items()]


def issue_cases(base: dict) -> list[Case]:
    """The cases the issue lists, plus values whose range depends on the model or the data (build time)."""
    def field_case(path, value, label, args=RUN_ARGS, named=None, kind="issue"):
        return Case(f"{path}={label}", kind, {CFG: dump_yaml(set_path(base, path, value))}, args, 2,
                    [CFG, named or path])

    out = [
        field_case("seed", -1, "-1"), field_case("seed", 2**40, "2^40"), field_case("seed", 2**31, "2^31"),
        field_case("mobility.end_s", math.nan, "nan"), field_case("mobility.warmup_s", math.nan, "nan"),
        field_case("rsu.spacing_m", math.nan, "nan"), field_case("fl.round_deadline_s", math.nan, "nan"),
        field_case("fl.round_deadline_s", 1e7, "1e7 (beyond end_s)"),
        field_case("fl.round_deadline_s", 5000.0, "5000 (beyond end_s - begin_s - warmup_s)"),
        field_case("fl.samples_per_vehicle", 0, "0"), field_case("fl.samples_per_vehicle", -3, "-3"),
        field_case("fl.min_samples_per_vehicle", -1, "-1"),
        field_case("devices[0].flops_per_s", math.nan, "nan"), field_case("devices[0].power_w", math.nan, "nan"),
        field_case("mobility.sumo_args", [{"a": 1}], "[mapping]", named="mobility.sumo_args[0]"),
        field_case("mobility.sumo_args", [None], "[null]", named="mobility.sumo_args[0]"),
        field_case("mobility.sumo_args", [["--x"]], "[list]", named="mobility.sumo_args[0]"),
        field_case("mobility.sumo_args", "--no-warnings", "a string, not a list"),
        # Ranges that depend on the model or the data: checked when the experiment is built.
        field_case("fl.lora_rank", 1000, "1000 > layer width", CHECK_ARGS, kind="build"),
        field_case("fl.lora_ranks", [2, 4, 999], "999 > layer width", CHECK_ARGS, "fl.lora_ranks[2]", kind="build"),
        field_case("fl.batch_size", 5000, "5000 > every shard", CHECK_ARGS, kind="build"),
        field_case("fl.model", "/no/such/model/folder", "missing folder", CHECK_ARGS, kind="build"),
        field_case("fl.model", "no-such-org/no-such-model-xyz", "unknown hub id offline", CHECK_ARGS, kind="build"),
        field_case("fl.target_modules", ["no_such_layer"], "absent module", CHECK_ARGS, kind="build"),
        field_case("fl.target_modules", ["query", "nope"], "one absent module", CHECK_ARGS,
                   "fl.target_modules", kind="build"),
        field_case("strategy.per_strategy", {"hetlora": {"tier_ranks": [2, 2000]}}, "rank > layer width",
                   CHECK_ARGS, "strategy.per_strategy.hetlora.tier_ranks[1]", kind="build"),
        field_case("fl.tasks[0].dataset", "no_such_dataset", "unknown", CHECK_ARGS, kind="build"),
        field_case("fl.tasks[0].dataset", "csv:nowhere.csv", "csv missing", CHECK_ARGS, kind="build"),
        Case("fl.tasks[0].dataset=csv without a label column", "build",
             {CFG: dump_yaml(set_path(base, "fl.tasks[0].dataset", "csv:d.csv")), "d.csv": "text,kind\nhi,a\n"},
             CHECK_ARGS, 2, [CFG, "fl.tasks[0].dataset", "d.csv", "label"]),
        # the strategy is built by `check --no-build` too (no SUMO, model or data needed)
        field_case("strategy.params", {"no_such_param": 1}, "unknown parameter", FIELDS_ARGS, "strategy.params",
                   kind="build"),
        field_case("strategy.params", {"lora_alpha": 32}, "lora_alpha is fl.lora_alpha", FIELDS_ARGS,
                   "strategy.params", kind="build"),
        field_case("strategy.name", "no_such_strategy", "unknown", CHECK_ARGS, "strategy.name", kind="build"),
    ]
    return out


STRATEGY_FILES = {
    "syntax error": ("from iovsim.strategies.base import Strategy\nclass S(Strategy:\n    pass\n", "strat.py:2"),
    "import error": ("import no_such_module_xyz\n", "strat.py:1"),
    "raises at import": ("x = 1\nraise RuntimeError('boom at import')\n", "strat.py:2"),
    "zero division at import": ("from iovsim.strategies.base import Strategy\n\nRATE = 1 / 0\n", "strat.py:3"),
    "class missing": ("from iovsim.strategies.base import Strategy\n", "strat.py"),
    "not a Strategy": ("class S:\n    pass\n", "strat.py"),
    "constructor raises": ("from iovsim.strategies.base import Strategy\nclass S(Strategy):\n"
                           "    def __init__(self):\n        raise ValueError('no')\n", "strat.py:4"),
    "setup raises": ("from iovsim.strategies.homolora import HomoLoRA\nclass S(HomoLoRA):\n"
                     "    def setup(self, *a, **k):\n        raise KeyError('setup')\n", "strat.py:4"),
    "indentation error": ("from iovsim.strategies.base import Strategy\nclass S(Strategy):\n  x = 1\n    y = 2\n",
                          "strat.py:4"),
    "null bytes": ("x = 1\0\n", "strat.py"),
}


def strategy_cases(base: dict) -> list[Case]:
    cfg = set_path(base, "strategy.name", "strat.py:S")
    # The line names the config field too, except where the strategy loaded and then failed (setup).
    out = [Case(f"strategy file: {name}", "user strategy", {CFG: dump_yaml(cfg), "strat.py": src},
                ["check", "{dir}/" + CFG, "--quiet"], 2, [where] + ([] if name == "setup raises" else [CFG, "strategy.name"]))
           for name, (src, where) in STRATEGY_FILES.items()]
    missing = set_path(base, "strategy.name", "nowhere.py:S")
    out.append(Case("strategy file: missing", "user strategy", {CFG: dump_yaml(missing)}, RUN_ARGS[:2] + ["--quiet"],
                    2, ["nowhere.py", "strategy.name"]))
    out.append(Case("strategy module: not importable", "user strategy",
                    {CFG: dump_yaml(set_path(base, "strategy.name", "no_such_pkg_xyz.mod:S"))},
                    CHECK_ARGS, 2, ["no_such_pkg_xyz", "strategy.name"]))
    return out


def _write_run(run_dir, data: dict):
    """A run folder as a run leaves it after round 1: resolved config, logs, a checkpoint, summary."""
    (run_dir / "checkpoints" / "round_0001").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_yaml(data))
    (run_dir / "metrics.csv").write_text("round,task,accuracy\n1,tweets,0.5\n")
    (run_dir / "checkpoints" / "round_0001" / "state.json").write_text(json.dumps({"round": 1, "time_s": 80.0}))
    (run_dir / "checkpoints" / "round_0001" / "tweets.safetensors").write_bytes(b"\0" * 64)
    (run_dir / "summary.json").write_text(json.dumps({"finished": False, "config_source": ""}))


def resume_cases(base: dict) -> list[Case]:
    """A run folder whose config.yaml was edited into something invalid, then `--resume`d."""
    out = []
    edits = [("fl.rounds", "abc"), ("seed", -4), ("mobility.end_s", math.nan), ("fl.batch_size", 0),
             ("channel.no_such_key", 1), ("fl.tasks[0].max_length", 10**9)]
    for path, value in edits:
        bad = set_path(base, path, value)

        def mutate(run_dir, bad=bad):
            (run_dir / "config.yaml").write_text(dump_yaml(bad))
        out.append(Case(f"resume: {path}={value!r}", "resume", {}, RESUME_ARGS, 2, ["config.yaml", path.split(".no")[0]
                                                                                   if "no_such" not in path else path],
                        mutate_run=mutate))

    def broken_yaml(run_dir):
        (run_dir / "config.yaml").write_text("fl: {rounds: 2\n")
    out.append(Case("resume: config.yaml not YAML", "resume", {}, RESUME_ARGS, 2, ["config.yaml", "line"],
                    mutate_run=broken_yaml))

    def no_config(run_dir):
        (run_dir / "config.yaml").unlink()
    out.append(Case("resume: config.yaml missing", "resume", {}, RESUME_ARGS, 2, ["config.yaml"], mutate_run=no_config))
    out.append(Case("resume: no such folder", "resume", {}, ["run", "--resume", "{dir}/nowhere", "--quiet"], 2,
                    ["nowhere"]))
    return out


def fuzz_base() -> dict:
    """The tiny config with one task and a short warm-up: a valid case's `check` takes about a second."""
    return tiny_config(**{"fl.rounds": 1, "mobility.warmup_s": 20, "mobility.route_files": A10KW_ROUTES[:2], "fl.tasks": [
        {"name": "bbc", "dataset": "bbc_news", "max_samples": 300, "test_samples": 40, "max_length": 32}]})


def all_cases() -> list[Case]:
    base = fuzz_base()
    return (numeric_cases(base) + type_cases(base) + unknown_key_cases(base) + yaml_cases(base) + set_cases(base)
            + issue_cases(base) + strategy_cases(base) + resume_cases(base))


CASES = all_cases()


def test_there_are_enough_cases():
    assert len(CASES) >= 200
    valid = [c for c in CASES if c.expect_exit == 0]
    assert len(valid) < len(CASES) // 5
    assert {c.name for c in valid if "--no-build" not in c.argv} == BUILD_VALID  # the ones that build


@pytest.fixture(scope="module")
def run_template(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz") / "template-run"
    base = fuzz_base()
    _write_run(d, to_dict(config_from_dict(base)))
    return d


def test_fuzz(tmp_path, run_template, capfd):
    """Every case, one after another in this process; the report lists the broken ones."""
    results = []
    for i, case in enumerate(CASES):
        run_dir = tmp_path / f"run-{i}"
        shutil.copytree(run_template, run_dir)
        results.append(run_case(case, tmp_path / f"case-{i}", run_dir, main, capfd))
        shutil.rmtree(run_dir)
    text = report(results, "config fuzz")
    with capfd.disabled():
        print("\n" + text)
    broken = [o for o in results if o.cls not in (OK_ERROR, OK_VALID)]
    assert not broken, text
