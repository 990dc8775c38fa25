"""Instruction data for causal LMs: rows of (instruction, input, output), from a JSONL file or the hub.

`jsonl:PATH`: one JSON object per line with string fields `instruction` and `output` and an
optional `input` (Alpaca's layout); blank lines are skipped; any other line stops the run with
one line naming the file and the line. `hf:NAME` (online, `datasets`): a hub dataset with
Alpaca's columns (instruction, input, output) or Dolly's (instruction, context, response).

Held out: `test_samples` rows drawn at random (at most half), fixed by the seed; the rest, shuffled
and capped at `max_samples`, is the training pool. There are no labels: vehicles' shards are equal
random shares of the pool (`iovsim.fl.data.task_shards`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from iovsim.fl.errors import DataError

FIELDS = ("instruction", "input", "output")
_HF_COLUMNS = ({"instruction": "instruction", "input": "input", "output": "output"},        # Alpaca
               {"instruction": "instruction", "input": "context", "output": "response"})   # Dolly


def read_jsonl(path: Path) -> list[tuple[str, str, str]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (JSONL with instruction, input, output expected)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rows.append(_row(path, n, line))
    if not rows:
        raise DataError(f"{path}: no rows (expected one JSON object per line with instruction, input, output)")
    return rows


def _row(path: Path, n: int, line: str) -> tuple[str, str, str]:
    expected = "expected a JSON object with string fields instruction, output and optionally input"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{n}: {expected}; not JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{n}: {expected}, got a {type(obj).__name__}")
    for key in ("instruction", "output"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise DataError(f"{path}:{n}: {expected}; field '{key}' is "
                            + ("missing" if key not in obj else f"{obj[key]!r}"))
    if not isinstance(obj.get("input", ""), str):
        raise DataError(f"{path}:{n}: {expected}; field 'input' is {obj['input']!r}")
    return obj["instruction"], obj.get("input", ""), obj["output"]


def read_hub(name: str) -> list[tuple[str, str, str]]:
    try:
        from datasets import load_dataset  # online path; optional dependency iovsim[online]
    except ImportError:
        raise DataError(f"hf:{name} needs the `datasets` package: pip install 'iovsim[online]'") from None
    try:
        ds = load_dataset(name, split="train")
    except Exception as e:  # noqa: BLE001  (the hub raises many kinds: offline, not found, gated)
        raise DataError(f"hf:{name}: cannot load the dataset: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
    for cols in _HF_COLUMNS:
        if cols["instruction"] in ds.column_names and cols["output"] in ds.column_names:
            inp = ds[cols["input"]] if cols["input"] in ds.column_names else [""] * len(ds)
            return list(zip(ds[cols["instruction"]], inp, ds[cols["output"]]))
    raise DataError(f"hf:{name}: columns {ds.column_names}; expected Alpaca's (instruction, input, output) "
                    "or Dolly's (instruction, context, response)")


def split_rows(rows: list, test_samples: int, max_samples: int, rng) -> tuple[list, list]:
    """(train, test): `test_samples` rows at random (at most half) held out, the rest shuffled and capped."""
    rows = list(dict.fromkeys(rows))  # exact duplicates would leak into the test split
    order = rng.permutation(len(rows))
    n_test = min(int(test_samples), len(rows) // 2)
    test, train = np.sort(order[:n_test]), order[n_test:]
    if max_samples and len(train) > max_samples:
        train = train[:max_samples]
    return [rows[i] for i in train], [rows[i] for i in test]
