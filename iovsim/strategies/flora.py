"""FLoRA (Wang et al., arXiv 2409.05976): exact stacking aggregation, merged into the base each round."""
from __future__ import annotations

import numpy as np
import torch

from iovsim.fl.aggregate import flora_aggregate, resize_rank
from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy, Update, state_rank
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
                 selection: str = "random", respect_window: bool = True, margin: float = 1.0,
                 lora_alpha: float = 16.0):
        super().__init__()
        self._init_hetero(tier_ranks, memory_bytes_per_rank, selection, respect_window, margin)
        self.init_rng = np.random.default_rng()

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        # The random re-initialisation draws from its own stream so that it never shifts the selection draws.
        self.init_rng = np.random.default_rng([seed, 11])

    def configure(self, state: RoundState) -> Plan:
        chosen, ranks, extra = self._hetero_plan(state)
        return Plan(participants=chosen, rank=ranks, train_options=[{} for _ in chosen], extra=extra)

    def client_state(self, global_state, rank: int):
        return resize_rank(global_state, int(rank), rescale=True)

    def aggregate(self, updates: list[Update], global_state) -> dict:
        rank = state_rank(global_state)
        gen = torch.Generator().manual_seed(int(self.init_rng.integers(2**62)))
        return flora_aggregate(updates, global_state, self.lora_alpha, rank, gen)

    def observe(self, feedback: RoundFeedback) -> dict:
        return rank_logs(feedback)

    def state_dict(self) -> dict:
        return {**self._hetero_state(), "init_rng": rng_state(self.init_rng)}

    def load_state_dict(self, state: dict) -> None:
        self._load_hetero(state)
        if "init_rng" in state:
            set_rng_state(self.init_rng, state["init_rng"])
