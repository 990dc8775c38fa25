"""The strategy interface: a small object with a few verbs.

A strategy sees a `RoundState` (plain numbers: positions, links, handover windows, devices,
budgets) and returns a `Plan` (who trains, with which rank, power, bandwidth share, steps). After
the round it gets a `RoundFeedback`. It also owns the aggregation rule for adapters. It never talks
to SUMO or to a torch model; adapter states are plain dicts of tensors with predictable names:

    <module>.lora_A   (rank, in_features)     e.g. encoder.layer.0.attention.self.query.lora_A
    <module>.lora_B   (out_features, rank)
    <module>.delta    (out_features, in_features), optional: merged into the frozen base weight
    head.weight, head.bias                     the task head
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Update and state_rank belong with the aggregation math; re-exported for strategy authors.
from iovsim.fl.aggregate import Update, state_rank

StateDict = dict  # name -> torch.Tensor

TRANSFER_MODES = ("lose", "migrate", "early_upload")
"""Plan.train_options[k]["transfer_mode"]: what the engine does when a handover cuts the round (docs/strategies.md)."""
DELIVERED = ("ok", "migrated", "early")
"""RoundFeedback.status values of updates that were aggregated."""

__all__ = ["CostModel", "RoundState", "Plan", "RoundFeedback", "Strategy", "StateDict", "Update", "state_rank",
           "fit_rank", "TRANSFER_MODES", "DELIVERED"]


class CostModel(Protocol):
    """Latency/energy estimates a strategy may call while planning (numbers in, numbers out)."""

    def flops_per_step(self, rank: int) -> float: ...
    def adapter_bits(self, rank, vehicle=None) -> float | np.ndarray: ...  # vehicle: its own task's head
    def compute_time_s(self, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray) -> np.ndarray: ...
    def compute_energy_j(self, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray) -> np.ndarray: ...
    def upload_rate_bps(self, vehicle: np.ndarray, tx_power_w: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray: ...


@dataclass
class RoundState:
    """What a strategy sees at the start of a round. Arrays are indexed by vehicle (N,) or RSU (M,)."""

    round_index: int
    time_s: float
    vehicle_ids: list[str]
    task: np.ndarray                 # (N,) task index of each vehicle
    task_names: list[str]
    rsu: np.ndarray                  # (N,) serving RSU index, -1 = not connected
    num_rsus: int
    x_m: np.ndarray
    y_m: np.ndarray
    speed_mps: np.ndarray
    sinr_db: np.ndarray              # (N,) uplink SINR at the default transmit power
    uplink_rate_bps: np.ndarray      # (N,) with the default power and an equal bandwidth share
    downlink_rate_bps: np.ndarray    # (N,)
    dwell_time_s: np.ndarray         # (N,) predicted time left in the serving cell (inf = unknown/long)
    tier: np.ndarray                 # (N,) device tier index
    device_flops_per_s: np.ndarray   # (N,)
    device_power_w: np.ndarray       # (N,)
    device_memory_bytes: np.ndarray  # (N,)
    num_samples: np.ndarray          # (N,) local training examples
    rsu_bandwidth_hz: np.ndarray     # (M,)
    rsu_load: np.ndarray             # (M,) FL vehicles connected to each RSU
    energy_budget_j: np.ndarray      # (T,) per-round energy budget per task (inf = unbounded)
    max_participants: int
    local_steps: int
    default_rank: int
    ranks: list[int]
    default_tx_power_w: float
    max_tx_power_w: float
    round_deadline_s: float
    costs: Any = None                # a CostModel
    extra: dict = field(default_factory=dict)
    backhaul_latency_s: float = 0.005  # RSU-to-RSU link a `migrate` participant's upload is forwarded over
    backhaul_rate_bps: float = 1e9
    max_vehicles: int = 0              # most federated vehicles on the map at once (mobility.fl_vehicles; 0 = no cap)
    fading_k_factor: np.ndarray | None = None  # (N,) Rician K of each serving link under channel.fading (0 = Rayleigh,
                                               # inf = none); None: the channel has no small-scale fading.
                                               # Rates above are mean rates; iovsim.channel.fading.exceed_probability
                                               # gives P(|h|^2 >= x) under this K.
    fits_memory: np.ndarray | None = None  # (N,) True where the vehicle's device memory holds its training job at
                                           # the run's largest rank (costs.memory.training_bytes); None: all do

    @property
    def num_vehicles(self) -> int:
        return len(self.vehicle_ids)

    def connected(self) -> np.ndarray:
        """The vehicles a strategy may ask to train: connected to an RSU, with a device whose memory
        holds the training job (`fits_memory`). Every shipped strategy picks its participants from
        these; the engine refuses a plan that asks any other vehicle."""
        ok = np.asarray(self.rsu) >= 0
        if self.fits_memory is not None:
            ok = ok & np.asarray(self.fits_memory, dtype=bool)
        return np.flatnonzero(ok)


@dataclass
class Plan:
    """What a strategy decides for a round. Arrays are indexed by participant (K,)."""

    participants: np.ndarray                     # (K,) indices into RoundState.vehicle_ids
    rank: np.ndarray                             # (K,) LoRA rank each participant trains
    local_steps: np.ndarray | None = None        # (K,) None = RoundState.local_steps
    tx_power_w: np.ndarray | None = None         # (K,) None = default power
    bandwidth_share: np.ndarray | None = None    # (K,) fraction of the serving RSU's bandwidth; None = equal share
    train_options: list[dict] | None = None      # (K,) per-participant options for local training and the
                                                 # transfer: "transfer_mode" lose (default) | migrate | early_upload
    download_bits: np.ndarray | None = None      # (K,) what each downloads; None = the adapter at its rank
    extra: dict = field(default_factory=dict)    # strategy-specific decisions logged per round

    def __post_init__(self):
        self.participants = np.asarray(self.participants, dtype=int)
        self.rank = np.broadcast_to(np.asarray(self.rank, dtype=int), self.participants.shape).copy()


@dataclass
class RoundFeedback:
    """What happened in a round, per participant (K,) and per task (T,)."""

    round_index: int
    time_s: float
    vehicle_ids: list[str]
    task: np.ndarray
    rank: np.ndarray
    status: list[str]                # delivered: ok | migrated | early; lost: lost_handover | lost_left | lost_deadline
    compute_time_s: np.ndarray
    upload_time_s: np.ndarray
    latency_s: np.ndarray
    energy_j: np.ndarray
    train_loss_before: np.ndarray    # nan where not trained
    train_loss_after: np.ndarray
    task_accuracy: np.ndarray        # (T,) after aggregation; NaN in rounds not evaluated (fl.eval_every)
    task_loss: np.ndarray            # (T,)
    task_energy_j: np.ndarray        # (T,)
    round_latency_s: float
    extra: dict = field(default_factory=dict)
    local_accuracy: np.ndarray | None = None   # (K,) accuracy in [0, 1] on the held-out probe after training;
                                               # nan where not trained (None: all nan)

    def __post_init__(self):
        k = len(self.vehicle_ids)
        self.local_accuracy = (np.full(k, np.nan) if self.local_accuracy is None
                               else np.asarray(self.local_accuracy, dtype=float).reshape(k))

    def delivered(self) -> np.ndarray:
        """(K,) True where the update reached an RSU and was aggregated (ok, migrated or early)."""
        return np.asarray([s in DELIVERED for s in self.status], dtype=bool)


def fit_rank(state: StateDict, rank: int) -> StateDict:
    """Truncate (first `rank` components) or zero-pad an adapter to `rank`; other entries unchanged."""
    import torch

    out = {}
    for k, v in state.items():
        if k.endswith(".lora_A"):
            r = v.shape[0]
            out[k] = v[:rank].clone() if r >= rank else torch.cat([v, v.new_zeros(rank - r, v.shape[1])], 0)
        elif k.endswith(".lora_B"):
            r = v.shape[1]
            out[k] = v[:, :rank].clone() if r >= rank else torch.cat([v, v.new_zeros(v.shape[0], rank - r)], 1)
        else:
            out[k] = v
    return out


class Strategy:
    """Base class. Override `configure`; override `aggregate` / `client_state` for non-FedAvg methods.

    Subclasses set `name`, take their parameters as keyword arguments (from `strategy.params` in
    the config), and keep any memory they need between rounds as JSON-able data returned by
    `state_dict()` so a resumed run continues exactly.
    """

    name = "base"
    lora_alpha = 16.0   # set by setup from fl.lora_alpha

    def __init__(self, **params):
        if params:
            raise TypeError(f"unknown parameter(s): {', '.join(sorted(params))}")

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        """Called once before round 1: the number of tasks, the run's seed, and the LoRA scaling
        numerator (`fl.lora_alpha`; peft scales an adapter by lora_alpha / rank)."""
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self.lora_alpha = float(lora_alpha)

    def configure(self, state: RoundState) -> Plan:
        raise NotImplementedError

    def client_state(self, global_state: StateDict, rank: int) -> StateDict:
        """The adapter a participant of rank `rank` starts from.

        Default: the global adapter fitted to `rank` (first `rank` rows of A and columns of B, or
        zero-padded; B rescaled so that peft's alpha/rank scaling keeps the update). The cloud keeps
        whatever `aggregate` returns as the next global adapter.
        """
        from iovsim.fl.aggregate import resize_rank

        return resize_rank(global_state, rank, rescale=True)

    def aggregate(self, updates: list[Update], global_state: StateDict) -> StateDict:
        """Combine updates (vehicles at an RSU, or RSUs at the cloud) into one adapter state.

        The engine wraps the result (weight = the updates' total weight, rank = the state's rank,
        source = the RSU). Default: sample-weighted FedAvg; where ranks differ, zero-padding to the
        largest rank (which is FedAvg for equal ranks).
        """
        from iovsim.fl.aggregate import fedavg, zero_pad_aggregate

        ranks = {u.rank for u in updates}
        if len(ranks) == 1:
            return fedavg(updates).state
        return zero_pad_aggregate(updates, max(ranks))

    def observe(self, feedback: RoundFeedback) -> dict:
        """Learn from the round; return numbers to log in strategy.csv (may be empty)."""
        return {}

    def state_dict(self) -> dict:
        """JSON-able memory for checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
