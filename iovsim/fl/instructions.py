"""Instruction data for causal LMs: rows of (instruction, input, output), from a JSONL file or the hub.

`jsonl:PATH`: one JSON object per line with string fields `instruction` and `output` and an
optional `input` (Alpaca's layout); blank lines are skipped; any other line stops the run with
one line naming the file and the line. `hf:NAME` (the `datasets` package, `iovsim[online]`): a
dataset with Alpaca's columns (instruction, input, output) or Dolly's (instruction, context,
response), its `train` split. NAME is a hub id (online, or from the local `datasets` cache), or a
local folder (absolute, or relative to the config file; a folder that exists wins over a hub id
of the same name): one written by `datasets`' `save_to_disk` (a Dataset, or a DatasetDict with a
`train` split), which is read offline with `load_from_disk`, or a folder of data files (JSON
lines, CSV, Parquet) that `load_dataset` reads as it reads a hub repository.

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


def read_hub(name: str, base_dir: Path | None = None) -> list[tuple[str, str, str]]:
    """The (instruction, input, output) rows of `hf:NAME` (module docstring)."""
    try:
        import datasets  # online path; optional dependency iovsim[online]
    except ImportError:
        raise DataError(f"hf:{name} needs the `datasets` package: pip install 'iovsim[online]'") from None
    folder = local_folder(name, base_dir)
    try:
        if folder is not None and saved_to_disk(folder):
            ds = datasets.load_from_disk(str(folder))
        else:
            ds = datasets.load_dataset(str(folder or name), split="train")
    except Exception as e:  # noqa: BLE001  (the hub raises many kinds: offline, not found, gated)
        raise DataError(f"hf:{name}: cannot load the dataset: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"hf:{name}: splits {', '.join(ds)}; expected a 'train' split")
        ds = ds["train"]
    return _hub_rows(name, ds)


def local_folder(name: str, base_dir: Path | None) -> Path | None:
    """The folder `name` names here (absolute, or relative to `base_dir`), if there is one."""
    p = Path(name).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p if p.is_dir() else None


def saved_to_disk(folder: Path) -> bool:
    """Written by `save_to_disk`: a Dataset's state.json, or a DatasetDict's dataset_dict.json."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _hub_rows(name: str, ds) -> list[tuple[str, str, str]]:
    for cols in _HF_COLUMNS:
        if cols["instruction"] in ds.column_names and cols["output"] in ds.column_names:
            inp = ds[cols["input"]] if cols["input"] in ds.column_names else [""] * len(ds)
            rows = list(zip(ds[cols["instruction"]], inp, ds[cols["output"]]))
            for n, (ins, i, out) in enumerate(rows):
                for col, v in ((cols["instruction"], ins), (cols["output"], out)):
                    if not isinstance(v, str) or not v.strip():
                        raise DataError(f"hf:{name}: row {n}: expected a non-empty string in column '{col}', got {v!r}")
                if i is not None and not isinstance(i, str):
                    raise DataError(f"hf:{name}: row {n}: expected a string in column '{cols['input']}', got {i!r}")
            return [(ins, i or "", out) for ins, i, out in rows]
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
