"""The federated fleet: each enrolled vehicle's task, device tier and data shard, by enrolment order."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VehicleInfo:
    index: int            # enrolment order
    task: int
    tier: int
    shard: np.ndarray     # rows of the task's training pool


class Fleet:
    """Vehicles enrolled so far. Enrolment is a function of (seed, enrolment order) only, so a
    replayed run (resume) rebuilds the same fleet."""

    def __init__(self, seed: int, tier_shares: list[float], shards: list[list[np.ndarray]]):
        self.seed = seed
        self.tier_p = np.asarray(tier_shares, dtype=float) / sum(tier_shares)
        self.shards = shards
        self.vehicles: dict[str, VehicleInfo] = {}
        self._task_counts = [0] * len(shards)

    def enrol(self, vehicle_id: str) -> VehicleInfo:
        k = len(self.vehicles)
        rng = np.random.default_rng([self.seed, 7, k])
        task = k % len(self.shards)
        tier = int(rng.choice(len(self.tier_p), p=self.tier_p))
        shards = self.shards[task]
        shard = shards[self._task_counts[task] % len(shards)]
        self._task_counts[task] += 1
        info = self.vehicles[vehicle_id] = VehicleInfo(k, task, tier, shard)
        return info

    def __getitem__(self, vehicle_id: str) -> VehicleInfo:
        return self.vehicles[vehicle_id]

    def __len__(self) -> int:
        return len(self.vehicles)

    def to_json(self) -> dict:
        return {v: {"index": i.index, "task": i.task, "tier": i.tier} for v, i in self.vehicles.items()}

    def mismatch(self, saved: dict) -> str | None:
        """The first vehicle of a checkpoint's fleet that this fleet does not match, or None."""
        for v, i in saved.items():
            mine = self.vehicles.get(v)
            if mine is None or mine.task != i["task"] or mine.tier != i["tier"]:
                return v
        return None


def dirichlet_task_shards(tasks_cfg, tasks_data, seed: int, samples_per_vehicle: int, min_samples: int):
    """Per task, the non-IID shards vehicles draw from (Dirichlet over labels, one stream per task;
    equal random shares for instruction data, see iovsim.fl.data.task_shards)."""
    from iovsim.fl.data import task_shards

    shards = []
    for ti, (tc, data) in enumerate(zip(tasks_cfg, tasks_data)):
        n_shards = max(1, len(data.train_labels) // samples_per_vehicle)
        rng = np.random.default_rng([seed, 2, ti])
        shards.append(task_shards(data, n_shards, tc.dirichlet_alpha, rng, min_samples))
    return shards
