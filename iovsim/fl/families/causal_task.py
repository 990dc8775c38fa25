"""A causal LM's task: prompts and answers as token rows, trained on the answer tokens only.

Rows are `enc` dicts (input_ids, attention_mask, lengths; padded to max_length) with token labels
of the same width: the answer's token ids, -100 elsewhere (prompt and padding), as transformers'
causal LM loss expects. Position t's output predicts token t+1.

Scoring (`score_set`), see `iovsim.fl.families.scores`:
- classification, `likelihood` (default): one tree row per example, the prompt once and then each
  label word in a branch of its own (`tree_rows`: one forward per example instead of one per label
  word); the label with the largest summed log-probability of its word's tokens is the answer;
- classification, `generate`: the gold row (prompt, label word, end token); correct when greedy
  decoding would produce exactly that word and then stop, i.e. every answer token is the most
  likely next token at its position (one teacher-forced pass gives what greedy decoding would);
- instruction data: the gold row; loss = mean NLL per response token (perplexity = exp(loss)),
  accuracy = the share of response tokens that are the most likely next token.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from iovsim.fl.families import prompts, tree_rows
from iovsim.fl.families.encoder_task import PaddedTask
from iovsim.fl.families.scores import ChoiceScores, ScoreSet, TokenScores

CAUSAL_EVALS = ("likelihood", "generate")


def head_positions(labels: torch.Tensor) -> torch.Tensor:
    """Where a batch's output layer runs (rows x width-1, bool): position t, whose output predicts
    token t+1, where that token is labelled. `CausalLM.outputs` applies the LM head there and nowhere
    else, and the cost model charges the same positions (`head_tokens_per_row`)."""
    return labels[:, 1:] != -100


def answer_index(pos: torch.Tensor) -> torch.Tensor:
    """Per head position of `pos` (rows x width-1, bool; in row-major order, as `pos.nonzero()`): the
    index of its answer in its row, an answer being a run of consecutive head positions (a gold row
    holds one, a tree row K, one per label word, `tree_rows`)."""
    starts = pos & ~F.pad(pos[:, :-1], (1, 0), value=False)
    return (starts.long().cumsum(1) - 1)[pos]


def pack(prompt_rows: list[list[int]], answer_rows: list[list[int]], width: int, pad_id: int):
    """(enc, labels): prompt + answer per row, right-padded to `width`; labels on the answer only."""
    n = len(prompt_rows)
    ids = torch.full((n, width), int(pad_id), dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    lengths = torch.zeros(n, dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompt_rows, answer_rows)):
        row = p + a
        ids[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
        labels[i, len(p):len(row)] = torch.as_tensor(a, dtype=torch.long)
        lengths[i] = len(row)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask, "lengths": lengths}, labels


class CausalTask(PaddedTask):
    """Prompt rows of a classification or instruction task for a causal LM (see the module docstring)."""

    choice_layout = "tree"
    """Likelihood scoring's rows: "tree" (one row per example, `tree_rows`), or "rows" (one row per
    example and label word, K forwards per example: the reference the equivalence tests and
    tools/bench_causal_eval.py compare the tree with)."""

    def __init__(self, model, data, max_length: int, causal_eval: str = "likelihood", dynamic_padding: bool = True):
        self.max_length = int(max_length)
        self.dynamic_padding = dynamic_padding
        self.causal_eval = causal_eval
        self.choice_layout = getattr(model, "choice_layout", self.choice_layout)  # the decoder's, if it says
        tok = model.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.classify = bool(data.label_names)
        split = self._class_rows if self.classify else self._instruction_rows
        (tr_p, tr_a, tr_keep), (te_p, te_a, te_keep) = (split(tok, data, "train"), split(tok, data, "test"))
        self.dropped = (int((~tr_keep).sum()), int((~te_keep).sum()))
        self.data = dataclasses.replace(
            data, train_text=[t for t, k in zip(data.train_text, tr_keep) if k], train_labels=data.train_labels[tr_keep],
            test_text=[t for t, k in zip(data.test_text, te_keep) if k], test_labels=data.test_labels[te_keep])
        self.prompts = {"train": tr_p, "test": te_p}
        self.train, self.train_labels = pack(tr_p, tr_a, self.max_length, self.pad_id)
        self.test, self.test_labels = pack(te_p, te_a, self.max_length, self.pad_id)
        self._test_set, self._test_key = None, None

    # ---------------------------------------------------------------- rows
    def _class_rows(self, tok, data, split: str):
        spec = prompts.class_prompt(data.dataset, data.label_names)
        self.words = prompts.word_ids(tok, spec.label_words)
        answers = prompts.answer_ids(tok, spec.label_words)
        texts = [prompts.example_text(data.dataset, t) for t in getattr(data, f"{split}_text")]
        budget = max(len(a) for a in answers)  # every label's answer fits after the same prompt
        self.tree_width = tree_rows.width(self.max_length - budget, self.words)  # the longest prompt's tree row
        rows = prompts.build_prompts(tok, [spec.instruction] * len(texts), texts, [budget] * len(texts),
                                     self.max_length)
        keep = np.array([r is not None for r in rows], dtype=bool)
        labels = getattr(data, f"{split}_labels")
        return [r for r in rows if r is not None], [answers[int(y)] for y, k in zip(labels, keep) if k], keep

    def _instruction_rows(self, tok, data, split: str):
        items = getattr(data, f"{split}_text")          # (instruction, input, output)
        fixed = [ins if inp else "" for ins, inp, _ in items]
        texts = [inp if inp else ins for ins, inp, _ in items]
        answers = prompts.answer_ids(tok, [out for *_, out in items])
        rows = prompts.build_prompts(tok, fixed, texts, [len(a) for a in answers], self.max_length)
        keep = np.array([r is not None for r in rows], dtype=bool)
        return [r for r in rows if r is not None], [a for a, k in zip(answers, keep) if k], keep

    def rows(self, enc: dict, labels: torch.Tensor, rows, width: int):
        """input_ids, attention_mask and token labels of `rows`, `width` wide (labels padded with -100)."""
        ids, mask, _ = super().rows(enc, labels, rows, width)
        y = labels[torch.as_tensor(np.asarray(rows), dtype=torch.long), :width]
        if y.shape[1] < width:
            y = F.pad(y, (0, width - y.shape[1]), value=-100)
        return ids, mask, y

    def width(self, enc: dict, rows) -> int:
        """Tokens a batch of `rows` needs; without dynamic padding the set's full width (max_length,
        or the longest tree row a prompt of max_length allows)."""
        return super().width(enc, rows) if self.dynamic_padding else int(enc["input_ids"].shape[1])

    def row_widths(self, enc: dict, rows) -> np.ndarray:
        if self.dynamic_padding:
            return super().row_widths(enc, rows)
        return np.full(len(np.asarray(rows)), int(enc["input_ids"].shape[1]))

    def head_tokens_per_row(self) -> float:
        """Mean positions per training row the LM head runs on (`head_positions`): the answer's tokens
        and its end token; what `costs.shape.decoder_shape` charges the vocabulary projection for."""
        if not len(self.train_labels):
            return 0.0
        return float(head_positions(self.train_labels).sum(1).double().mean())

    # ---------------------------------------------------------------- scoring
    def _choices(self, split: str, examples: np.ndarray) -> ScoreSet:
        """Example i's tree row i: its prompt once, then each label word in its own branch (labels on the
        words); with `choice_layout` "rows", its rows i*K .. i*K+K-1: the prompt followed by each word."""
        k = len(self.words)
        gold = (self.data.train_labels if split == "train" else self.data.test_labels)[np.asarray(examples, dtype=int)]
        if self.choice_layout == "tree":
            prompt_rows = [self.prompts[split][int(e)] for e in examples]
            enc, labels = tree_rows.pack(prompt_rows, self.words, self.tree_width, self.pad_id)
            return ScoreSet(enc, labels, np.arange(len(prompt_rows)), ChoiceScores(gold, k, answers_per_row=k))
        prompt_rows = [self.prompts[split][int(e)] for e in examples for _ in range(k)]
        enc, labels = pack(prompt_rows, [w for _ in examples for w in self.words], self.max_length, self.pad_id)
        return ScoreSet(enc, labels, np.arange(len(prompt_rows)), ChoiceScores(gold, k))

    def score_set(self, split: str, examples=None) -> ScoreSet:
        """The rows that score `examples` of the train pool (a probe), or the whole test set."""
        if split == "test":
            if self._test_set is None or self._test_key != (len(self.test_labels), self.choice_layout):
                self._test_set = self._score_set("test", np.arange(len(self.test_labels)))
                self._test_key = (len(self.test_labels), self.choice_layout)
            s = self._test_set  # the rows are built once; the scores start afresh at each evaluation
            return ScoreSet(s.enc, s.labels, s.rows, s.scores.fresh())
        return self._score_set("train", np.asarray(examples, dtype=int))

    def _score_set(self, split: str, examples: np.ndarray) -> ScoreSet:
        if self.classify and self.causal_eval == "likelihood":
            return self._choices(split, examples)
        enc, labels = (self.train, self.train_labels) if split == "train" else (self.test, self.test_labels)
        return ScoreSet(enc, labels, examples, TokenScores(len(examples), exact=self.classify))
