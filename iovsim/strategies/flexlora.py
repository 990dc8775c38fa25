"""FlexLoRA (Bai et al., arXiv 2402.11505): aggregate full updates, SVD, redistribute at each rank."""
from __future__ import annotations

import numpy as np
import torch

from iovsim.fl.aggregate import flexlora_aggregate, refactor_rank
from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy, Update, state_rank
from iovsim.strategies.common import HeteroRankMixin, rank_logs, rng_state, set_rng_state


@register("flexlora")
class FlexLoRA(HeteroRankMixin, Strategy):
    """Per-vehicle ranks from the device; the server keeps the SVD of the aggregated update.

    - Rank and handover window: as HetLoRA (device rank from `tier_ranks` or memory, lowered to the
      largest candidate that fits the dwell window; not asked when none fits).
    - aggregate: dW = sum_k w_k (alpha / r_k) B_k A_k per module (w = samples), truncated SVD at the
      global rank R; stored in FlexLoRA's split B = U_R S_R / s, A = V_R^T with s = alpha / R.
    - client_state: the truncated SVD of the global dW at the vehicle's rank r, same split with
      s = alpha / r, so (alpha / r) B A = U_r S_r V_r^T. Directions without a singular value (all of
      them in round 1, where B = 0) get a fresh A (own seeded stream) and B = 0, so they train.
    - train_options: none. Note: each RSU already truncates at R, so the cloud sums RSU truncations
      (exact whenever an RSU's vehicles' ranks sum to <= R).
    """

    def __init__(self, tier_ranks: list | None = None, memory_bytes_per_rank: float = 5e8,
                 selection: str = "random", respect_window: bool = True, margin: float = 1.0):
        super().__init__()
        self._init_hetero(tier_ranks, memory_bytes_per_rank, selection, respect_window, margin)
        self.init_rng = np.random.default_rng()

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        # Fresh A rows come from their own stream so that they never shift the selection draws.
        self.init_rng = np.random.default_rng([seed, 11])

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.init_rng.integers(2**62)))

    def configure(self, state: RoundState) -> Plan:
        chosen, ranks, extra = self._hetero_plan(state)
        return Plan(participants=chosen, rank=ranks, train_options=[{} for _ in chosen], extra=extra)

    def client_state(self, global_state, rank: int):
        return refactor_rank(global_state, int(rank), self.lora_alpha, self._generator())

    def aggregate(self, updates: list[Update], global_state) -> dict:
        rank = state_rank(global_state)
        return flexlora_aggregate(updates, rank, self.lora_alpha, self._generator())

    def observe(self, feedback: RoundFeedback) -> dict:
        return rank_logs(feedback)

    def state_dict(self) -> dict:
        return {**self._hetero_state(), "init_rng": rng_state(self.init_rng)}

    def load_state_dict(self, state: dict) -> None:
        self._load_hetero(state)
        if "init_rng" in state:
            set_rng_state(self.init_rng, state["init_rng"])
