"""Traffic and energy efficiency of a run, from its vehicles.csv rows (one row per participant and round).

- `uplink_mb` / `downlink_mb`: every bit the vehicles sent and received over the air (updates,
  global adapters, split training's activations and gradients), lost or delivered, in MB (1e6 bytes).
  FlowerTune ranks communication this way.
- `delivered_mb`: the uplink bits of updates that counted (status ok, migrated or early).
- `device_energy_j`: the vehicles' energy (compute + radio), as charged by the engine; edge energy apart.
- `delivered_bits_per_j`: energy efficiency in the communication sense, delivered update bits per joule
  of device energy (arXiv 2509.19306 reports "energy efficiency" without defining it in its abstract;
  bits per joule is the usual wireless-FL reading, accuracy per energy the other).
"""
from __future__ import annotations

from iovsim.strategies.base import DELIVERED

BITS_PER_MB = 8e6


def _num(row: dict, key: str) -> float:
    v = row.get(key, "")
    return float(v) if v not in ("", None) else 0.0


def traffic(vehicle_rows: list[dict]) -> dict:
    up = sum(_num(r, "bits_up") for r in vehicle_rows)
    down = sum(_num(r, "bits_down") for r in vehicle_rows)
    delivered = sum(_num(r, "bits_up") for r in vehicle_rows if r.get("status") in DELIVERED)
    energy = sum(_num(r, "energy_j") for r in vehicle_rows)
    return {"uplink_mb": up / BITS_PER_MB, "downlink_mb": down / BITS_PER_MB, "delivered_mb": delivered / BITS_PER_MB,
            "device_energy_j": energy, "delivered_bits_per_j": delivered / energy if energy > 0 else 0.0}
