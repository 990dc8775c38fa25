"""A learned scheduler as a strategy: a RoundState becomes fixed-size arrays, an action becomes a Plan.

The arrays and the action are those of `iovsim.env.IovEnv` (docs/rl_env.md). Slot i of every
per-vehicle array is row i of the RoundState: the federated vehicles on the map in enrolment order,
padded with zeros to `max_vehicles` (`vehicle_mask` says which slots are real); per-RSU arrays are
padded to `max_rsus` the same way. numpy only, so that a trained policy plugs into `iovsim run`
and `iovsim compare` without gymnasium.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import TRANSFER_MODES, Plan, RoundState, Strategy

VEHICLE_FEATURES = ("x_m", "y_m", "speed_mps", "sinr_db", "uplink_rate_bps", "downlink_rate_bps", "dwell_time_s",
                    "device_flops_per_s", "device_power_w", "device_memory_bytes", "num_samples")
"""Per-vehicle float32 features, copied from the RoundState fields of the same name."""
ACTION_KEYS = ("participate", "rank", "power", "bandwidth")

__all__ = ["ActionSpec", "VEHICLE_FEATURES", "ACTION_KEYS", "encode_state", "plan_from_action", "PolicyStrategy",
           "load_callable"]


@dataclass(frozen=True)
class ActionSpec:
    """How an action's level indices map to a plan (the env and the `policy` strategy share it)."""

    max_vehicles: int
    max_rsus: int
    ranks: tuple[int, ...]                                # rank index -> LoRA rank (fl.lora_ranks)
    power_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)   # power index -> fraction of the max transmit power
    bandwidth_weights: tuple[float, ...] = (1.0, 2.0, 4.0)  # bandwidth index -> weight of the share of its RSU
    transfer_mode: str = "lose"                            # every participant's transfer mode

    def __post_init__(self):
        if self.max_vehicles < 1 or self.max_rsus < 1:
            raise ValueError(f"max_vehicles and max_rsus must be >= 1, got {self.max_vehicles}, {self.max_rsus}")
        if not self.ranks or min(self.ranks) < 1:
            raise ValueError(f"ranks must be a non-empty list of ranks >= 1, got {list(self.ranks)}")
        if not self.power_fractions or not all(0 < f <= 1 for f in self.power_fractions):
            raise ValueError(f"power_fractions must lie in (0, 1], got {list(self.power_fractions)}")
        if not self.bandwidth_weights or not all(w > 0 for w in self.bandwidth_weights):
            raise ValueError(f"bandwidth_weights must be > 0, got {list(self.bandwidth_weights)}")
        if self.transfer_mode not in TRANSFER_MODES:
            raise ValueError(f"transfer_mode must be one of {', '.join(TRANSFER_MODES)}, got {self.transfer_mode!r}")


def _padded(values, size: int, dtype) -> np.ndarray:
    out = np.zeros(size, dtype=dtype)
    v = np.asarray(values, dtype=float)[:size]
    out[:v.size] = v
    return out


def encode_state(state: RoundState, spec: ActionSpec, num_tasks: int) -> dict[str, np.ndarray]:
    """The observation of `state`: padded arrays and masks (keys and meaning in docs/rl_env.md).

    Infinite dwell (no handover within the prediction horizon) becomes twice the round deadline,
    the horizon the engine predicts over; an unbounded energy budget becomes 0, as in the config.
    """
    n, v_max, m_max = state.num_vehicles, spec.max_vehicles, spec.max_rsus
    if n > v_max or state.num_rsus > m_max:
        raise ValueError(f"{n} vehicles / {state.num_rsus} RSUs do not fit the observation's "
                         f"max_vehicles={v_max} / max_rsus={m_max}")
    horizon_s = 2.0 * float(state.round_deadline_s)
    obs = {"vehicle_mask": _padded(np.ones(n), v_max, np.int8),
           "task": _padded(state.task, v_max, np.int64), "tier": _padded(state.tier, v_max, np.int64),
           "rsu": np.full(v_max, -1, dtype=np.int64)}
    obs["rsu"][:n] = state.rsu
    for name in VEHICLE_FEATURES:
        x = np.asarray(getattr(state, name), dtype=float)
        if name == "dwell_time_s":
            x = np.minimum(np.nan_to_num(x, nan=0.0, posinf=horizon_s), horizon_s)
        obs[name] = _padded(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), v_max, np.float32)
    obs["rsu_mask"] = _padded(np.ones(state.num_rsus), m_max, np.int8)
    obs["rsu_bandwidth_hz"] = _padded(state.rsu_bandwidth_hz, m_max, np.float32)
    obs["rsu_load"] = _padded(state.rsu_load, m_max, np.float32)
    budget = np.asarray(state.energy_budget_j, dtype=float)
    obs["energy_budget_j"] = _padded(np.where(np.isfinite(budget), budget, 0.0), num_tasks, np.float32)
    obs["round_index"] = np.asarray([state.round_index], dtype=np.float32)
    obs["time_s"] = np.asarray([state.time_s], dtype=np.float32)
    return obs


def plan_from_action(state: RoundState, action: dict, spec: ActionSpec) -> Plan:
    """The plan an action asks for.

    Selected slots that are padding or not in `state.connected()` (no RSU, or a device that cannot
    hold the training job) are ignored; of the rest, the first
    `state.max_participants` in slot order train. Each trains at `ranks[rank]` with
    `power_fractions[power]` x the max transmit power; its share of its RSU's bandwidth is its
    `bandwidth_weights[bandwidth]` over the sum of the weights of the RSU's participants.
    """
    n = state.num_vehicles
    level = {k: np.asarray(action[k], dtype=np.int64).reshape(-1)[:n] for k in ACTION_KEYS}
    for key, count in (("rank", len(spec.ranks)), ("power", len(spec.power_fractions)),
                       ("bandwidth", len(spec.bandwidth_weights)), ("participate", 2)):
        if level[key].size < n or np.any((level[key] < 0) | (level[key] >= count)):
            raise ValueError(f"action[{key!r}]: expected {spec.max_vehicles} integers in [0, {count - 1}]")
    asked = np.intersect1d(np.flatnonzero(level["participate"] == 1), state.connected())
    chosen = asked[:max(int(state.max_participants), 0)]
    weight = np.asarray(spec.bandwidth_weights, dtype=float)[level["bandwidth"][chosen]]
    rsu = np.asarray(state.rsu)[chosen]
    per_rsu = np.bincount(rsu, weights=weight, minlength=max(state.num_rsus, 1)) if chosen.size else np.zeros(1)
    share = weight / per_rsu[rsu] if chosen.size else np.zeros(0)
    return Plan(participants=chosen, rank=np.asarray(spec.ranks, dtype=int)[level["rank"][chosen]],
                tx_power_w=np.asarray(spec.power_fractions)[level["power"][chosen]] * float(state.max_tx_power_w),
                bandwidth_share=share, train_options=[{"transfer_mode": spec.transfer_mode} for _ in chosen],
                extra={"asked": int(asked.size), "over_cap": int(asked.size - chosen.size)})


def load_callable(ref: str, base_dir=None):
    """`package.module:function` or `path/to/file.py:function` (relative to base_dir)."""
    from iovsim.strategies import _import_user_module

    mod_name, sep, attr = ref.rpartition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"policy must be 'module:function' or 'file.py:function', got {ref!r}")
    try:
        fn = getattr(_import_user_module(mod_name, base_dir), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load policy {ref!r}: {e}") from None
    if not callable(fn):
        raise ValueError(f"policy {ref!r} is not callable")
    return fn


@register("policy")
class PolicyStrategy(Strategy):
    """A policy (observation dict -> action dict, e.g. a trained RL agent) plans each round.

    Params: policy ("module:function" or "file.py:function", relative to the config's folder;
    empty = the action comes from `set_action`, which `iovsim.env.IovEnv` calls each step),
    max_vehicles / max_rsus (0 = the state's fleet cap / RSU count; set them to the env's when the
    policy was trained there), ranks (empty = fl.lora_ranks), power_fractions, bandwidth_weights,
    transfer_mode: see `ActionSpec`. Aggregation is the base default (FedAvg, zero-padding across ranks).
    """

    takes_base_dir = True   # `create` passes the config's folder, against which `policy` resolves

    def __init__(self, policy: str = "", max_vehicles: int = 0, max_rsus: int = 0, ranks: list | None = None,
                 power_fractions: list | None = None, bandwidth_weights: list | None = None,
                 transfer_mode: str = "lose", base_dir=None):
        super().__init__()
        self.policy_ref = str(policy)
        self.policy = load_callable(self.policy_ref, base_dir) if self.policy_ref else None
        self.max_vehicles, self.max_rsus = int(max_vehicles), int(max_rsus)
        self.ranks = tuple(int(r) for r in ranks or ())
        self.levels = {"power_fractions": tuple(float(x) for x in (power_fractions or ActionSpec.power_fractions)),
                       "bandwidth_weights": tuple(float(x) for x in (bandwidth_weights or ActionSpec.bandwidth_weights)),
                       "transfer_mode": str(transfer_mode)}
        ActionSpec(1, 1, self.ranks or (1,), **self.levels)  # bad levels fail here, before any round
        self.action: dict | None = None

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        self.num_tasks = num_tasks

    def spec(self, state: RoundState) -> ActionSpec:
        return ActionSpec(self.max_vehicles or int(state.max_vehicles) or max(state.num_vehicles, 1),
                          self.max_rsus or max(state.num_rsus, 1), self.ranks or tuple(state.ranks), **self.levels)

    def set_action(self, action: dict) -> None:
        """The action the next `configure` follows (used when no `policy` is given)."""
        self.action = action

    def configure(self, state: RoundState) -> Plan:
        spec = self.spec(state)
        if self.policy is not None:
            action = self.policy(encode_state(state, spec, self.num_tasks))
        elif self.action is not None:
            action, self.action = self.action, None
        else:
            raise ValueError("strategy policy: no params.policy and no action set for this round")
        return plan_from_action(state, action, spec)
