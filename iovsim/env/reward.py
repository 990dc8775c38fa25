"""The reward of one round, from its metrics.csv rows."""
from __future__ import annotations

import numpy as np

from iovsim.env.config import EnvConfig


def reward_terms(rows: list[dict], accuracy_before: float) -> dict[str, float]:
    """The round's accuracy gain (mean over tasks), latency, energy and lost updates.

    A round that was not evaluated (fl.eval_every) gains 0; the next evaluated round gets the whole
    change since the last measurement, so an episode's summed gain does not depend on fl.eval_every."""
    scored = rows and all(r["accuracy"] != "" for r in rows)
    accuracy = float(np.mean([float(r["accuracy"]) for r in rows])) if scored else accuracy_before
    return {"accuracy": accuracy, "accuracy_gain": accuracy - accuracy_before,
            "round_latency_s": float(rows[0]["round_latency_s"]) if rows else 0.0,
            "energy_j": float(sum(float(r["energy_j"]) for r in rows)),
            "lost_updates": float(sum(int(r["lost_updates"]) for r in rows))}


def reward(terms: dict[str, float], cfg: EnvConfig) -> float:
    """The weighted sum of `reward_terms` (EnvConfig's docstring has the formula)."""
    return float(cfg.accuracy_weight * terms["accuracy_gain"] - cfg.latency_weight_per_s * terms["round_latency_s"]
                 - cfg.energy_weight_per_j * terms["energy_j"] - cfg.lost_update_weight * terms["lost_updates"])
