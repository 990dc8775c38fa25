"""Every numeric and choice field of every config section is checked by the loader, field named.

The sections are found by walking ExperimentConfig, so a new section or field is covered (and must
declare its range) without touching this file.
"""
import dataclasses
import math
import typing

import pytest

from iovsim.config import ConfigError, ExperimentConfig, config_from_dict
from iovsim.schema import describe_number, field_problems, number_forms, number_spec, numeric_kind


def sections():
    """(dotted prefix, dataclass) of every config section, e.g. ("fl.tasks[0].", TaskConfig)."""
    out = []

    def walk(cls, prefix):
        out.append((prefix, cls))
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
            elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
                walk(typing.get_args(tp)[0], f"{prefix}{f.name}[0].")

    walk(ExperimentConfig, "")
    return out


def config_fields(select):
    """(dotted field path, section class, field name, type) for the fields `select(type)` accepts."""
    out = []
    for prefix, cls in sections():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.metadata.get("internal") and select(hints[f.name]):
                out.append((prefix + f.name, cls, f.name, hints[f.name]))
    return out


NUMERIC = config_fields(lambda tp: numeric_kind(tp) is not None)
CHOICES = config_fields(lambda tp: typing.get_origin(tp) is typing.Literal)


def nest(path: str, value) -> dict:
    """{"fl": {"tasks": [{"max_length": v}]}} from "fl.tasks[0].max_length"."""
    head, _, rest = path.partition(".")
    inner = nest(rest, value) if rest else value
    if head.endswith("[0]"):
        return {head[:-3]: [inner]}
    return {head: inner}


def spec_of(cls, name):
    return number_spec(cls, name)


def bad_values(tp, spec):
    """(label, value) that must all be refused: NaN, inf, below the range, above it, wrong types.
    For a list field each value is the list's only item, except the bare number `not_a_list`; a field
    that takes one number or a list gets both forms."""
    kind = numeric_kind(tp)
    low = spec.get("ge", spec.get("gt"))
    below = -1 if low >= 0 else low - 1
    huge = 10**30 if kind is int else 1e300
    values = [("nan", math.nan), ("inf", math.inf), ("below", kind(below)), ("huge", huge),
              ("text", "abc"), ("bool", True)]
    one, many = number_forms(tp)
    if not many:
        return values + [("list", [1])]
    listed = [(f"{label} in a list", [v]) for label, v in values]
    return values + listed if one else listed + [("not_a_list", 3)]


CASES = [(path, cls, name, tp, label, value)
         for path, cls, name, tp in NUMERIC
         for label, value in bad_values(tp, spec_of(cls, name))]


def test_the_walk_finds_every_section_and_enough_cases():
    names = {cls.__name__ for _, cls in sections()}
    assert {"MobilityConfig", "RsuConfig", "ChannelConfig", "DeviceTier", "FlConfig", "TaskConfig",
            "StrategyConfig", "OutputConfig"} <= names
    print(f"\n{len(NUMERIC)} numeric fields x 7 bad values = {len(CASES)} cases; {len(CHOICES)} choice fields")
    assert len(NUMERIC) >= 50 and len(CASES) >= 350


@pytest.mark.parametrize("path, cls, name, tp", NUMERIC, ids=[c[0] for c in NUMERIC])
def test_every_numeric_field_declares_a_range(path, cls, name, tp):
    spec = spec_of(cls, name)
    assert ("ge" in spec or "gt" in spec) and ("le" in spec or "lt" in spec), \
        f"{path}: declare ge/gt and le/lt in the field's metadata"


@pytest.mark.parametrize("path, cls, name, tp, label, value", CASES, ids=[f"{c[0]}-{c[4]}" for c in CASES])
def test_every_numeric_field_refuses_bad_values(path, cls, name, tp, label, value):
    kind = numeric_kind(tp)
    item = isinstance(value, list) and label != "list"  # the error names the list's item
    expected_path = f"{path}[0]" if item else path
    with pytest.raises(ConfigError) as e:
        config_from_dict(nest(path, value), "exp.yaml")
    msg = str(e.value)
    assert e.value.field_path == expected_path, msg
    assert msg.startswith(f"exp.yaml: field '{expected_path}': expected ") and "\n" not in msg
    assert describe_number(kind, spec_of(cls, name)) in msg, msg
    assert f"got {(value[0] if item else value)!r}" in msg, msg


@pytest.mark.parametrize("path, cls, name, tp", CHOICES, ids=[c[0] for c in CHOICES])
def test_every_choice_field_names_its_values(path, cls, name, tp):
    allowed = typing.get_args(tp)
    with pytest.raises(ConfigError) as e:
        config_from_dict(nest(path, "no-such-choice"), "exp.yaml")
    assert str(e.value) == f"exp.yaml: field '{path}': expected one of {', '.join(allowed)}, got 'no-such-choice'"
    for value in allowed:
        if (cls.__name__, value) != ("RsuConfig", "file"):   # needs rsu.file too
            built = config_from_dict(nest(path, value))
            section = built
            for part in path.split(".")[:-1]:
                section = getattr(section, part.removesuffix("[0]"))
                section = section[0] if part.endswith("[0]") else section
            assert getattr(section, name) == value


def test_defaults_and_default_lists_are_inside_their_ranges():
    from iovsim.costs.tiers import default_device_tiers
    from iovsim.fl.config import default_tasks

    objs = [cls() for _, cls in sections()] + default_device_tiers() + default_tasks()
    for obj in objs:
        assert field_problems(obj) == [], type(obj).__name__


def test_integers_given_as_whole_floats_and_numbers_as_strings_are_accepted():
    cfg = config_from_dict({"seed": 7.0, "rsu": {"spacing_m": "2.5e2"}, "fl": {"lora_ranks": [2.0, 4]}})
    assert (cfg.seed, cfg.rsu.spacing_m, cfg.fl.lora_ranks) == (7, 250.0, [2, 4])
    assert type(cfg.seed) is int and all(type(r) is int for r in cfg.fl.lora_ranks)
    with pytest.raises(ConfigError, match=r"field 'seed': expected an integer >= 0 .*got 7.5"):
        config_from_dict({"seed": 7.5})


def test_pathloss_choices_match_the_pathloss_tables():
    """The config's path-loss models and the models the channel has tables for are the same list."""
    from iovsim.channel import pathloss
    from iovsim.channel.config import PathlossModel

    assert set(typing.get_args(PathlossModel)) == set(pathloss.SHADOW_STD_DB) == set(pathloss.SHADOW_DECORRELATION_M)


def test_placement_methods_are_the_config_choices():
    from iovsim.mobility.config import RsuPlacement
    from iovsim.mobility.placement import METHODS

    assert METHODS == typing.get_args(RsuPlacement) == ("regular", "junctions", "kmeans", "hex", "file")
