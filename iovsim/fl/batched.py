"""The batched executor: a round's jobs trained together through one shared, frozen base model.

Every step, the active jobs' batches are concatenated and go through the base in one forward and
one backward (large matmuls on the shared base weights). Forward hooks on the adapted nn.Linear
layers add each job's LoRA path, B_j (A_j x) * alpha / r_j, with batched matmuls over the stacked
adapters (padded to the largest rank: the padded rows of A and columns of B are zero and receive
zero gradient, so the result is exact); in fp32 the second matmul adds it to the layer's output
itself (baddbmm), so the path makes no full-size temporaries; a job's `<module>.delta`, when it has
one, is added on its rows. Each job keeps its own head (when its family has one), its own loss and its own AdamW state
(one optimizer, per-tensor state), so a job's result equals the sequential executor's to rounding.
The family (iovsim.fl.families) computes the features, the outputs and the loss; this file only
batches. Jobs with more steps keep
going after shorter ones stop; a job absent from a step gets no gradient and no optimizer update.

Passes hold at most `max_tokens` tokens (rows x width); batches are ordered by width before they
are cut into passes, which lowers padding without changing which samples form a job's batch.
A round's jobs train in groups whose trainable state (each job's adapter and head, their gradients
and AdamW's two moments: 16 bytes a parameter) stays within `max_trainable_bytes`: a causal LM's
rank-16 adapter is 78 MB of it, so 64 participants would otherwise hold 5 GB at once. Jobs are
independent (own batches, own optimizer state), so the grouping moves at most float rounding, where
it changes which jobs share a pass.
No peft adapter is created: one base model is in memory whatever the number of jobs.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
import torch.nn.functional as F

from iovsim.costs.memory import TRAINABLE_BYTES_PER_PARAM  # the memory check's count of a job's state
from iovsim.fl.train import (EvalResult, TrainJob, TrainResult, draw_batch, finish_state, length_passes, lora_tail,
                             split_probe)


class _Slot:
    """One job's (or one evaluated state's) adapter, head and delta on the device."""

    def __init__(self, model, state: dict, rank: int, trainable: bool):
        dev = model.device

        def leaf(t):
            return t.detach().to(dev, torch.float32).clone().requires_grad_(trainable)

        self.rank = int(rank)
        self.scale = model.lora_alpha / self.rank
        self.A = [leaf(state[f"{m}.lora_A"]) for m in model.module_names]
        self.B = [leaf(state[f"{m}.lora_B"]) for m in model.module_names]
        self.delta = [state[f"{m}.delta"].to(dev, torch.float32) if f"{m}.delta" in state else None
                      for m in model.module_names]
        self.head = model.slot_head(state, leaf)   # the family's trainable tensors besides LoRA (may be none)

    def export(self, model, start: dict) -> dict:
        out = {}
        for m, a, b in zip(model.module_names, self.A, self.B):
            out[f"{m}.lora_A"] = a.detach().cpu().clone()
            out[f"{m}.lora_B"] = b.detach().cpu().clone()
        out.update({k: v for k, v in start.items() if k.endswith(".delta")})
        out.update(model.export_head(self.head))
        return out


class BatchedExecutor:
    """Trains a round's jobs together on the shared family model; same seam as LocalExecutor."""

    def __init__(self, model, tasks: list, precision: str = "fp32",
                 max_tokens: int = 8192, fused_lora: bool = True, max_trainable_bytes: float = float("inf")):
        """`fused_lora`: in fp32 the LoRA path is added by its second matmul itself (`_lora_into`);
        False computes it apart and adds it (`_lora_alone`: the previous hook, kept for comparison;
        the same numbers, tested)."""
        self.model = model
        self.tasks = tasks
        self.precision = precision
        self.max_tokens = int(max_tokens)
        self.max_trainable_bytes = float(max_trainable_bytes)
        self.fused_lora = bool(fused_lora)
        self._segments = None  # (slots, rows per segment) of the pass in flight
        for i, lin in enumerate(model.target_linears().values()):
            lin.register_forward_hook(functools.partial(self._add_lora, i))

    # ------------------------------------------------------------------ the pass
    def _autocast(self):
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.model.device.type, dtype=torch.bfloat16)

    def _add_lora(self, module_index: int, module, inputs, out):
        if self._segments is None:
            return None
        slots, sizes = self._segments
        x = inputs[0]
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            rmax = max(s.rank for s in slots)
            a = torch.stack([F.pad(s.A[module_index], (0, 0, 0, rmax - s.rank)) for s in slots])
            b = torch.stack([F.pad(s.B[module_index], (0, rmax - s.rank)) for s in slots])
            scale = x.new_tensor([s.scale for s in slots]).view(-1, 1, 1)
            deltas = any(s.delta[module_index] is not None for s in slots)
            if self.fused_lora and out.dtype == torch.float32 and not deltas:
                return self._lora_into(out, x, a, b, scale, sizes)
            y = self._lora_alone(x, a, b, scale, sizes)
            if deltas:
                parts = torch.split(x, sizes)
                y = y + torch.cat([p @ s.delta[module_index].T if s.delta[module_index] is not None
                                   else p.new_zeros(*p.shape[:-1], y.shape[-1]) for s, p in zip(slots, parts)])
        return out + y.to(out.dtype)

    @staticmethod
    def _lora_into(out, x, a, b, scale, sizes):
        """out + B_j (A_j x) * scale_j on each segment's rows, the sum done by the second matmul itself
        (baddbmm / addmm with out as the added term): no full-size temporaries of the LoRA path, whose
        inner product (rows x rank) is the only one scaled. With scale = alpha / r a power of two (the
        usual 16 / 8, 16 / 4, ...) the scaled products are the same numbers as scaling the result."""
        if len(set(sizes)) == 1:
            xs = x.reshape(len(sizes), -1, x.shape[-1])
            t = torch.bmm(xs, a.transpose(1, 2)) * scale
            return torch.baddbmm(out.reshape(len(sizes), -1, out.shape[-1]), t, b.transpose(1, 2)).view(out.shape)
        d_out = out.shape[-1]
        rows = [p.reshape(-1, x.shape[-1]) for p in torch.split(x, sizes)]
        outs = [o.reshape(-1, d_out) for o in torch.split(out, sizes)]
        return torch.cat([torch.addmm(o, (p @ a[j].T) * scale[j, 0], b[j].T)
                          for j, (p, o) in enumerate(zip(rows, outs))]).view(out.shape)

    @staticmethod
    def _lora_alone(x, a, b, scale, sizes):
        """B_j (A_j x) * scale_j of each segment, in float32 (an autocast pass adds it to its bf16 output)."""
        if len(set(sizes)) == 1:
            xs = x.reshape(len(sizes), -1, x.shape[-1])
            return (torch.bmm(torch.bmm(xs, a.transpose(1, 2)), b.transpose(1, 2)) * scale).reshape(*x.shape[:-1], -1)
        parts = torch.split(x, sizes)
        return torch.cat([(p @ a[j].T) @ b[j].T * scale[j] for j, p in enumerate(parts)])

    def _pooled(self, slots: list[_Slot], ids: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """The family's features of each segment (the encoder's pooled output, a causal LM's hidden
        states), all segments in one pass through the bare base."""
        dev = self.model.device
        input_ids, mask = torch.cat(ids).to(dev), torch.cat(masks).to(dev)
        sizes = [len(t) for t in ids]
        self._segments = (slots, sizes)
        try:
            with self.model.bare(), self._autocast():
                feats = self.model.features({"input_ids": input_ids, "attention_mask": mask})
        finally:
            self._segments = None
        return list(torch.split(feats, sizes))

    def _passes(self, pieces: list[tuple]) -> list[list[tuple]]:
        """Pieces (slot, task, enc, labels, rows, width, job index) ordered by width, cut into passes of <= max_tokens."""
        pieces = sorted(pieces, key=lambda p: p[5])
        out, cur, rows = [], [], 0
        for p in pieces:
            if cur and (rows + len(p[4])) * p[5] > self.max_tokens:
                out.append(cur)
                cur, rows = [], 0
            cur.append(p)
            rows += len(p[4])
        return out + ([cur] if cur else [])

    def _run(self, group: list[tuple]):
        """Forward one pass; returns per piece (the family's outputs, labels)."""
        width = group[-1][5]
        ids, masks, labels = [], [], []
        for slot, task, enc, lab, rows, *_ in group:
            i, m, y = task.rows(enc, lab, rows, width)
            ids.append(i)
            masks.append(m)
            labels.append(y.to(self.model.device))
        feats = self._pooled([p[0] for p in group], ids, masks)
        return [(self.model.slot_outputs(p[0].head, h, y), y) for p, h, y in zip(group, feats, labels)]

    # ------------------------------------------------------------------ the seam
    def train(self, jobs: list[TrainJob], on_done=None) -> list[TrainResult]:
        results = []
        for group in job_groups(jobs, self.max_trainable_bytes):
            results += self._train_group(group, on_done)
        return results

    def _train_group(self, jobs: list[TrainJob], on_done=None) -> list[TrainResult]:
        if not jobs:
            return []
        slots = [_Slot(self.model, j.state, j.rank, trainable=True) for j in jobs]
        splits = [split_probe(j) for j in jobs]
        before = self._probe_scores(jobs, slots, splits)
        opt = self._optimizer(jobs, slots)
        for step in range(max(j.steps for j in jobs)):
            active = [k for k, j in enumerate(jobs) if j.steps > step]
            pieces = []
            for k in active:
                task, (gen, train_rows, _) = self.tasks[jobs[k].task], splits[k]
                rows = draw_batch(gen, train_rows, jobs[k].batch_size)
                pieces.append((slots[k], task, task.train, task.train_labels, rows, task.width(task.train, rows), k))
            opt.zero_grad(set_to_none=True)
            for group in self._passes(pieces):
                out = self._run(group)
                loss = sum(self.model.loss(o, y) + self._prune_term(jobs[p[6]], p[0]) for p, (o, y) in zip(group, out))
                loss.backward()
            opt.step()
            for k in active:
                if jobs[k].steps == step + 1 and on_done is not None:
                    on_done(jobs[k])
        for k, j in enumerate(jobs):
            if j.steps == 0 and on_done is not None:
                on_done(j)
        after = self._probe_scores(jobs, slots, splits)
        results = []
        for k, j in enumerate(jobs):
            state, rank = finish_state(j, slots[k].export(self.model, j.state))
            results.append(TrainResult(j.vehicle_id, j.task, state, rank, len(splits[k][1]),
                                       before[k][0], after[k][0], j.steps, after[k][1]))
        return results

    @staticmethod
    def _optimizer(jobs: list[TrainJob], slots: list[_Slot]) -> torch.optim.Optimizer:
        """One AdamW over every job's tensors (per-tensor state = per-job AdamW), one group per learning rate."""
        groups: dict[float, list] = {}
        for j, s in zip(jobs, slots):
            groups.setdefault(float(j.learning_rate), []).extend(s.A + s.B)
            if s.head:
                groups.setdefault(float(j.head_learning_rate), []).extend(s.head)
        return torch.optim.AdamW([{"params": p, "lr": lr} for lr, p in groups.items()], weight_decay=0.0, foreach=True)

    @staticmethod
    def _prune_term(job: TrainJob, slot: _Slot):
        lam, keep = float(job.options.get("prune_lambda", 0.0)), int(job.options.get("prune_keep", job.rank))
        if lam > 0 and keep < job.rank:
            return lam * lora_tail(zip(slot.A, slot.B), keep)
        return 0.0

    @torch.no_grad()
    def _probe_scores(self, jobs, slots, splits) -> list[tuple[float, float]]:
        """Eval-mode (loss, accuracy) on each job's held-out probe rows, all jobs batched together.

        The rows of every job's probe ScoreSet are pooled and cut into passes by length
        (length_passes); within a pass each job's rows form one segment.
        """
        sets = [self.tasks[j.task].score_set("train", s[2]) for j, s in zip(jobs, splits)]
        owner = np.concatenate([np.full(len(ss.rows), k) for k, ss in enumerate(sets)])
        rows = np.concatenate([ss.rows for ss in sets])
        widths = np.concatenate([self.tasks[j.task].row_widths(ss.enc, ss.rows) for j, ss in zip(jobs, sets)])
        for part in length_passes(widths, len(rows), self.max_tokens):
            width, group = int(widths[part].max()), []
            for k in np.unique(owner[part]):
                ss = sets[k]
                group.append((slots[k], self.tasks[jobs[k].task], ss.enc, ss.labels, rows[part[owner[part] == k]],
                              width, int(k)))
            for p, (out, y) in zip(group, self._run(group)):
                sets[p[6]].scores.add(p[4], out, y)
        return [ss.scores.result() for ss in sets]

    @torch.inference_mode()  # test rows only: nothing made here is used by a training step
    def evaluate(self, task_index: int, state: dict, rank: int, batch_size: int = 64) -> EvalResult:
        task = self.tasks[task_index]
        slot = _Slot(self.model, state, rank, trainable=False)
        sset = task.score_set("test")
        for part in length_passes(task.row_widths(sset.enc, sset.rows), batch_size):
            rows = sset.rows[part]
            (out, y), = self._run([(slot, task, sset.enc, sset.labels, rows, task.width(sset.enc, rows), 0)])
            sset.scores.add(rows, out, y)
        loss, acc = sset.scores.result()
        return EvalResult(acc, loss, sset.scores.num_examples)


def job_groups(jobs: list[TrainJob], max_bytes: float) -> list[list[TrainJob]]:
    """`jobs` in order, cut where a group's trainable state would exceed `max_bytes` (a job larger
    than that trains alone)."""
    groups, cur, used = [], [], 0.0
    for j in jobs:
        need = TRAINABLE_BYTES_PER_PARAM * sum(v.numel() for k, v in j.state.items()
                                               if torch.is_tensor(v) and not k.endswith(".delta"))
        if cur and used + need > max_bytes:
            groups.append(cur)
            cur, used = [], 0.0
        cur.append(j)
        used += need
    return groups + ([cur] if cur else [])
