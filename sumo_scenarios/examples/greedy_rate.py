"""A complete user strategy: the best links train, with a rank their handover window allows.

Plug it in from a config (the path is relative to the config file):
    strategy: {name: "greedy_rate.py:GreedyRate", params: {margin: 1.5}}
"""
import numpy as np

from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy


class GreedyRate(Strategy):
    name = "greedy_rate"

    def __init__(self, margin: float = 1.5):
        super().__init__()
        self.margin = float(margin)          # safety factor on the estimated round time
        self.lost = 0

    def configure(self, state: RoundState) -> Plan:
        connected = state.connected()                                   # vehicles with an RSU
        best_first = connected[np.argsort(-state.uplink_rate_bps[connected], kind="stable")]
        chosen, ranks = [], []
        for i in best_first[: state.max_participants]:
            for rank in sorted(state.ranks, reverse=True):              # largest rank that fits
                bits = state.costs.adapter_bits(rank, i)                # its own task's head
                t = (bits / state.downlink_rate_bps[i] + bits / state.uplink_rate_bps[i]
                     + state.costs.compute_time_s(np.array([i]), np.array([rank]), np.array([state.local_steps]))[0])
                if self.margin * t <= min(state.dwell_time_s[i], state.round_deadline_s):
                    chosen.append(i), ranks.append(rank)
                    break
        return Plan(participants=np.array(chosen, dtype=int), rank=np.array(ranks, dtype=int))

    def observe(self, feedback: RoundFeedback) -> dict:               # logged to strategy.csv
        self.lost += int((~feedback.delivered()).sum())
        return {"lost_so_far": self.lost, "mean_rank": float(np.mean(feedback.rank)) if len(feedback.rank) else 0.0}

    def state_dict(self) -> dict:                                       # for checkpoints / resume
        return {"lost": self.lost}

    def load_state_dict(self, state: dict) -> None:
        self.lost = int(state["lost"])
