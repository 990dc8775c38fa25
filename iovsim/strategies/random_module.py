"""Random LoRA module selection: the 'random selection' baseline of module switching (arXiv 2509.19306)."""
from __future__ import annotations

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundState, Strategy
from iovsim.strategies.common import MODULE_STREAM, SeedOnlyState, ZeroPadToGlobalRank, eligible, select, selection_keys


@register("random_module")
class RandomModule(SeedOnlyState, ZeroPadToGlobalRank, Strategy):
    """Each round every participant trains a LoRA module (a rank of `state.ranks`) drawn uniformly at
    random, at the default transmit power and an equal bandwidth share: module switching without the
    optimisation, the random-selection baseline of arXiv 2509.19306 (the abstract names it; how its
    participants are chosen is not public, so here as HomoLoRA chooses them).

    Participants: the connected vehicles whose predicted round at their drawn module fits the dwell
    window (`respect_window`, `margin`: the rule HomoLoRA and HetLoRA share), up to
    `state.max_participants`, by the paired random keys every strategy of a comparison sees.
    Aggregation as lyapunov_switch: FedAvg at equal ranks, else HetLoRA zero-padding with sample
    weights (B rescaled by r / R for the alpha / r scaling).
    """

    def __init__(self, respect_window: bool = True, margin: float = 1.0):
        super().__init__()
        if margin <= 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.respect_window = bool(respect_window)
        self.margin = float(margin)

    def draw_ranks(self, state: RoundState, idx: np.ndarray) -> np.ndarray:
        ranks = np.asarray(sorted(set(int(r) for r in state.ranks)), dtype=int)
        # (seed, round, vehicle) alone, so a resumed run draws the same; a stream apart from the selection's
        keys = selection_keys(self.seed, state.round_index, [state.vehicle_ids[i] for i in idx], MODULE_STREAM)
        return ranks[np.minimum((keys * ranks.size).astype(int), ranks.size - 1)]

    def configure(self, state: RoundState) -> Plan:
        conn = np.asarray(state.connected(), dtype=int)
        drawn = self.draw_ranks(state, conn)
        ok = np.concatenate([eligible(state, conn[drawn == r], int(r), self.margin, self.respect_window)
                             for r in np.unique(drawn)]) if conn.size else conn
        chosen = select(state, ok, state.max_participants, "random", self.seed, {})
        rank_of = dict(zip(conn.tolist(), drawn.tolist()))
        return Plan(participants=chosen, rank=np.asarray([rank_of[int(i)] for i in chosen], dtype=int),
                    train_options=[{} for _ in chosen],
                    extra={"eligible": int(ok.size), "not_fitting": int(conn.size - ok.size)})

