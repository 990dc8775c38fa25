"""One flat MultiDiscrete action for libraries that take no Dict actions (e.g. stable-baselines3)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from iovsim.strategies.policy import ACTION_KEYS


class FlatActions(gym.ActionWrapper):
    """The action `Dict` as one MultiDiscrete: the per-slot vectors of participate, rank, power and
    bandwidth, concatenated in that order (gymnasium's Dict itself sorts its keys)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.keys = list(ACTION_KEYS)
        parts = [env.action_space[k].nvec for k in self.keys]
        self.sizes = [p.size for p in parts]
        self.action_space = spaces.MultiDiscrete(np.concatenate(parts))

    def action(self, action) -> dict:
        flat = np.asarray(action, dtype=np.int64).reshape(-1)
        cuts = np.cumsum(self.sizes)[:-1]
        return {k: part.copy() for k, part in zip(self.keys, np.split(flat, cuts))}
