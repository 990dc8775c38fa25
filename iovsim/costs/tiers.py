"""Device tiers of the federated vehicles (the `devices:` section) and their per-vehicle columns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DeviceTier:
    """A class of on-board computer. Compute time = FLOPs / flops_per_s; energy = power_w x time, or
    kappa x cycles x f^2 when `cpu_frequency_hz` and `kappa` are set (the CMOS dynamic-power model
    of Mao et al., IEEE JSAC 2016, used by Tran et al., INFOCOM 2019 for FL)."""

    name: str = "mid"
    """Tier name (logged per vehicle)."""
    share: float = field(default=1.0, metadata={"ge": 0, "le": 1})
    """Fraction of the FL vehicles in this tier (shares sum to 1)."""
    flops_per_s: float = field(default=2e11, metadata={"gt": 0, "le": 1e18, "unit": "FLOP/s"})
    """Sustained training throughput of the on-board accelerator."""
    power_w: float = field(default=15.0, metadata={"gt": 0, "le": 1e5})
    """Power drawn while training."""
    memory_bytes: float = field(default=4e9, metadata={"gt": 0, "le": 1e15})
    """Accelerator memory available for training. A vehicle whose training job (frozen base, LoRA
    with gradients and AdamW moments, activations; `iovsim.costs.memory`) at the run's largest rank
    does not fit is never asked to train."""
    cpu_frequency_hz: float = field(default=0.0, metadata={"ge": 0, "le": 1e11})
    """Clock frequency f for the kappa*C*f^2 energy model (0 = use power_w x time)."""
    kappa: float = field(default=0.0, metadata={"ge": 0, "le": 1, "unit": "J/cycle/Hz^2"})
    """Effective switched capacitance of the chip (J/cycle/Hz^2); 1e-28 is the common value
    (Mao et al. 2016; Tran et al. 2019 use alpha/2 = 2e-28). 0 = use power_w x time."""
    cycles_per_flop: float = field(default=0.0, metadata={"ge": 0, "le": 1e6})
    """Cycles per FLOP for the kappa model (0 = cpu_frequency_hz / flops_per_s, so that C / f equals
    the compute time)."""


def default_device_tiers() -> list[DeviceTier]:
    # Three tiers loosely matching automotive SoCs (entry ARM CPU, mid NPU, high-end GPU SoC).
    return [
        DeviceTier(name="low", share=0.3, flops_per_s=5e10, power_w=8.0, memory_bytes=2e9),
        DeviceTier(name="mid", share=0.4, flops_per_s=2e11, power_w=15.0, memory_bytes=4e9),
        DeviceTier(name="high", share=0.3, flops_per_s=1e12, power_w=40.0, memory_bytes=16e9),
    ]


@dataclass(frozen=True)
class TierColumns:
    """Per-vehicle device parameters (rows aligned with the vehicles), as `CostModel` takes them."""

    flops_per_s: np.ndarray
    power_w: np.ndarray
    memory_bytes: np.ndarray
    cpu_frequency_hz: np.ndarray
    kappa: np.ndarray
    cycles_per_flop: np.ndarray


def tier_columns(tiers: list[DeviceTier], tier_of_vehicle) -> TierColumns:
    """The parameters of each vehicle's tier, `tier_of_vehicle[k]` indexing `tiers`."""
    idx = np.asarray(tier_of_vehicle, dtype=int)

    def col(name: str) -> np.ndarray:
        return np.asarray([getattr(tiers[t], name) for t in idx], dtype=float)

    return TierColumns(col("flops_per_s"), col("power_w"), col("memory_bytes"), col("cpu_frequency_hz"),
                       col("kappa"), col("cycles_per_flop"))
