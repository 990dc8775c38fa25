"""FLoRA (Wang et al., arXiv 2409.05976): exact stacking aggregation, merged into the base each round."""
from __future__ import annotations

import numpy as np
import torch

from iovsim.fl.aggregate import flora_aggregate, resize_rank
from iovsim.strategies import register
from iovsim.strategies.base import DELIVERED, Plan, RoundFeedback, RoundState, Strategy, Update, state_rank
from iovsim.strategies.common import HeteroRankMixin, rank_logs, rng_state, set_rng_state


@register("flora")
class FLoRA(HeteroRankMixin, Strategy):
    """Stacking: B_stack @ A_stack = sum_k w_k (alpha / r_k) B_k A_k exactly, for any mix of ranks.

    - Rank and handover window: as HetLoRA (device rank from `tier_ranks` or memory, lowered to the
      largest candidate that fits the dwell window; not asked when none fits). With
      `tier_ranks=None` and a large `memory_bytes_per_rank` every vehicle gets the smallest rank.
    - aggregate: the global `<module>.delta` (merged into the frozen weight by the model side)
      becomes previous delta + the stacked product; the returned adapter is fresh: A
      kaiming-uniform (from its own seeded stream, so it never shifts the selection draws), B = 0,
      at the global rank. Exact over the
      RSU -> cloud hierarchy (RSU results carry their delta, the cloud averages them).
    - client_state: the fresh global adapter truncated to the vehicle's rank (B is zero).
    - train_options: none.
    """

    def __init__(self, tier_ranks: list | None = None, memory_bytes_per_rank: float = 5e8,
                 selection: str = "random", respect_window: bool = True, margin: float = 1.0):
        super().__init__()
        self._init_hetero(tier_ranks, memory_bytes_per_rank, selection, respect_window, margin)
        self.init_rng = np.random.default_rng()
        self.stacked_rank: list[int] = []

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        self.stacked_rank = [0] * num_tasks  # per task: ranks stacked into the base so far
        # The random re-initialisation draws from its own stream so that it never shifts the selection draws.
        self.init_rng = np.random.default_rng([seed, 11])

    def configure(self, state: RoundState) -> Plan:
        chosen, ranks, extra = self._hetero_plan(state)
        return Plan(participants=chosen, rank=ranks, train_options=[{} for _ in chosen], extra=extra,
                    download_bits=self.download_bits(state, chosen, ranks))

    def download_bits(self, state: RoundState, chosen: np.ndarray, ranks: np.ndarray) -> np.ndarray | None:
        """The fresh adapter plus what the base has absorbed so far: the stacked modules of every past
        round (sum of their ranks) or, when smaller, the dense merged delta (FLoRA, arXiv 2409.05976)."""
        c = state.costs
        if c is None:
            return None
        out = []
        for i, r in zip(chosen, ranks):
            stack = self.stacked_rank[int(state.task[i])] if int(state.task[i]) < len(self.stacked_rank) else 0
            lora = float(c.adapter_bits(stack, int(i))) - float(c.adapter_bits(0, int(i)))
            merged = min(float(c.delta_bits()), lora) if stack else 0.0
            out.append(float(c.adapter_bits(int(r), int(i))) + merged)
        return np.asarray(out)

    def client_state(self, global_state, rank: int):
        return resize_rank(global_state, int(rank), rescale=True)

    def aggregate(self, updates: list[Update], global_state) -> dict:
        rank = state_rank(global_state)
        gen = torch.Generator().manual_seed(int(self.init_rng.integers(2**62)))
        return flora_aggregate(updates, global_state, self.lora_alpha, rank, gen)

    def observe(self, feedback: RoundFeedback) -> dict:
        for t, r, st in zip(feedback.task, feedback.rank, feedback.status):
            if st in DELIVERED and int(t) < len(self.stacked_rank):
                self.stacked_rank[int(t)] += int(r)
        return {**rank_logs(feedback), **{f"stacked_rank/{t}": float(r) for t, r in enumerate(self.stacked_rank)}}

    def state_dict(self) -> dict:
        return {**self._hetero_state(), "init_rng": rng_state(self.init_rng), "stacked_rank": list(self.stacked_rank)}

    def load_state_dict(self, state: dict) -> None:
        self._load_hetero(state)
        self.stacked_rank = [int(r) for r in state["stacked_rank"]]
        if "init_rng" in state:
            set_rng_state(self.init_rng, state["init_rng"])
