"""HomoLoRA: one LoRA rank for every participant, FedAvg of A, B and the head."""
from __future__ import annotations

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy
from iovsim.strategies.common import check_choice, eligible, select


@register("homolora")
class HomoLoRA(Strategy):
    """Every participant trains the same rank; sample-weighted FedAvg (the base default).

    Handover window: a connected vehicle is eligible only if `margin` x (download + compute +
    upload time at the common rank, from `state.costs`) fits its predicted dwell time (capped by
    the round deadline). HomoLoRA has no rank freedom, so a vehicle that does not fit is not asked.
    Up to `state.max_participants` eligible vehicles are chosen, randomly (seeded) or round-robin.

    Params: rank (None = state.default_rank), selection ("random" | "round_robin"),
    respect_window (True), margin (1.0).
    """

    def __init__(self, rank: int | None = None, selection: str = "random", respect_window: bool = True,
                 margin: float = 1.0):
        super().__init__()
        check_choice("selection", selection, ("random", "round_robin"))
        if rank is not None and int(rank) < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if margin <= 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.rank = None if rank is None else int(rank)
        self.selection = selection
        self.respect_window = bool(respect_window)
        self.margin = float(margin)
        self.last_round: dict[str, int] = {}

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        self.num_tasks = num_tasks

    def configure(self, state: RoundState) -> Plan:
        rank = self.rank or int(state.default_rank)
        conn = state.connected()
        ok = eligible(state, conn, rank, self.margin, self.respect_window)
        chosen = select(state, ok, state.max_participants, self.selection, self.seed, self.last_round)
        for i in chosen:
            self.last_round[state.vehicle_ids[i]] = int(state.round_index)
        return Plan(participants=chosen, rank=np.full(chosen.size, rank),
                    train_options=[{} for _ in chosen],
                    extra={"eligible": int(ok.size), "not_fitting": int(conn.size - ok.size)})

    def observe(self, feedback: RoundFeedback) -> dict:
        st = list(feedback.status)
        return {"participants": len(st), "completed": int(feedback.delivered().sum())}

    def state_dict(self) -> dict:
        return {"seed": self.seed, "last_round": dict(self.last_round)}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.last_round = {str(k): int(v) for k, v in state.get("last_round", {}).items()}
