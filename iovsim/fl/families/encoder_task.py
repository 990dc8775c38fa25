"""The encoder classifier's task: texts tokenized once (padded to max_length), labels per example."""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from iovsim.fl.errors import DataError
from iovsim.fl.families.scores import ClassScores, ScoreSet

_TOKEN_CACHE: dict = {}


def _tokenize_cached(model, texts: list, max_length: int) -> dict:
    """Tokenize once per process for a given tokenizer, length and text list (runs and strategies reuse it)."""
    digest = hashlib.sha1(repr(texts).encode("utf-8", "replace")).hexdigest()
    key = (getattr(model.tokenizer, "name_or_path", ""), int(max_length), digest)
    if key not in _TOKEN_CACHE:
        enc = model.tokenize(texts, max_length)
        enc["lengths"] = enc["attention_mask"].sum(1)
        _TOKEN_CACHE[key] = enc
    return _TOKEN_CACHE[key]


class PaddedTask:
    """Rows padded to `max_length` in `enc` dicts (input_ids, attention_mask, lengths): batches of them.

    With `dynamic_padding` a batch is trimmed to its longest row; without it every batch keeps
    `max_length` tokens (used by the benchmark to fix the workload).
    """

    max_length: int
    dynamic_padding: bool

    def width(self, enc: dict, rows) -> int:
        """Tokens a batch of `rows` needs."""
        if not self.dynamic_padding:
            return self.max_length
        return int(enc["lengths"][torch.as_tensor(np.asarray(rows), dtype=torch.long)].max())

    def rows(self, enc: dict, labels: torch.Tensor, rows, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """input_ids, attention_mask (both `width` wide, zero-padded) and labels of `rows`."""
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        ids, mask = enc["input_ids"][rows, :width], enc["attention_mask"][rows, :width]
        if ids.shape[1] < width:
            ids, mask = F.pad(ids, (0, width - ids.shape[1])), F.pad(mask, (0, width - mask.shape[1]))
        return ids, mask, labels[rows]

    def row_widths(self, enc: dict, rows) -> np.ndarray:
        """Tokens each of `rows` needs on its own (max_length for all without dynamic padding)."""
        rows = np.asarray(rows)
        if not self.dynamic_padding:
            return np.full(len(rows), self.max_length)
        return enc["lengths"][torch.as_tensor(rows, dtype=torch.long)].numpy()

    def batch(self, enc: dict, labels: torch.Tensor, rows, device) -> tuple[dict, torch.Tensor]:
        ids, mask, y = self.rows(enc, labels, rows, self.width(enc, rows))
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}, y.to(device)


class TokenizedTask(PaddedTask):
    """A classification task's pools tokenized once (padded to max_length, cached per process)."""

    dropped = (0, 0)  # (train, test) examples left out: none, the encoder truncates every text

    def __init__(self, model, data, max_length: int, dynamic_padding: bool = True):
        if not data.label_names:
            raise DataError(f"{data.source}: instruction data (no labels) needs a causal LM (fl.model, "
                            "e.g. smollm2); the encoder classifier trains on labelled text")
        self.data = data
        self.max_length = int(max_length)
        self.dynamic_padding = dynamic_padding
        self.train = _tokenize_cached(model, data.train_text, max_length)
        self.train_labels = torch.as_tensor(data.train_labels, dtype=torch.long)
        self.test = _tokenize_cached(model, data.test_text, max_length)
        self.test_labels = torch.as_tensor(data.test_labels, dtype=torch.long)

    def score_set(self, split: str, examples=None) -> ScoreSet:
        """The rows that score `examples` of the `train` pool (a probe), or the whole `test` set."""
        if split == "test":
            return ScoreSet(self.test, self.test_labels, np.arange(len(self.test_labels)),
                            ClassScores(len(self.test_labels)))
        examples = np.asarray(examples)
        return ScoreSet(self.train, self.train_labels, examples, ClassScores(len(examples)))
