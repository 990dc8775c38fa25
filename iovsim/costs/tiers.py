"""Device tiers of the federated vehicles (the `devices:` section) and their per-vehicle columns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DeviceTier:
    """A class of on-board computer. Compute time = FLOPs / flops_per_s; energy = power_w x time, or
    kappa x cycles x f^2 when `cpu_frequency_hz` and `kappa` are set (the CMOS dynamic-power model
    of Mao et al., IEEE JSAC 2016, used by Tran et al., INFOCOM 2019 for FL)."""

    name: str = "mid"
    """Tier name (logged per vehicle)."""
    share: float = 1.0
    """Fraction of the FL vehicles in this tier (shares sum to 1)."""
    flops_per_s: float = 2e11
    """Sustained training throughput of the on-board accelerator."""
    power_w: float = 15.0
    """Power drawn while training."""
    memory_bytes: float = 4e9
    """Accelerator memory available for training."""
    cpu_frequency_hz: float = 0.0
    """Clock frequency f for the kappa*C*f^2 energy model (0 = use power_w x time)."""
    kappa: float = 0.0
    """Effective switched capacitance of the chip (J/cycle/Hz^2); 1e-28 is the common value
    (Mao et al. 2016; Tran et al. 2019 use alpha/2 = 2e-28). 0 = use power_w x time."""
    cycles_per_flop: float = 0.0
    """Cycles per FLOP for the kappa model (0 = cpu_frequency_hz / flops_per_s, so that C / f equals
    the compute time)."""

    def validate(self, err):
        if not 0 <= self.share <= 1:
            err("share", f"expected a fraction in [0, 1], got {self.share}")
        if self.flops_per_s <= 0:
            err("flops_per_s", f"expected a positive FLOP/s, got {self.flops_per_s}")
        if self.power_w <= 0:
            err("power_w", f"expected a positive power in watts, got {self.power_w}")
        for name in ("cpu_frequency_hz", "kappa", "cycles_per_flop"):
            if getattr(self, name) < 0:
                err(name, f"expected a number >= 0, got {getattr(self, name)}")


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
