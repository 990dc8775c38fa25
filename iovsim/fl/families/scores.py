"""Score accumulators: what a probe or an evaluation adds up pass by pass, and the (loss, accuracy) it gives.

An executor runs the rows of a `ScoreSet` in passes of its own choosing (by length, several jobs
together) and hands each pass's outputs to the set's accumulator with the row ids of that pass;
the accumulator's family and task decide what a row is (an example, or one candidate answer of
an example) and how rows combine. Sums are kept in the order the passes arrive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class ScoreSet:
    """Rows to score: `rows` index `enc` (and `labels`); `scores` adds up the passes over them."""

    enc: dict
    labels: torch.Tensor
    rows: np.ndarray
    scores: object          # .add(row_ids, outputs, y); .result() -> (loss, accuracy); .num_examples


class ClassScores:
    """Classifier logits per row: summed cross entropy and correct argmax, per example."""

    def __init__(self, n: int):
        self.num_examples = int(n)
        self.loss_sum, self.correct = 0.0, 0

    def add(self, row_ids, logits: torch.Tensor, y: torch.Tensor):
        self.loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        self.correct += int((logits.argmax(-1) == y).sum())

    def result(self) -> tuple[float, float]:
        return self.loss_sum / self.num_examples, self.correct / self.num_examples

    def fresh(self) -> "ClassScores":
        return ClassScores(self.num_examples)


@dataclass
class TokenOutputs:
    """A causal LM's predictions at the scored positions of a pass: logits (T x vocab) of the tokens
    `targets` (T,), each in row `row` (T,) of the pass's `n_rows` rows and in answer `answer` (T,) of
    that row (its run of consecutive scored tokens, counted from 0: a tree row holds K answers)."""

    logits: torch.Tensor
    targets: torch.Tensor
    row: torch.Tensor
    n_rows: int
    answer: torch.Tensor | None = None

    def answer_sums(self, per_row: int) -> torch.Tensor:
        """n_rows x per_row: the summed log-probability of each answer's targets."""
        logp = -F.cross_entropy(self.logits.float(), self.targets, reduction="none")
        answer = torch.zeros_like(self.row) if self.answer is None else self.answer
        if len(answer) and int(answer.max()) >= per_row:
            raise ValueError(f"a row holds more than {per_row} answers")
        out = torch.zeros(self.n_rows * per_row, dtype=logp.dtype, device=logp.device)
        return out.index_add_(0, self.row * per_row + answer, logp).view(self.n_rows, per_row).cpu()

    def row_sums(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per row: sum of log-probabilities of its targets, its scored tokens, its tokens that are the argmax."""
        logp = -F.cross_entropy(self.logits.float(), self.targets, reduction="none")
        hit = (self.logits.argmax(-1) == self.targets).to(logp.dtype)
        out = [torch.zeros(self.n_rows, dtype=logp.dtype, device=logp.device).index_add_(0, self.row, v)
               for v in (logp, torch.ones_like(logp), hit)]
        return out[0].cpu(), out[1].cpu(), out[2].cpu()


class ChoiceScores:
    """Classification by likelihood: the K label words of example i are its candidate answers
    i*K .. i*K+K-1, `answers_per_row` to a row (K: one tree row per example, `tree_rows`; 1: one row
    per example and word, the prompt followed by that word); the label whose word's tokens have the
    highest summed log-probability is the answer. Loss: the cross entropy of the gold label under a
    softmax over those K sums, mean over examples."""

    def __init__(self, gold: np.ndarray, num_labels: int, answers_per_row: int = 1):
        self.gold = np.asarray(gold, dtype=int)
        self.num_examples = len(self.gold)
        self.k = int(num_labels)
        self.per_row = int(answers_per_row)
        self.logp = np.full((self.num_examples, self.k), np.nan)

    def fresh(self) -> "ChoiceScores":
        return ChoiceScores(self.gold, self.k, self.per_row)

    def add(self, row_ids, out: TokenOutputs, y):
        sums = out.answer_sums(self.per_row).double().numpy()
        for rid, row in zip(np.asarray(row_ids), sums):
            for a, v in enumerate(row):
                c = int(rid) * self.per_row + a
                self.logp[c // self.k, c % self.k] = v

    def result(self) -> tuple[float, float]:
        if not self.num_examples:
            return float("nan"), float("nan")
        s, gold = torch.as_tensor(self.logp), torch.as_tensor(self.gold, dtype=torch.long)
        return float(F.cross_entropy(s, gold)), float((s.argmax(-1) == gold).double().mean())


class TokenScores:
    """Answers scored token by token: loss = mean negative log-likelihood per answer token (its
    exponential is the perplexity). Accuracy: with `exact`, the share of rows whose every answer
    token is the most likely one (greedy decoding reproduces the answer exactly); otherwise the
    share of answer tokens that are the most likely one (token accuracy)."""

    def __init__(self, n_rows: int, exact: bool):
        self.num_examples = int(n_rows)
        self.exact = exact
        self.nll, self.tokens, self.hits, self.exact_rows = 0.0, 0.0, 0.0, 0

    def fresh(self) -> "TokenScores":
        return TokenScores(self.num_examples, self.exact)

    def add(self, row_ids, out: TokenOutputs, y):
        logp, n, hit = out.row_sums()
        self.nll -= float(logp.double().sum())
        self.tokens += float(n.sum())
        self.hits += float(hit.sum())
        self.exact_rows += int(((hit == n) & (n > 0)).sum())

    def result(self) -> tuple[float, float]:
        loss = self.nll / self.tokens if self.tokens else float("nan")
        if self.exact:
            return loss, self.exact_rows / self.num_examples if self.num_examples else float("nan")
        return loss, self.hits / self.tokens if self.tokens else float("nan")
