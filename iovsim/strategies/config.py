"""Which strategy runs, and its parameters."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StrategyConfig:
    name: str = "homolora"
    """A registered strategy name (`iovsim compare --list`), or `module.path:ClassName` for your own."""
    params: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the strategy's constructor."""
    per_strategy: dict[str, dict] = field(default_factory=dict)
    """For `iovsim compare`: keyword arguments by strategy name (e.g. `{ucb_dual: {ucb_c: 0.5}}`)."""

    def validate(self, err):
        if not self.name:
            err("name", "expected a strategy name")
