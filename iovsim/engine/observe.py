"""Observing a round: the RoundState a strategy plans from (links, rates, predicted dwell, devices).

The engine's only contact with the compute/communication cost model is in `cost_model`,
`fits_memory`, `participant_costs`, `update_bits`, `split_work` and `split_step_s` below, so a change
of that model's interface is fixed here alone.
"""
from __future__ import annotations

import numpy as np

from iovsim.strategies.base import RoundState


def dbm_to_w(dbm: float) -> float:
    return 10 ** ((dbm - 30) / 10)


# ----------------------------------------------------------------------------- the cost model

def cost_model(shapes: list, view, channel, devices, tier: np.ndarray, task: np.ndarray, split_layer: int,
               edge_flops_per_s):
    """Latency/energy model of the vehicles of `view.link` (rows aligned with its vehicle ids); each
    vehicle's compute is costed on its own task's shape (sequence length, head)."""
    from iovsim.costs import CostModel
    from iovsim.costs.tiers import tier_columns

    cols = tier_columns(devices, tier)
    return CostModel(shapes[0], flops_per_s=cols.flops_per_s, power_w=cols.power_w,
                     cpu_frequency_hz=cols.cpu_frequency_hz, kappa=cols.kappa,
                     cycles_per_flop=cols.cycles_per_flop, rates=channel.rates(view.link),
                     row_shapes=[shapes[int(t)] for t in task], split_layer=split_layer,
                     edge_flops_per_s=edge_flops_per_s)


def fits_memory(costs, num_vehicles: int, rank: int, memory_bytes: np.ndarray) -> np.ndarray:
    """(N,) True where a vehicle's device memory holds its training job at `rank` (the run's largest:
    a strategy may give it any rank up to that; `costs.memory.training_bytes`)."""
    if num_vehicles == 0:
        return np.zeros(0, dtype=bool)
    return costs.training_memory_bytes(np.arange(num_vehicles), int(rank)) <= np.asarray(memory_bytes, dtype=float)


def participant_costs(costs, vehicle: np.ndarray, rank: np.ndarray, steps: np.ndarray, split: list[bool]):
    """Per participant: (download bits, upload bits, compute time s, compute energy j).

    An unsplit participant downloads and uploads the adapter at its rank on its own task's shape
    (its head's classes). A split participant downloads and uploads the device's part of the adapter
    (head + its layers' adapters) and computes the device's share of each step; its per-step protocol
    is `split_work`.
    """
    k_all = range(len(vehicle))
    state_bits = [float(costs.split_state_bits(int(vehicle[k]), int(rank[k]))[0]) if split[k]
                  else float(costs.adapter_bits(int(rank[k]), int(vehicle[k]))) for k in k_all]
    compute_s = costs.compute_time_s(vehicle, rank, steps) if len(vehicle) else np.zeros(0)
    if any(split):
        compute_s = np.where(split, costs.device_compute_time_s(vehicle, rank, steps), compute_s)

    def energy(k):  # the device's share only, for a split participant
        fn = costs.device_compute_energy_j if split[k] else costs.compute_energy_j
        return float(fn(np.asarray([int(vehicle[k])]), np.asarray([int(rank[k])]), np.asarray([int(steps[k])]))[0])

    return np.asarray(state_bits), np.asarray(state_bits), compute_s, np.asarray([energy(k) for k in k_all])


def update_bits(costs, vehicle: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per participant, the bits of the adapter update it adds to aggregation: the adapter at its rank
    on its own task's shape (`adapter_bits`), split or not. An unsplit participant uploads exactly
    that; a split one uploads the device's part and the edge's adapters are trained at the RSU, the
    two together the same adapter (`split_state_bits`: device part + the edge's adapters alone)."""
    if not len(vehicle):
        return np.zeros(0)
    return np.asarray(costs.adapter_bits(np.asarray(rank, dtype=int), np.asarray(vehicle, dtype=int)), dtype=float)


def split_work(costs, vehicle: int, rank: int, steps: int):
    """A split participant's per-step protocol and what it moves (`iovsim.engine.split_transfer`)."""
    from iovsim.engine.split_transfer import SplitWork

    device_bits, server_bits, server_adapter_bits = costs.split_state_bits(int(vehicle), int(rank))
    return SplitWork(tuple(costs.split_segments(int(vehicle), int(rank))), int(steps),
                     float(costs.device_flops_per_s[int(vehicle)]),
                     float(costs.device_energy_per_flop_j(np.asarray([int(vehicle)]))[0]),
                     float(device_bits), float(server_bits), float(server_adapter_bits))


def split_step_s(costs, state, vehicle: int, rank: int, edge_share: float) -> float:
    """One split step's time at the round state's rates (default power, equal bandwidth share) and
    `edge_share` of its RSU's edge server: the formula the planner prices with (`costs.split`)."""
    i = int(vehicle)
    return float(costs.split_round_cost(i, int(rank), 1, state.default_tx_power_w, state.uplink_rate_bps[i],
                                        state.downlink_rate_bps[i], edge_share, max(int(state.rsu[i]), 0)).step_s[0])


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
    memory = np.asarray([d.memory_bytes for d in devices], dtype=float)
    costs = cost_model(shapes, view, channel, cfg.devices, tier, task, cfg.fl.split_layer, cfg.rsu.edge_flops_per_s)
    return RoundState(
        round_index=r, time_s=snap.time_s, vehicle_ids=ids, task=task,
        task_names=[t.name for t in fl.tasks], rsu=serving, num_rsus=channel.num_rsus, x_m=xy[:, 0], y_m=xy[:, 1],
        speed_mps=np.asarray(snap.speed_mps, dtype=float), sinr_db=np.asarray(link.uplink_sinr_db, dtype=float),
        uplink_rate_bps=up, downlink_rate_bps=down, dwell_time_s=dwell_s, tier=tier,
        device_flops_per_s=np.asarray([d.flops_per_s for d in devices], dtype=float),
        device_power_w=np.asarray([d.power_w for d in devices], dtype=float),
        device_memory_bytes=memory,
        num_samples=np.asarray([len(i.shard) for i in info], dtype=int), rsu_bandwidth_hz=channel.rsu_bandwidth_hz,
        rsu_load=load, energy_budget_j=np.asarray([tc.energy_budget_j if tc.energy_budget_j > 0 else np.inf
                                                   for tc in fl.tasks]),
        max_participants=fl.participants_per_round, local_steps=fl.local_steps, default_rank=fl.lora_rank,
        ranks=list(fl.lora_ranks), default_tx_power_w=default_p,
        max_tx_power_w=dbm_to_w(cfg.channel.vehicle_max_tx_power_dbm), round_deadline_s=fl.round_deadline_s,
        costs=costs, fits_memory=fits_memory(costs, n, max([fl.lora_rank, *fl.lora_ranks]), memory),
        backhaul_latency_s=cfg.channel.backhaul_latency_s, backhaul_rate_bps=cfg.channel.backhaul_rate_bps,
        max_vehicles=cfg.mobility.fl_vehicles, fading_k_factor=channel.fading_k_factor(link))
