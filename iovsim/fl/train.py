"""Local training and evaluation on real data: the jobs, the tokenized tasks and the sequential executor.

`executor.train(jobs, on_done=None) -> list[TrainResult]` is the one call through which a round's
vehicles train; `executor.evaluate(task_index, state, rank, batch_size)` scores a state on a task's
test set. `LocalExecutor` (sequential, the reference) trains the jobs one after another through peft;
`iovsim.fl.batched.BatchedExecutor` trains them together (the default, see `iovsim.fl.executors`).
Each job carries everything it needs (start state, rank, steps, data indices, seed), so jobs are
independent and reproducible in any order.

Both executors train with the frozen base in eval mode (no dropout), so a job's result is a
function of its inputs alone and the two executors agree to rounding. The bandit's loss before and
after training, and the accuracy after it, are measured in eval mode on a held-out part of the
vehicle's own shard (`probe_size`), which the job does not train on.

What the model computes (features, outputs, loss) and how a task is tokenized and scored belong to
the model's family (`iovsim.fl.families`); the executors only run jobs through that seam.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

# The encoder's task, under the name the executors' callers know it by.
from iovsim.fl.families.encoder_task import TokenizedTask  # noqa: F401

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
    """Trains jobs one after another in this process on the shared family model (the reference),
    through the peft adapter of each job's rank."""

    def __init__(self, model, tasks: list):
        self.model = model
        self.tasks = tasks

    def train(self, jobs: list[TrainJob], on_done=None) -> list[TrainResult]:
        results = []
        for job in jobs:
            results.append(self._train_one(job))
            if on_done is not None:
                on_done(job)
        return results

    def _score(self, head, task, sset, chunk: int) -> tuple[float, float]:
        """(loss, accuracy) of a ScoreSet, its rows in passes by length (see length_passes)."""
        model = self.model
        for part in length_passes(task.row_widths(sset.enc, sset.rows), chunk):
            rows = sset.rows[part]
            x, y = task.batch(sset.enc, sset.labels, rows, model.device)
            sset.scores.add(rows, model.outputs(head, model.features(x), y), y)
        return sset.scores.result()

    def _probe_scores(self, head, task, rows: np.ndarray, chunk: int = 256) -> tuple[float, float]:
        """Mean loss and accuracy on the probe rows."""
        return self._score(head, task, task.score_set("train", rows), chunk)

    def _train_one(self, job: TrainJob) -> TrainResult:
        model, task = self.model, self.tasks[job.task]
        head, lora = model.load(job.state, job.rank)
        gen, train_rows, probe_rows = split_probe(job)
        groups = [{"params": lora, "lr": job.learning_rate}]
        if model.head_parameters(head):
            groups.append({"params": model.head_parameters(head), "lr": job.head_learning_rate})
        opt = torch.optim.AdamW(groups, weight_decay=0.0)
        prune_lambda = float(job.options.get("prune_lambda", 0.0))
        keep = int(job.options.get("prune_keep", job.rank))
        model.train_mode()
        with torch.no_grad():
            loss_before, _ = self._probe_scores(head, task, probe_rows)
        for _ in range(job.steps):
            x, y = task.batch(task.train, task.train_labels, draw_batch(gen, train_rows, job.batch_size), model.device)
            loss = model.loss(model.outputs(head, model.features(x), y), y)
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
        model.train_mode()
        sset = task.score_set("test")
        loss, acc = self._score(head, task, sset, batch_size)
        return EvalResult(acc, loss, sset.scores.num_examples)


SequentialExecutor = LocalExecutor
