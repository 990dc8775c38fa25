"""What the trackers log, as plain values: one round's scalars, the config flattened to parameters."""
from __future__ import annotations

import json
import math
import re

# metrics.csv columns that identify a row rather than measure something.
_KEYS = ("round", "task")


def metric_name(task: str, column: str) -> str:
    """`task/column`, with characters MLflow rejects in a key replaced by `_`."""
    return re.sub(r"[^\w\-. /]", "_", f"{task}/{column}")


def round_scalars(rows: list[dict]) -> dict[str, float]:
    """`{task/column: value}` for every numeric column of metrics.csv's rows of one round (blank
    cells, e.g. the mean rank of a task without participants, are left out)."""
    out = {}
    for row in rows:
        for col, v in row.items():
            if col in _KEYS or v is None or v == "" or isinstance(v, str):
                continue
            out[metric_name(str(row["task"]), col)] = float(v)
    return out


def flatten(tree, prefix: str = "") -> dict[str, str | int | float | bool]:
    """A nested config as `{dotted.key: scalar}`; list items by index (`fl.tasks.0.name`), lists of
    plain values and empty containers as JSON text, None as `null`."""
    if isinstance(tree, dict) and tree:
        out = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(tree, (list, tuple)) and tree and any(isinstance(v, (dict, list, tuple)) for v in tree):
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}.{i}"))
        return out
    if isinstance(tree, (dict, list, tuple)):
        return {prefix: json.dumps(list(tree) if not isinstance(tree, dict) else tree)}
    if tree is None:
        return {prefix: "null"}
    if isinstance(tree, float) and not math.isfinite(tree):
        return {prefix: str(tree)}
    return {prefix: tree}
