"""The RL environment's own settings: action levels, observation padding, reward weights."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EnvConfig:
    """Settings of `IovEnv` beside the experiment config (docs/rl_env.md).

    reward = accuracy_weight * (mean task accuracy after the round - before it)
             - latency_weight_per_s * round latency [s]
             - energy_weight_per_j * the participants' energy [J]
             - lost_update_weight * updates lost (handover, left the map, deadline)
    The defaults make a typical tiny round's terms comparable: an accuracy gain of a few points
    against a latency of seconds, energy of tens of joules and a lost update or two.
    """

    max_vehicles: int = 0
    """Vehicle slots of the observation and action; 0 = `mobility.fl_vehicles` (the fleet cap)."""
    max_rsus: int = 0
    """RSU slots of the observation; 0 = `rsu.count`."""
    power_fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    """Power levels: fractions of `channel.vehicle_max_tx_power_dbm` (in W)."""
    bandwidth_weights: tuple[float, ...] = (1.0, 2.0, 4.0)
    """Bandwidth levels: a participant's share of its RSU is its weight over its RSU's participants' total."""
    transfer_mode: str = "lose"
    """Every participant's transfer mode at a handover: lose | migrate | early_upload."""
    accuracy_weight: float = 1.0
    """Reward per unit of mean task accuracy gained in the round (accuracy in [0, 1])."""
    latency_weight_per_s: float = 0.01
    """Penalty per second of round latency."""
    energy_weight_per_j: float = 0.001
    """Penalty per joule the round's participants spent."""
    lost_update_weight: float = 0.1
    """Penalty per lost update."""
    episode_folders: bool = False
    """True: each episode writes `<run folder>/episode-NNNN`; False: each reset rewrites the run folder."""

    def __post_init__(self):
        if self.max_vehicles < 0 or self.max_rsus < 0:
            raise ValueError(f"max_vehicles and max_rsus must be >= 0, got {self.max_vehicles}, {self.max_rsus}")
        self.power_fractions = tuple(float(x) for x in self.power_fractions)
        self.bandwidth_weights = tuple(float(x) for x in self.bandwidth_weights)
