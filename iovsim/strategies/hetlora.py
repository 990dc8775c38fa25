"""HetLoRA (Cho et al., arXiv 2401.06432): heterogeneous ranks, zero-padding, self-pruning, sparsity weights."""
from __future__ import annotations

import numpy as np

from iovsim.fl.aggregate import resize_rank, sparsity_weights, zero_pad_aggregate
from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy, Update, state_rank
from iovsim.strategies.common import HeteroRankMixin, rank_logs, snap_rank


@register("hetlora")
class HetLoRA(HeteroRankMixin, Strategy):
    """Per-vehicle ranks from the device; global adapter at the maximum rank.

    - Rank: `tier_ranks[tier]` if given, else from device memory (`memory_bytes_per_rank`), then
      capped by the rank the vehicle self-pruned to in an earlier round.
    - Handover window: the rank is lowered to the largest candidate whose download + compute +
      upload (x `margin`) fits the predicted dwell time; a vehicle for which even the smallest
      rank does not fit is not asked. Up to max_participants eligible vehicles, random or round-robin.
    - client_state: first r rows of A / columns of B (B rescaled by r / R for peft's alpha / r).
    - train_options: prune_lambda, prune_keep = floor(prune_gamma * r), prune_gamma, prune_tol
      (see docs/strategies.md); the trainer may return a smaller rank (iovsim.fl.aggregate.self_prune).
    - aggregate: zero-pad to the global rank, weighted mean of A and B with sparsity weights
      (||B_k A_k||_F x samples, normalized); head with sample weights.
    """

    def __init__(self, tier_ranks: list | None = None, memory_bytes_per_rank: float = 5e8,
                 selection: str = "random", respect_window: bool = True, margin: float = 1.0,
                 prune_lambda: float = 1e-3, prune_gamma: float = 0.5, prune_tol: float = 0.1,
                 sparsity_weighting: bool = True, rescale: bool = True):
        super().__init__()
        self._init_hetero(tier_ranks, memory_bytes_per_rank, selection, respect_window, margin)
        if prune_lambda < 0 or not 0 < prune_gamma < 1 or prune_tol < 0:
            raise ValueError("expected prune_lambda >= 0, 0 < prune_gamma < 1, prune_tol >= 0")
        self.prune_lambda = float(prune_lambda)
        self.prune_gamma = float(prune_gamma)
        self.prune_tol = float(prune_tol)
        self.sparsity_weighting = bool(sparsity_weighting)
        self.rescale = bool(rescale)
        self.pruned_rank: dict[str, int] = {}
        self.planned: dict[str, int] = {}

    def _rank_cap(self, state: RoundState, idx: np.ndarray):
        big = max(int(r) for r in state.ranks)
        return np.asarray([snap_rank(self.pruned_rank.get(state.vehicle_ids[i], big), state.ranks) for i in idx],
                          dtype=int)

    def configure(self, state: RoundState) -> Plan:
        chosen, ranks, extra = self._hetero_plan(state)
        self.planned = {state.vehicle_ids[i]: int(r) for i, r in zip(chosen, ranks)}
        opts = []
        for r in ranks:
            o = {}
            if self.prune_lambda > 0 or self.prune_gamma > 0:
                o = {"prune_lambda": self.prune_lambda, "prune_keep": max(1, int(self.prune_gamma * int(r))),
                     "prune_gamma": self.prune_gamma, "prune_tol": self.prune_tol}
            opts.append(o)
        return Plan(participants=chosen, rank=ranks, train_options=opts, extra=extra)

    def client_state(self, global_state, rank: int):
        return resize_rank(global_state, int(rank), rescale=self.rescale)

    def aggregate(self, updates: list[Update], global_state) -> dict:
        for u in updates:  # remember self-pruned ranks (vehicle-level updates only)
            if u.source in self.planned and u.rank < self.planned[u.source]:
                self.pruned_rank[u.source] = int(u.rank)
        rank = state_rank(global_state)
        w = sparsity_weights(updates) if self.sparsity_weighting else None
        return zero_pad_aggregate(updates, rank, lora_weights=w, rescale=self.rescale)

    def observe(self, feedback: RoundFeedback) -> dict:
        out = rank_logs(feedback)
        out["pruned_vehicles"] = len(self.pruned_rank)
        return out

    def state_dict(self) -> dict:
        return {**self._hetero_state(), "pruned_rank": dict(self.pruned_rank), "planned": dict(self.planned)}

    def load_state_dict(self, state: dict) -> None:
        self._load_hetero(state)
        self.pruned_rank = {str(k): int(v) for k, v in state.get("pruned_rank", {}).items()}
        self.planned = {str(k): int(v) for k, v in state.get("planned", {}).items()}
