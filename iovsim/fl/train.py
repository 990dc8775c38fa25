"""Local training and evaluation on real data.

`LocalExecutor.train(jobs)` is the one call through which a round's vehicles train: a batched or
distributed executor replaces it by implementing the same method. Each job carries everything
it needs (start state, rank, steps, data indices, seed), so jobs are independent and
reproducible in any order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from iovsim.fl.data import TaskData
from iovsim.fl.model import AdapterModel


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
    seed: list[int]                 # RNG seed sequence for batches and dropout-free training
    options: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    vehicle_id: str
    task: int
    state: dict
    rank: int
    num_samples: int
    loss_before: float              # loss on a probe batch of local data before training
    loss_after: float               # the same probe batch after training
    steps: int


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    num_examples: int


class TokenizedTask:
    """A task's pools tokenized once (padded to max_length; batches are trimmed to their longest row)."""

    def __init__(self, model: AdapterModel, data: TaskData, max_length: int):
        self.data = data
        self.train = model.tokenize(data.train_text, max_length)
        self.train_labels = torch.as_tensor(data.train_labels, dtype=torch.long)
        self.test = model.tokenize(data.test_text, max_length)
        self.test_labels = torch.as_tensor(data.test_labels, dtype=torch.long)

    @staticmethod
    def batch(enc: dict, labels: torch.Tensor, rows, device) -> tuple[dict, torch.Tensor]:
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        mask = enc["attention_mask"][rows]
        width = int(mask.sum(1).max())
        return ({"input_ids": enc["input_ids"][rows, :width].to(device), "attention_mask": mask[:, :width].to(device)},
                labels[rows].to(device))


class LocalExecutor:
    """Trains jobs one after another in this process on the shared AdapterModel."""

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

    def _train_one(self, job: TrainJob) -> TrainResult:
        model, task = self.model, self.tasks[job.task]
        # Load first: a new rank's adapter draws its init from torch's RNG, which must not shift the
        # dropout masks of this job (a resumed run creates adapters in a different round).
        head, lora = model.load(job.state, job.rank)
        gen = np.random.default_rng(job.seed)
        torch.manual_seed(int(gen.integers(2**31)))
        opt = torch.optim.AdamW([{"params": lora, "lr": job.learning_rate},
                                 {"params": head.parameters(), "lr": job.head_learning_rate}], weight_decay=0.0)
        idx = np.asarray(job.indices)
        probe_rows = gen.choice(idx, size=min(job.batch_size, len(idx)), replace=False)
        probe = task.batch(task.train, task.train_labels, probe_rows, model.device)
        prune_lambda = float(job.options.get("prune_lambda", 0.0))
        keep = int(job.options.get("prune_keep", job.rank))
        model.peft.train()
        with torch.no_grad():
            loss_before = float(F.cross_entropy(head(model.encode(probe[0])), probe[1]))
        for _ in range(job.steps):
            rows = gen.choice(idx, size=min(job.batch_size, len(idx)), replace=False)
            x, y = task.batch(task.train, task.train_labels, rows, model.device)
            loss = F.cross_entropy(head(model.encode(x)), y)
            if prune_lambda > 0 and keep < job.rank:
                loss = loss + prune_lambda * _lora_tail(lora, keep)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            loss_after = float(F.cross_entropy(head(model.encode(probe[0])), probe[1]))
        state = model.export(job.rank, head, delta_from=job.state)
        for p in lora:
            p.requires_grad_(False)
        rank = job.rank
        if "prune_gamma" in job.options:  # HetLoRA: drop a tail that training left small
            from iovsim.fl.aggregate import self_prune

            state, rank = self_prune(state, rank, float(job.options["prune_gamma"]),
                                     float(job.options.get("prune_tol", 0.1)))
        return TrainResult(job.vehicle_id, job.task, state, rank, len(idx), loss_before, loss_after, job.steps)

    @torch.no_grad()
    def evaluate(self, task_index: int, state: dict, rank: int, batch_size: int = 64) -> EvalResult:
        model, task = self.model, self.tasks[task_index]
        head, lora = model.load(state, rank)
        for p in lora:
            p.requires_grad_(False)
        model.peft.eval()
        n = len(task.test_labels)
        correct, loss_sum = 0, 0.0
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(n, start + batch_size))
            x, y = task.batch(task.test, task.test_labels, rows, model.device)
            logits = head(model.encode(x))
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
        return EvalResult(correct / n, loss_sum / n, n)


def _lora_tail(lora: list[torch.nn.Parameter], keep: int) -> torch.Tensor:
    """Squared norm of rank components beyond `keep`: rows of each A (r x in), columns of each B (out x r)."""
    total = lora[0].new_zeros(())
    for a, b in zip(lora[0::2], lora[1::2]):
        total = total + a[keep:].pow(2).sum() + b[:, keep:].pow(2).sum()
    return total
