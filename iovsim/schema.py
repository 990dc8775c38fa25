"""Declared choices and ranges of config dataclass fields, checked the same way for every section.

A choice field is typed `Literal[...]`. Every int/float field (and list of them) declares its range
in the dataclass field's metadata: `ge`, `gt`, `le`, `lt` and optionally `unit` (otherwise read
from the name's suffix, e.g. `_s` seconds). NaN and infinities are always rejected. validate()
methods keep only the checks that relate several fields. This module imports nothing from iovsim,
so every layer may use it.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

_UNIT_SUFFIXES = (("_dbm_hz", "dBm/Hz"), ("_bps_hz", "bit/s/Hz"), ("_dbm", "dBm"), ("_db", "dB"),
                  ("_hz", "Hz"), ("_mps", "m/s"), ("_bytes", "bytes"), ("_per_s", "per second"),
                  ("_s", "seconds"), ("_m", "metres"), ("_w", "watts"), ("_j", "joules"))
_BOUND_WORDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def numeric_kind(tp) -> type | None:
    """int or float for a numeric field type (a number, a list of numbers, or `float | list[float]`:
    one number or a list), else None."""
    if tp in (int, float):
        return tp
    if typing.get_origin(tp) in (list, tuple):
        args = typing.get_args(tp)
        if args and args[0] in (int, float):
            return args[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        kinds = {numeric_kind(a) for a in typing.get_args(tp)}
        if len(kinds) == 1 and None not in kinds:
            return kinds.pop()
    return None


def number_forms(tp) -> tuple[bool, bool]:
    """(takes one number, takes a list of numbers) for a numeric field type."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return (any(a in (int, float) for a in args),
            any(typing.get_origin(a) in (list, tuple) for a in args))


def number_spec(cls, name: str) -> dict:
    """Range and unit of numeric field `name` of dataclass `cls`, from the field's metadata."""
    spec = dict(cls.__dataclass_fields__[name].metadata)
    if "unit" not in spec:
        spec["unit"] = next((u for suffix, u in _UNIT_SUFFIXES if name.endswith(suffix)), "")
    return spec


def format_number(v) -> str:
    """A bound as a person writes it: 86400, 1e+08, 2147483647, 0.5."""
    if float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    if float(f"{v:g}") == v:
        return f"{v:g}"
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def describe_number_or_list(kind: type, spec: dict) -> str:
    """`a finite number of dBm >= -100 and <= 100, or a list of them`."""
    return f"{describe_number(kind, spec)}, or a list of them"


def describe_number(kind: type, spec: dict) -> str:
    """`an integer >= 1 and <= 100` / `a finite number of seconds > 0 and <= 86400`."""
    what = "an integer" if kind is int else "a finite number"
    if spec.get("unit"):
        what += f" of {spec['unit']}" if kind is float else f" ({spec['unit']})"
    bounds = [f"{word} {format_number(spec[key])}" for key, word in _BOUND_WORDS if key in spec]
    return " ".join([what, " and ".join(bounds)]).strip()


def _in_range(x, spec: dict) -> bool:
    return (("ge" not in spec or x >= spec["ge"]) and ("gt" not in spec or x > spec["gt"])
            and ("le" not in spec or x <= spec["le"]) and ("lt" not in spec or x < spec["lt"]))


def coerce_number(value: Any, kind: type, spec: dict) -> int | float:
    """`value` as a `kind` inside its range; ValueError `expected ..., got ...` otherwise."""
    x = value
    if isinstance(x, str) and kind is float:
        try:  # YAML reads 1e9 (no dot) as a string
            x = float(x)
        except ValueError:
            pass
    ok = isinstance(x, (int, float)) and not isinstance(x, bool)
    if ok and isinstance(x, float):
        ok = math.isfinite(x) and (kind is float or x.is_integer())
    if ok:
        try:
            x = kind(x)
        except OverflowError:  # an integer beyond any float
            ok = False
    if not ok or not _in_range(x, spec):
        raise ValueError(f"expected {describe_number(kind, spec)}, got {value!r}")
    return x


def describe_choice(tp) -> str:
    return "one of " + ", ".join(map(str, typing.get_args(tp)))


def check_choice(value: Any, tp) -> Any:
    """`value` if it is one of Literal `tp`'s values; ValueError `expected one of ..., got ...` otherwise."""
    if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
        return value
    raise ValueError(f"expected {describe_choice(tp)}, got {value!r}")


def field_problems(obj) -> list[tuple[str, str]]:
    """(field, message) for every choice or numeric field of a built dataclass that breaks its declaration."""
    hints = typing.get_type_hints(type(obj))
    out = []
    for f in dataclasses.fields(obj):
        tp, value = hints[f.name], getattr(obj, f.name)
        try:
            if typing.get_origin(tp) is typing.Literal:
                check_choice(value, tp)
            elif numeric_kind(tp) is tp:
                coerce_number(value, tp, number_spec(type(obj), f.name))
            elif numeric_kind(tp) is not None:
                for v in (value if isinstance(value, (list, tuple)) else [value]):
                    coerce_number(v, numeric_kind(tp), number_spec(type(obj), f.name))
        except ValueError as e:
            out.append((f.name, str(e)))
    return out
