"""What the engine and the strategies may ask of a cost model, and what it needs from the radio.

`CostModelProtocol` is the authoritative interface (strategies.base re-exports it as `CostModel`
for type hints); `iovsim.costs.model.CostModel` implements every method. `vehicle` arguments are
row indices of the vehicles the model was built for; `rank` and `steps` broadcast with them.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np


class LinkRates(Protocol):
    """Achievable rates of the vehicles of one link snapshot (e.g. `iovsim.channel.Channel.rates(link)`)."""

    max_tx_power_w: float

    def uplink_rate_bps(self, vehicle: np.ndarray, tx_power_w: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray: ...

    def downlink_rate_bps(self, vehicle: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray: ...


class CostModelProtocol(Protocol):
    """Latency, energy and bits of one round of local LoRA training (numbers in, numbers out)."""

    def flops_per_step(self, rank) -> float | np.ndarray: ...

    def adapter_bits(self, rank) -> float | np.ndarray: ...

    def delta_bits(self) -> float: ...

    def split_upload_bits(self, rank, steps) -> float | np.ndarray: ...

    def split_download_bits(self, rank, steps) -> float | np.ndarray: ...

    def compute_time_s(self, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray) -> np.ndarray: ...

    def compute_energy_j(self, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray) -> np.ndarray: ...

    def device_compute_time_s(self, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray) -> np.ndarray: ...

    def device_compute_energy_j(self, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray) -> np.ndarray: ...

    def upload_rate_bps(self, vehicle: np.ndarray, tx_power_w: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray: ...

    def download_rate_bps(self, vehicle: np.ndarray, bandwidth_hz: np.ndarray) -> np.ndarray: ...
