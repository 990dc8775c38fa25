"""Policies (observation dict -> action dict) the tests hand to the `policy` strategy and to IovEnv."""
import numpy as np


def connected_by_tier(obs: dict) -> dict:
    """Every connected vehicle trains; rank index = its tier (mod 2); full power; equal bandwidth."""
    v = obs["vehicle_mask"].size
    return {"participate": ((obs["vehicle_mask"] == 1) & (obs["rsu"] >= 0)).astype(np.int64),
            "rank": (obs["tier"] % 2).astype(np.int64), "power": np.full(v, 2, np.int64),
            "bandwidth": np.zeros(v, np.int64)}


def scripted(obs: dict) -> dict:
    """Round 1: every slot asks to train, slot i at rank index i mod 3, power index i mod 3, bandwidth
    index (i + 1) mod 3. Later rounds: nobody trains."""
    v = obs["vehicle_mask"].size
    slot = np.arange(v, dtype=np.int64)
    first = int(obs["round_index"][0]) == 1
    return {"participate": np.full(v, int(first), np.int64), "rank": slot % 3, "power": slot % 3,
            "bandwidth": (slot + 1) % 3}
