"""Local training and evaluation on real data: the jobs, the tokenized tasks and the sequential executor.

`executor.train(jobs, on_done=None) -> list[TrainResult]` is the one call through which a round's
vehicles train; `executor.evaluate(task_index, state, rank, batch_size)` scores a state on a task's
test set. `LocalExecutor` (sequential, the reference) trains the jobs one after another through peft;
`iovsim.fl.batched.BatchedExecutor` trains them together (the default, see `iovsim.fl.executors`).
Each job carries everything it needs (start state, rank, steps, data indices, seed), so jobs are
independent and reproducible in any order.

Both executors train with the frozen encoder in eval mode (no dropout), so a job's result is a
function of its inputs alone and the two executors agree to rounding. The bandit's loss before and
after training, and the accuracy after it, are measured in eval mode on a held-out part of the
vehicle's own shard (`probe_size`), which the job does not train on.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from iovsim.fl.data import TaskData
from iovsim.fl.model import AdapterModel

PROBE_FRACTION = 0.1
"""Share of a vehicle's shard held out to measure loss before/after training (at least one batch,
at most half the shard)."""
PAD_SLACK = 0.1
"""Forward-only passes (probe, evaluation) are cut so that padding adds at most this share of a
pass's real tokens (see length_passes)."""
MIN_PASS_ROWS = 16
"""Rows a forward-only pass takes before PAD_SLACK may cut it (tiny passes waste more than padding)."""


@dataclass
class TrainJob:
    vehicle_id: str
    task: int                       # task index
    state: dict                     # adapter to start from (already at `rank`)
    rank: int
    steps: int
    batch_size: int
    learning_rate: float
    head_learning_rate: float
    indices: np.ndarray             # rows of the task's training pool this vehicle holds
    seed: list[int]                 # RNG seed sequence for the probe split and the batches
    options: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    vehicle_id: str
    task: int
    state: dict
    rank: int
    num_samples: int                # examples the update was trained on (shard minus the probe)
    loss_before: float              # eval-mode loss on the held-out probe rows, start state
    loss_after: float               # the same rows, trained state
    steps: int
    acc_after: float = float("nan")  # eval-mode accuracy (fraction correct) on the probe rows, trained state


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    num_examples: int


_TOKEN_CACHE: dict = {}


def _tokenize_cached(model: AdapterModel, texts: list, max_length: int) -> dict:
    """Tokenize once per process for a given tokenizer, length and text list (runs and strategies reuse it)."""
    digest = hashlib.sha1(repr(texts).encode("utf-8", "replace")).hexdigest()
    key = (getattr(model.tokenizer, "name_or_path", ""), int(max_length), digest)
    if key not in _TOKEN_CACHE:
        enc = model.tokenize(texts, max_length)
        enc["lengths"] = enc["attention_mask"].sum(1)
        _TOKEN_CACHE[key] = enc
    return _TOKEN_CACHE[key]


class TokenizedTask:
    """A task's pools tokenized once (padded to max_length, cached per process).

    With `dynamic_padding` a batch is trimmed to its longest row; without it every batch keeps
    `max_length` tokens (used by the benchmark to fix the workload).
    """

    def __init__(self, model: AdapterModel, data: TaskData, max_length: int, dynamic_padding: bool = True):
        self.data = data
        self.max_length = int(max_length)
        self.dynamic_padding = dynamic_padding
        self.train = _tokenize_cached(model, data.train_text, max_length)
        self.train_labels = torch.as_tensor(data.train_labels, dtype=torch.long)
        self.test = _tokenize_cached(model, data.test_text, max_length)
        self.test_labels = torch.as_tensor(data.test_labels, dtype=torch.long)

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


def probe_size(n: int, batch_size: int) -> int:
    """Held-out rows of an `n`-row shard: PROBE_FRACTION of it, at least one batch, at most half."""
    return max(1, min(max(math.ceil(PROBE_FRACTION * n), batch_size), n // 2))


def split_probe(job: TrainJob) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """The job's RNG, its training rows and its held-out probe rows (fixed by the job's seed)."""
    gen = np.random.default_rng(job.seed)
    idx = np.asarray(job.indices)
    probe = np.sort(gen.choice(idx, size=probe_size(len(idx), job.batch_size), replace=False))
    return gen, np.setdiff1d(idx, probe), probe


def length_passes(widths, max_rows: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Forward-only passes over rows of the given widths: lists of positions into `widths`, by width.

    Rows are sorted by width (stable) and cut greedily: a pass ends before it would hold more than
    `max_rows` rows or `max_tokens` padded tokens (rows x its widest row; a single row always fits),
    or, once it holds MIN_PASS_ROWS rows, before padding would exceed PAD_SLACK of its real tokens.
    Probe and test scores are per row, so the plan moves only float rounding; what it saves is the
    padding that a fixed-size chunk of mixed lengths carries.
    """
    widths = np.asarray(widths)
    order = np.argsort(widths, kind="stable")
    out, start, real = [], 0, 0
    for i, pos in enumerate(order):
        w, n = int(widths[pos]), i - start + 1
        if n > 1 and (n > max_rows or (max_tokens is not None and n * w > max_tokens)
                      or (n > MIN_PASS_ROWS and n * w > (1 + PAD_SLACK) * (real + w))):
            out.append(order[start:i])
            start, real = i, 0
        real += w
    return out + ([order[start:]] if len(order) > start else [])


def draw_batch(gen: np.random.Generator, train_rows: np.ndarray, batch_size: int) -> np.ndarray:
    """One step's rows: a uniform draw without replacement (batch composition never depends on lengths)."""
    return gen.choice(train_rows, size=min(batch_size, len(train_rows)), replace=False)


def finish_state(job: TrainJob, state: dict) -> tuple[dict, int]:
    """Post-training steps a strategy asked for (HetLoRA: drop a tail that training left small)."""
    if "prune_gamma" in job.options:
        from iovsim.fl.aggregate import self_prune

        # without prune_tol, self_prune's own default (one place for it)
        tol = {"tol": float(job.options["prune_tol"])} if "prune_tol" in job.options else {}
        return self_prune(state, job.rank, float(job.options["prune_gamma"]), **tol)
    return state, job.rank


def lora_tail(pairs, keep: int) -> torch.Tensor:
    """Squared norm of rank components beyond `keep`: rows of each A (r x in), columns of each B (out x r)."""
    total = None
    for a, b in pairs:
        term = a[keep:].pow(2).sum() + b[:, keep:].pow(2).sum()
        total = term if total is None else total + term
    return total


class LocalExecutor:
    """Trains jobs one after another in this process on the shared AdapterModel (the reference)."""

    def __init__(self, model: AdapterModel, tasks: list[TokenizedTask]):
        self.model = model
        self.tasks = tasks

    def train(self, jobs: list[TrainJob], on_done=None) -> list[TrainResult]:
        results = []
        for job in jobs:
            results.append(self._train_one(job))
            if on_done is not None:
                on_done(job)
        return results

    def _probe_scores(self, head, task: TokenizedTask, rows: np.ndarray, chunk: int = 256) -> tuple[float, float]:
        """Mean loss and accuracy on the probe rows (passes by length, see length_passes)."""
        total, correct = 0.0, 0
        for part in length_passes(task.row_widths(task.train, rows), chunk):
            x, y = task.batch(task.train, task.train_labels, rows[part], self.model.device)
            logits = head(self.model.encode(x))
            total += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
        return total / len(rows), correct / len(rows)

    def _train_one(self, job: TrainJob) -> TrainResult:
        model, task = self.model, self.tasks[job.task]
        head, lora = model.load(job.state, job.rank)
        gen, train_rows, probe_rows = split_probe(job)
        opt = torch.optim.AdamW([{"params": lora, "lr": job.learning_rate},
                                 {"params": head.parameters(), "lr": job.head_learning_rate}], weight_decay=0.0)
        prune_lambda = float(job.options.get("prune_lambda", 0.0))
        keep = int(job.options.get("prune_keep", job.rank))
        model.peft.eval()
        with torch.no_grad():
            loss_before, _ = self._probe_scores(head, task, probe_rows)
        for _ in range(job.steps):
            x, y = task.batch(task.train, task.train_labels, draw_batch(gen, train_rows, job.batch_size), model.device)
            loss = F.cross_entropy(head(model.encode(x)), y)
            if prune_lambda > 0 and keep < job.rank:
                loss = loss + prune_lambda * lora_tail(zip(lora[0::2], lora[1::2]), keep)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            loss_after, acc_after = self._probe_scores(head, task, probe_rows)
        state = model.export(job.rank, head, delta_from=job.state)
        for p in lora:
            p.requires_grad_(False)
        state, rank = finish_state(job, state)
        return TrainResult(job.vehicle_id, job.task, state, rank, len(train_rows), loss_before, loss_after, job.steps,
                           acc_after)

    @torch.no_grad()
    def evaluate(self, task_index: int, state: dict, rank: int, batch_size: int = 64) -> EvalResult:
        model, task = self.model, self.tasks[task_index]
        head, lora = model.load(state, rank)
        for p in lora:
            p.requires_grad_(False)
        model.peft.eval()
        n = len(task.test_labels)
        correct, loss_sum = 0, 0.0
        for part in length_passes(task.row_widths(task.test, np.arange(n)), batch_size):
            x, y = task.batch(task.test, task.test_labels, part, model.device)
            logits = head(model.encode(x))
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
        return EvalResult(correct / n, loss_sum / n, n)


SequentialExecutor = LocalExecutor
