"""Aggregation math on adapter state dicts (plain tensors, see strategies/base.py for names)."""
from __future__ import annotations

import torch

from iovsim.strategies.base import Update


def weighted_mean(states: list[dict], weights) -> dict:
    """Key-wise weighted mean of same-shaped state dicts (weights need not sum to 1)."""
    w = torch.as_tensor([float(x) for x in weights], dtype=torch.float64)
    if w.sum() <= 0:
        raise ValueError("aggregation weights sum to zero")
    w = w / w.sum()
    out = {}
    for key in states[0]:
        acc = torch.zeros_like(states[0][key], dtype=torch.float64)
        for wi, s in zip(w, states):
            acc += wi * s[key].to(torch.float64)
        out[key] = acc.to(states[0][key].dtype)
    return out


def fedavg(updates: list[Update]) -> Update:
    """Sample-weighted FedAvg of A, B and the head (HomoLoRA). Ranks must agree."""
    ranks = {u.rank for u in updates}
    if len(ranks) != 1:
        raise ValueError(f"FedAvg needs equal ranks, got {sorted(ranks)}")
    total = sum(u.weight for u in updates)
    state = weighted_mean([u.state for u in updates], [u.weight for u in updates])
    return Update(state=state, weight=total, rank=updates[0].rank, source="+".join(u.source for u in updates))
