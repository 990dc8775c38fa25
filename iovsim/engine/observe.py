"""Observing a round: the RoundState a strategy plans from (links, rates, predicted dwell, devices).

The engine's only contact with the compute/communication cost model is in `cost_model` and
`participant_costs` below, so a change of that model's interface is fixed here alone.
"""
from __future__ import annotations

import numpy as np

from iovsim.strategies.base import RoundState


def dbm_to_w(dbm: float) -> float:
    return 10 ** ((dbm - 30) / 10)


# ----------------------------------------------------------------------------- the cost model

def cost_model(shapes: list, view, channel, devices, tier: np.ndarray, task: np.ndarray):
    """Latency/energy model of the vehicles of `view.link` (rows aligned with its vehicle ids); each
    vehicle's compute is costed on its own task's shape (sequence length, head)."""
    from iovsim.costs import CostModel
    from iovsim.costs.tiers import tier_columns

    cols = tier_columns(devices, tier)
    return CostModel(shapes[0], flops_per_s=cols.flops_per_s, power_w=cols.power_w,
                     cpu_frequency_hz=cols.cpu_frequency_hz, kappa=cols.kappa,
                     cycles_per_flop=cols.cycles_per_flop, rates=channel.rates(view.link),
                     row_shapes=[shapes[int(t)] for t in task])


def participant_costs(costs, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray, split: list[bool]):
    """Per participant: (download bits, upload bits, compute time s, energy of the whole compute j).

    Split training exchanges activations (up) and their gradients (down) every step; they are
    costed as one download and one upload phase of the same total size around the compute.
    """
    k_all = range(len(vehicle))
    up_bits = np.asarray([float(costs.split_upload_bits(int(rank[k]), int(steps[k]))) if split[k]
                          else float(costs.adapter_bits(int(rank[k]))) for k in k_all])
    down_bits = np.asarray([float(costs.split_download_bits(int(rank[k]), int(steps[k]))) if split[k]
                            else float(costs.adapter_bits(int(rank[k]))) for k in k_all])
    compute_s = costs.compute_time_s(vehicle, rank, steps) if len(vehicle) else np.zeros(0)
    if any(split):
        compute_s = np.where(split, costs.device_compute_time_s(vehicle, rank, steps), compute_s)
    energy_j = np.asarray([float(costs.compute_energy_j(np.asarray([int(vehicle[k])]), np.asarray([int(rank[k])]),
                                                        np.asarray([int(steps[k])]))[0]) for k in k_all])
    return down_bits, up_bits, compute_s, energy_j


# ----------------------------------------------------------------------------- the round state

def link_rates(channel, link, default_tx_power_w: float):
    """Serving RSU, RSU load, and each vehicle's up/down rate with an equal share of its RSU's bandwidth."""
    n, m = len(link.vehicle_ids), channel.num_rsus
    serving = np.asarray(link.serving, dtype=int)
    load = np.bincount(serving[serving >= 0], minlength=m) if n else np.zeros(m, int)
    s = np.maximum(serving, 0)
    share_bw = np.where(serving >= 0, channel.rsu_bandwidth_hz[s] / np.maximum(load[s], 1), 0.0)
    idx = np.arange(n)
    up = channel.uplink_rate_bps(link, idx, np.full(n, default_tx_power_w), share_bw) if n else np.zeros(0)
    down = channel.downlink_rate_bps(link, idx, share_bw) if n else np.zeros(0)
    return serving, load, up, down


def predict_dwell(channel, view, route_ahead, routes: dict, horizon_s: float, dt_s: float) -> np.ndarray:
    """Each vehicle's predicted time left in its serving cell, along its route ahead."""
    snap, link = view.snap, view.link
    ids = list(link.vehicle_ids)
    if not ids:
        return np.zeros(0)
    pos = {v: i for i, v in enumerate(snap.vehicle_ids)}
    fut_xy, fut_t = [], []
    for v in ids:
        i = pos[v]
        t, xy = route_ahead.positions(routes.get(v, ()), int(snap.route_index[i]), snap.edge[i],
                                      float(snap.lane_pos_m[i]), snap.xy_m[i], float(snap.speed_mps[i]), horizon_s, dt_s)
        fut_t.append(t)
        fut_xy.append(xy)
    return np.asarray(channel.predict_dwell_s(link, np.arange(len(ids)), fut_xy, fut_t), dtype=float)


def observe_round(r: int, cfg, view, channel, fleet, shapes: list, dwell_s: np.ndarray) -> RoundState:
    """The RoundState of round `r` at the step `view` (shapes: per task; dwell_s: from `predict_dwell`)."""
    fl, link, snap = cfg.fl, view.link, view.snap
    ids = list(link.vehicle_ids)
    n = len(ids)
    info = [fleet[v] for v in ids]
    tier = np.asarray([i.tier for i in info], dtype=int)
    task = np.asarray([i.task for i in info], dtype=int)
    devices = [cfg.devices[t] for t in tier]
    default_p = dbm_to_w(cfg.channel.vehicle_tx_power_dbm)
    serving, load, up, down = link_rates(channel, link, default_p)
    xy = np.asarray(link.xy_m) if n else np.zeros((0, 2))
    return RoundState(
        round_index=r, time_s=snap.time_s, vehicle_ids=ids, task=task,
        task_names=[t.name for t in fl.tasks], rsu=serving, num_rsus=channel.num_rsus, x_m=xy[:, 0], y_m=xy[:, 1],
        speed_mps=np.asarray(snap.speed_mps, dtype=float), sinr_db=np.asarray(link.uplink_sinr_db, dtype=float),
        uplink_rate_bps=up, downlink_rate_bps=down, dwell_time_s=dwell_s, tier=tier,
        device_flops_per_s=np.asarray([d.flops_per_s for d in devices], dtype=float),
        device_power_w=np.asarray([d.power_w for d in devices], dtype=float),
        device_memory_bytes=np.asarray([d.memory_bytes for d in devices], dtype=float),
        num_samples=np.asarray([len(i.shard) for i in info], dtype=int), rsu_bandwidth_hz=channel.rsu_bandwidth_hz,
        rsu_load=load, energy_budget_j=np.asarray([tc.energy_budget_j if tc.energy_budget_j > 0 else np.inf
                                                   for tc in fl.tasks]),
        max_participants=fl.participants_per_round, local_steps=fl.local_steps, default_rank=fl.lora_rank,
        ranks=list(fl.lora_ranks), default_tx_power_w=default_p,
        max_tx_power_w=dbm_to_w(cfg.channel.vehicle_max_tx_power_dbm), round_deadline_s=fl.round_deadline_s,
        costs=cost_model(shapes, view, channel, cfg.devices, tier, task),
        backhaul_latency_s=cfg.channel.backhaul_latency_s, backhaul_rate_bps=cfg.channel.backhaul_rate_bps,
        max_vehicles=cfg.mobility.fl_vehicles, fading_k_factor=channel.fading_k_factor(link))
