"""HetLoRA (Cho et al., arXiv 2401.06432): heterogeneous ranks, zero-padding, self-pruning, sparsity weights."""
from __future__ import annotations

import dataclasses

import numpy as np

from iovsim.fl.aggregate import module_sparsity_weights, resize_rank, zero_pad_aggregate
from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy, Update, state_rank
from iovsim.strategies.common import HeteroRankMixin, rank_logs


@register("hetlora")
class HetLoRA(HeteroRankMixin, Strategy):
    """Per-vehicle ranks from the device; global adapter at the maximum rank.

    - Rank: `tier_ranks[tier]` if given, else from device memory (`memory_bytes_per_rank`), then
      capped by the rank the vehicle self-pruned to in an earlier round (kept exactly: a pruned
      rank is a candidate rank for that vehicle too).
    - Handover window: the rank is lowered to the largest candidate whose download + compute +
      upload (x `margin`) fits the predicted dwell time; a vehicle for which even the smallest
      rank does not fit is not asked. Up to max_participants eligible vehicles, random or round-robin.
    - client_state: first r rows of A / columns of B (B rescaled by r / R for peft's alpha / r).
    - train_options: prune_lambda, prune_keep = floor(prune_gamma * r), prune_gamma, prune_tol; the
      trainer regularizes the tail and self-prunes (iovsim.fl.aggregate.self_prune): with
      prune_gamma = 0.99 a rank shrinks by one when its last component is weak.
    - aggregate: zero-pad to the global rank, weighted mean of A and B per module with the paper's
      sparsity weights ||B_k A_k / r_k||_F / Z (per module); head with sample weights.
    - observe: `rank/<vehicle>` = the rank each vehicle returned this round (after pruning).
    """

    def __init__(self, tier_ranks: list | None = None, memory_bytes_per_rank: float = 5e8,
                 selection: str = "random", respect_window: bool = True, margin: float = 1.0,
                 prune_lambda: float = 1e-3, prune_gamma: float = 0.99, prune_tol: float = 0.5,
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
        self.returned: dict[str, int] = {}

    def _rank_cap(self, state: RoundState, idx: np.ndarray):
        big = max(int(r) for r in state.ranks)
        return np.asarray([min(big, self.pruned_rank.get(state.vehicle_ids[i], big)) for i in idx], dtype=int)

    def configure(self, state: RoundState) -> Plan:
        caps = {self.pruned_rank[v] for v in state.vehicle_ids if v in self.pruned_rank}
        if caps - set(int(r) for r in state.ranks):
            # A pruned rank (e.g. 15 after 16) is trained as is, not snapped down to a candidate.
            state = dataclasses.replace(state, ranks=sorted(set(int(r) for r in state.ranks) | caps))
        chosen, ranks, extra = self._hetero_plan(state)
        self.planned = {state.vehicle_ids[i]: int(r) for i, r in zip(chosen, ranks)}
        self.returned = {}
        opts = [{"prune_lambda": self.prune_lambda, "prune_keep": max(1, int(self.prune_gamma * int(r))),
                 "prune_gamma": self.prune_gamma, "prune_tol": self.prune_tol} for r in ranks]
        return Plan(participants=chosen, rank=ranks, train_options=opts, extra=extra)

    def client_state(self, global_state, rank: int):
        return resize_rank(global_state, int(rank), rescale=self.rescale)

    def aggregate(self, updates: list[Update], global_state) -> dict:
        for u in updates:  # vehicle-level updates: remember the rank each returned (self-pruned or not)
            if u.source in self.planned:
                self.returned[u.source] = int(u.rank)
                if u.rank < self.planned[u.source]:
                    self.pruned_rank[u.source] = int(u.rank)
        rank = state_rank(global_state)
        w = module_sparsity_weights(updates) if self.sparsity_weighting else None
        return zero_pad_aggregate(updates, rank, lora_weights=w, rescale=self.rescale)

    def observe(self, feedback: RoundFeedback) -> dict:
        out = rank_logs(feedback)
        out["pruned_vehicles"] = len(self.pruned_rank)
        out["pruned_this_round"] = sum(1 for v, r in self.returned.items() if r < self.planned.get(v, r))
        if self.returned:
            out["mean_returned_rank"] = float(np.mean(list(self.returned.values())))
        for vid in feedback.vehicle_ids:
            if vid in self.returned:
                out[f"rank/{vid}"] = self.returned[vid]
        return out

    def state_dict(self) -> dict:
        return {**self._hetero_state(), "pruned_rank": dict(self.pruned_rank), "planned": dict(self.planned),
                "returned": dict(self.returned)}

    def load_state_dict(self, state: dict) -> None:
        self._load_hetero(state)
        self.pruned_rank = {str(k): int(v) for k, v in state.get("pruned_rank", {}).items()}
        self.planned = {str(k): int(v) for k, v in state.get("planned", {}).items()}
        self.returned = {str(k): int(v) for k, v in state.get("returned", {}).items()}
