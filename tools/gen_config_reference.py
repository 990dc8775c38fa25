"""Writes docs/config.md: every config field with its default and meaning, from the dataclasses.

Run: .venv/bin/python tools/gen_config_reference.py   (a test checks the file is up to date)
"""
from __future__ import annotations

import sys
import typing
from pathlib import Path

from iovsim.channel.config import ChannelConfig
from iovsim.config import ExperimentConfig, OutputConfig, field_docs
from iovsim.costs.tiers import DeviceTier
from iovsim.fl.config import FlConfig, TaskConfig
from iovsim.mobility.config import MobilityConfig, RsuConfig
from iovsim.schema import format_number, number_forms, number_spec, numeric_kind
from iovsim.strategies.config import StrategyConfig

SECTIONS = [
    ("top level", ExperimentConfig), ("mobility", MobilityConfig), ("rsu", RsuConfig),
    ("channel", ChannelConfig), ("devices[] (a list of tiers)", DeviceTier), ("fl", FlConfig),
    ("fl.tasks[] (a list)", TaskConfig), ("strategy", StrategyConfig), ("output", OutputConfig),
]


BOUND_WORDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def allowed(cls, name: str) -> str:
    """The values the loader accepts: a Literal's choices, or a number's range and unit."""
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) is typing.Literal:
        return ", ".join(f"`{v}`" for v in typing.get_args(tp))
    kind = numeric_kind(tp)
    if kind is None:
        return ""
    spec = number_spec(cls, name)
    text = " and ".join(f"{word} {format_number(spec[key])}" for key, word in BOUND_WORDS if key in spec)
    text = ("integer " if kind is int else "") + text + (f" ({spec['unit']})" if spec.get("unit") else "")
    one, many = number_forms(tp)
    return ("number or list, each " if one and many else "each " if many else "") + text


def render() -> str:
    out = ["# Config reference", "",
           "Every field of an experiment YAML, its default and its meaning. Generated from the config",
           "dataclasses by `tools/gen_config_reference.py`. The loader rejects, with the file and field named,",
           "unknown keys, values outside `allowed`, and NaN or infinite numbers. A few bounds depend on other",
           "fields, the model or the data and are checked when the experiment is built (`iovsim check CONFIG`",
           "does that without training), again naming the field: `fl.round_deadline_s` <= `mobility.end_s` -",
           "`begin_s` - `warmup_s`; every LoRA rank (`fl.lora_rank`, `fl.lora_ranks`, a strategy's `rank` /",
           "`tier_ranks`) <= the width of the narrowest adapted layer (384 for MiniLM); `fl.batch_size` <= the",
           "largest vehicle shard; every `fl.target_modules` entry a linear layer of the model; `fl.model` a",
           "folder or a model id that loads; `channel.reuse_groups`, and a list given for a `channel.rsu_*`",
           "radio field, one entry per placed RSU; `fl.split_layer` < the model's encoder layers (6 for MiniLM).", "",
           "A relative path in a config (a file, a folder, `csv:PATH`, a strategy's `.py` file, `fl.model`,",
           "`fl.tasks[].data_dir`, `output.runs_dir`) resolves against the config file's folder, whatever the",
           "working directory; a `--set` value counts as one in the file. `fl.model` is a folder only when that",
           "folder exists or the name looks like a path, else a hub id. Not from the config's folder: an unset",
           "`output.runs_dir` (`runs` in the working directory) and `iovsim run --out DIR` (a command-line path).",
           "The run folder's `config.yaml` holds them absolute, except `sumo:` paths and a strategy's own file",
           "(`file.py:Class`, its params' files), which a resume finds through the original config's folder.", ""]
    for title, cls in SECTIONS:
        out += [f"## `{title}`", "", "| field | default | allowed | meaning |", "|---|---|---|---|"]
        for name, default, doc in field_docs(cls):
            doc = " ".join(doc.split()).replace("|", "\\|")
            default = default.replace("|", "\\|")
            out.append(f"| `{name}` | `{default}` | {allowed(cls, name)} | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if target.exists() and target.read_text() == text else 1)
    target.write_text(text)
    print(target)
