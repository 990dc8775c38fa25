"""Random LoRA module selection: the 'random selection' baseline of module switching (arXiv 2509.19306)."""
from __future__ import annotations

import zlib

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundState, Strategy
from iovsim.strategies.common import SeedOnlyState, eligible, select


def module_keys(seed: int, round_index: int, vehicle_ids: list[str]) -> np.ndarray:
    """One uniform number per vehicle for its module draw, fixed by (seed, round, vehicle id) alone:
    a resumed run draws what an uninterrupted one would, and the draw is independent of the
    participant keys of `common.selection_keys` (stream 6, not 5)."""
    return np.asarray([np.random.default_rng([int(seed), 6, int(round_index), zlib.crc32(v.encode())]).random()
                       for v in vehicle_ids])


@register("random_module")
class RandomModule(SeedOnlyState, Strategy):
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
        keys = module_keys(self.seed, state.round_index, [state.vehicle_ids[i] for i in idx])
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


    def client_state(self, global_state, rank: int):
        from iovsim.fl.aggregate import resize_rank

        return resize_rank(global_state, int(rank), rescale=True)

    def aggregate(self, updates, global_state):
        from iovsim.fl.aggregate import state_rank, zero_pad_aggregate

        return zero_pad_aggregate(updates, state_rank(global_state), rescale=True)
