"""Hierarchical aggregation: each RSU aggregates its vehicles' updates per task, then the cloud the RSUs'."""
from __future__ import annotations

from iovsim.engine.precision import as_sent
from iovsim.fl.aggregate import Update, state_rank


def vehicle_update(result, transfer_dtype: str = "fp32") -> Update:
    """A trained vehicle's update as the RSU received it (sent in `transfer_dtype`; weight = its samples)."""
    return Update(as_sent(result.state, transfer_dtype), result.num_samples, result.rank, result.vehicle_id,
                  {"loss_before": result.loss_before, "loss_after": result.loss_after})


def wrap(state: dict, updates: list[Update], source: str) -> Update:
    """A strategy's aggregate as an Update for the next level: total weight, the state's rank."""
    return Update(state=state, weight=sum(u.weight for u in updates), rank=state_rank(state), source=source)


def aggregate_task(strategy, global_state: dict, by_rsu: dict[int, list[Update]]) -> dict:
    """One task's new global adapter: RSU m aggregates by_rsu[m] (in RSU order), then the cloud.

    Without any update the global adapter is kept.
    """
    rsu_updates = [wrap(strategy.aggregate(ups, global_state), ups, f"rsu{m}") for m, ups in sorted(by_rsu.items())]
    if not rsu_updates:
        return global_state
    return strategy.aggregate(rsu_updates, global_state)


def aggregate_round(strategy, global_states: list, delivered, task_of: dict, results: dict, rsu_of: dict,
                    transfer_dtype: str = "fp32") -> list:
    """Every task's new global adapter from the delivered participants' training results.

    rsu_of: vehicle id -> the RSU its update reached (the new one after a migration), where it counts.
    transfer_dtype: the precision the updates were sent in (`fl.transfer_dtype`, engine.precision).
    """
    out = []
    for ti, g in enumerate(global_states):
        by_rsu: dict[int, list[Update]] = {}
        for p in delivered:
            if task_of[p.vehicle_id] == ti:
                by_rsu.setdefault(rsu_of[p.vehicle_id], []).append(vehicle_update(results[p.vehicle_id], transfer_dtype))
        out.append(aggregate_task(strategy, g, by_rsu))
    return out
