"""The gymnasium spaces of `IovEnv`: what `iovsim.strategies.policy.encode_state` fills and
`plan_from_action` reads (docs/rl_env.md)."""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

from iovsim.strategies.policy import VEHICLE_FEATURES, ActionSpec

SIGNED = {"x_m", "y_m", "sinr_db"}   # the other features are >= 0


def observation_space(spec: ActionSpec, num_tasks: int, num_tiers: int) -> spaces.Dict:
    v, m = spec.max_vehicles, spec.max_rsus

    def box(n, low=0.0):
        return spaces.Box(low, np.inf, shape=(n,), dtype=np.float32)

    fields = {"vehicle_mask": spaces.MultiBinary(v), "task": spaces.MultiDiscrete([num_tasks] * v),
              "tier": spaces.MultiDiscrete([num_tiers] * v),
              "rsu": spaces.MultiDiscrete([m + 1] * v, start=[-1] * v)}
    fields.update({name: box(v, -np.inf if name in SIGNED else 0.0) for name in VEHICLE_FEATURES})
    fields.update({"rsu_mask": spaces.MultiBinary(m), "rsu_bandwidth_hz": box(m), "rsu_load": box(m),
                   "energy_budget_j": box(num_tasks), "round_index": box(1), "time_s": box(1)})
    return spaces.Dict(fields)


def action_space(spec: ActionSpec) -> spaces.Dict:
    v = spec.max_vehicles
    return spaces.Dict({"participate": spaces.MultiDiscrete([2] * v),
                        "rank": spaces.MultiDiscrete([len(spec.ranks)] * v),
                        "power": spaces.MultiDiscrete([len(spec.power_fractions)] * v),
                        "bandwidth": spaces.MultiDiscrete([len(spec.bandwidth_weights)] * v)})
