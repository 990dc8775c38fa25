"""The RoundFeedback a strategy learns from: what happened to each participant and each task."""
from __future__ import annotations

import math

import numpy as np

from iovsim.strategies.base import RoundFeedback


def round_feedback(r: int, t0_s: float, parts, outcomes, task_of: np.ndarray, results: dict, evals: list,
                   latency_s: float, plan_extra: dict) -> RoundFeedback:
    energy = np.asarray([o.energy_j for o in outcomes])
    vids = [p.vehicle_id for p in parts]

    def loss(vid, name):  # a training result's number, nan where the vehicle did not train
        return getattr(results[vid], name) if vid in results else np.nan

    return RoundFeedback(
        round_index=r, time_s=t0_s, vehicle_ids=vids, task=task_of,
        rank=np.asarray([p.rank for p in parts], dtype=int), status=[o.status for o in outcomes],
        compute_time_s=np.asarray([o.compute_time_s for o in outcomes]),
        upload_time_s=np.asarray([o.upload_time_s for o in outcomes]),
        latency_s=np.asarray([(o.done_at_s - t0_s) if not math.isnan(o.done_at_s) else np.nan for o in outcomes]),
        energy_j=energy,
        train_loss_before=np.asarray([loss(v, "loss_before") for v in vids]),
        train_loss_after=np.asarray([loss(v, "loss_after") for v in vids]),
        local_accuracy=np.asarray([loss(v, "acc_after") for v in vids], dtype=float),
        task_accuracy=np.asarray([e.accuracy for e in evals]), task_loss=np.asarray([e.loss for e in evals]),
        task_energy_j=np.asarray([energy[task_of == ti].sum() for ti in range(len(evals))]),
        round_latency_s=latency_s, extra=dict(plan_extra))
