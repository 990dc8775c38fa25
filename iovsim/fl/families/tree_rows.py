"""Tree rows: one prompt and its K candidate answers in one row, each answer seeing the prompt alone.

Likelihood scoring asks, for every example, the log-probability of each of K label words after the
same prompt. One row per label word runs the prompt K times; a tree row runs it once:

    prompt[0 .. P-2] | prompt[P-1] w_0 | prompt[P-1] w_1 | ... | prompt[P-1] w_{K-1} | padding

Each branch (the prompt's last token, then one word's tokens) attends to the shared prefix and to
its own earlier tokens only, and its position ids continue the prefix's (P-1, P, ...), so every
hidden state of a branch is the one the K-row layout computes for the same tokens (the same keys,
values and positions, to float rounding). The prompt's last token is repeated at the head of each
branch so that the rule the family, its training and the cost model share holds in the tree row
too: position t's output predicts token t+1 (`causal_task.head_positions`); it costs K-1 tokens a
row, against K-1 whole prompts in the K-row layout.

The layout travels through the executors in the `attention_mask` itself, as a segment id per token:
0 padding, 1 the shared prefix, 2 + k branch k (a 0/1 mask is the ordinary case: all shared, plain
causal). `CausalLM.features` turns a mask with branches into the 4D mask and position ids
(`attention`); the executors only slice, pad and concatenate it, as any mask.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SHARED = 1
"""Segment id of the shared prefix (and of every token of an ordinary row)."""


def has_branches(segments: torch.Tensor) -> bool:
    """Whether a batch's attention_mask holds tree rows (any segment id above SHARED)."""
    return bool(segments.numel()) and int(segments.max()) > SHARED


def pack(prompt_rows: list[list[int]], words: list[list[int]], width: int, pad_id: int):
    """(enc, labels): per prompt one tree row (the layout above) right-padded to `width`; labels on the
    words' tokens (their own ids), -100 elsewhere; enc's attention_mask holds the segment ids."""
    n = len(prompt_rows)
    ids = torch.full((n, width), int(pad_id), dtype=torch.long)
    segs = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    lengths = torch.zeros(n, dtype=torch.long)
    for i, p in enumerate(prompt_rows):
        row, seg, lab = list(p[:-1]), [SHARED] * (len(p) - 1), [-100] * (len(p) - 1)
        for k, w in enumerate(words):
            row += [p[-1]] + list(w)
            seg += [SHARED + 1 + k] * (1 + len(w))
            lab += [-100] + list(w)
        if len(row) > width:
            raise ValueError(f"a tree row of {len(row)} tokens does not fit in {width}")
        ids[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
        segs[i, :len(row)] = torch.as_tensor(seg, dtype=torch.long)
        labels[i, :len(row)] = torch.as_tensor(lab, dtype=torch.long)
        lengths[i] = len(row)
    return {"input_ids": ids, "attention_mask": segs, "lengths": lengths}, labels


def width(prompt_tokens: int, words: list[list[int]]) -> int:
    """Tokens of the tree row of a `prompt_tokens`-token prompt: the prompt, then K-1 repeats of its
    last token and every word's tokens."""
    return int(prompt_tokens) + len(words) - 1 + sum(len(w) for w in words)


def position_ids(segments: torch.Tensor) -> torch.Tensor:
    """Per token: its index among the shared prefix's tokens, or (a branch token) the prefix's length
    plus its index within its branch minus one, so a branch restarts at the prefix's last position + 1
    with the repeated last prompt token at the prefix's last position. Padding: 0."""
    onehot = F.one_hot(segments, int(segments.max()) + 1)            # rows x width x segments
    index = onehot.cumsum(1).gather(2, segments.unsqueeze(-1)).squeeze(-1) - 1
    shared = segments == SHARED
    prefix = shared.sum(1, keepdim=True)
    pos = torch.where(shared, index, prefix + index)
    return torch.where(segments == 0, torch.zeros_like(pos), pos)


def allowed(segments: torch.Tensor) -> torch.Tensor:
    """rows x 1 x width x width, True where query i may attend key j: j <= i, j not padding, and j in
    the shared prefix or in i's own branch; and every token itself, so that no row of the mask is empty
    (a padding query: its output is never read)."""
    w = segments.shape[1]
    causal = torch.ones(w, w, dtype=torch.bool, device=segments.device).tril()
    key, query = segments[:, None, :], segments[:, :, None]
    ok = causal[None] & (key != 0) & ((key == SHARED) | (key == query))
    return (ok | torch.eye(w, dtype=torch.bool, device=segments.device)[None])[:, None]


def attention(segments: torch.Tensor, attn_implementation: str, dtype: torch.dtype):
    """(4D attention mask, position ids) of a batch of tree rows for a transformers decoder: a boolean
    mask for SDPA (True: attend), an additive one (0 or the dtype's minimum) for the eager kernels,
    which add it to the scores."""
    ok = allowed(segments)
    if attn_implementation != "sdpa":
        ok = torch.zeros(ok.shape, dtype=dtype, device=ok.device).masked_fill_(~ok, torch.finfo(dtype).min)
    return ok, position_ids(segments)
