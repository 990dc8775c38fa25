"""Writes docs/config.md: every config field with its default and meaning, from the dataclasses.

Run: .venv/bin/python tools/gen_config_reference.py   (a test checks the file is up to date)
"""
from __future__ import annotations

import sys
from pathlib import Path

from iovsim.channel.config import ChannelConfig
from iovsim.config import ExperimentConfig, OutputConfig, field_docs
from iovsim.costs.tiers import DeviceTier
from iovsim.fl.config import FlConfig, TaskConfig
from iovsim.mobility.config import MobilityConfig, RsuConfig
from iovsim.strategies.config import StrategyConfig

SECTIONS = [
    ("top level", ExperimentConfig), ("mobility", MobilityConfig), ("rsu", RsuConfig),
    ("channel", ChannelConfig), ("devices[] (a list of tiers)", DeviceTier), ("fl", FlConfig),
    ("fl.tasks[] (a list)", TaskConfig), ("strategy", StrategyConfig), ("output", OutputConfig),
]


def render() -> str:
    out = ["# Config reference", "",
           "Every field of an experiment YAML, its default and its meaning. Generated from the config",
           "dataclasses by `tools/gen_config_reference.py`; unknown keys are rejected with the file and field named.", ""]
    for title, cls in SECTIONS:
        out += [f"## `{title}`", "", "| field | default | meaning |", "|---|---|---|"]
        for name, default, doc in field_docs(cls):
            doc = " ".join(doc.split()).replace("|", "\\|")
            default = default.replace("|", "\\|")
            out.append(f"| `{name}` | `{default}` | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if target.exists() and target.read_text() == text else 1)
    target.write_text(text)
    print(target)
