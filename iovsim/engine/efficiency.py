"""Traffic and energy efficiency of a run, from its vehicles.csv rows (one row per participant and round).

- `uplink_mb` / `downlink_mb`: every bit the vehicles sent and received over the air (updates,
  global adapters, split training's activations and gradients), lost or delivered, in MB (1e6 bytes).
  FlowerTune ranks communication this way.
- `delivered_mb`: the update bits of the updates that counted (status ok, migrated or early): each
  one's adapter at its rank on its own task's shape (its head's classes), in the run's transfer dtype,
  the `update_bits` column (`engine.observe.update_bits`, the cost model's `adapter_bits`, what the
  engine charges an unsplit upload with). Split and unsplit alike: a split participant's update is
  its device part (sent over the air) plus the edge's adapters; the activations and gradients of its
  steps are traffic (`uplink_mb`), not update.
- `device_energy_j`: the vehicles' energy (compute + radio), as charged by the engine; edge energy apart.
- `delivered_bits_per_j`: energy efficiency in the communication sense, delivered update bits per joule
  of device energy (arXiv 2509.19306 reports "energy efficiency" without defining it in its abstract;
  bits per joule is the usual wireless-FL reading, accuracy per energy the other).

A vehicles.csv written before the `update_bits` column (`row_update_bits`): an unsplit row's update
is its `bits_up` (its upload was the update, priced then on the first task's head); a split row's
`bits_up` counts its activations too, so its update is unknown here and the delivered metrics are
nan, unless the caller filled `update_bits` in from the run's config (`iovsim.runs.update_bits`).
"""
from __future__ import annotations

from iovsim.strategies.base import DELIVERED

BITS_PER_MB = 8e6


def _num(row: dict, key: str) -> float:
    v = row.get(key, "")
    return float(v) if v not in ("", None) else 0.0


def _empty(row: dict, key: str) -> bool:
    return row.get(key, "") in ("", None)


def lacks_update_bits(row: dict) -> bool:
    """A split row (`steps_done` set) of an older run, without an `update_bits` cell."""
    return _empty(row, "update_bits") and not _empty(row, "steps_done")


def row_update_bits(row: dict) -> float:
    """A participant's update bits: its `update_bits` cell; without one (an older run), `bits_up` for an
    unsplit row (`steps_done` empty) and nan for a split row."""
    if lacks_update_bits(row):
        return float("nan")
    return _num(row, "bits_up") if _empty(row, "update_bits") else float(row["update_bits"])


def traffic(vehicle_rows: list[dict]) -> dict:
    up = sum(_num(r, "bits_up") for r in vehicle_rows)
    down = sum(_num(r, "bits_down") for r in vehicle_rows)
    delivered = sum(row_update_bits(r) for r in vehicle_rows if r.get("status") in DELIVERED)
    energy = sum(_num(r, "energy_j") for r in vehicle_rows)
    return {"uplink_mb": up / BITS_PER_MB, "downlink_mb": down / BITS_PER_MB, "delivered_mb": delivered / BITS_PER_MB,
            "device_energy_j": energy, "delivered_bits_per_j": delivered / energy if energy > 0 else 0.0}
