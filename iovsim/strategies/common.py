"""Helpers shared by the strategies: handover-window estimates, participant selection, rng state."""
from __future__ import annotations

import zlib

import numpy as np

from iovsim.costs import CostModel, CostModelProtocol, ModelShape
from iovsim.strategies.base import RoundState


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able state of a numpy Generator (PCG64 ints are plain Python ints)."""
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def window_s(state: RoundState, idx: np.ndarray | None = None) -> np.ndarray:
    """Time each vehicle can use this round: predicted dwell in its cell, capped by the round deadline."""
    dwell = np.asarray(state.dwell_time_s, dtype=float)
    if idx is not None:
        dwell = dwell[idx]
    return np.minimum(np.where(np.isnan(dwell), np.inf, dwell), float(state.round_deadline_s))


def round_time_s(state: RoundState, idx: np.ndarray, rank, steps=None, uplink_rate_bps=None) -> np.ndarray:
    """Estimated download + compute + upload time of vehicles `idx` training `rank` for `steps`.

    Uses `state.costs` (CostModel); without one the estimate is 0, so every window > 0 fits.
    """
    idx = np.asarray(idx, dtype=int)
    rank = np.broadcast_to(np.asarray(rank, dtype=int), idx.shape)
    steps = np.broadcast_to(np.asarray(state.local_steps if steps is None else steps, dtype=int), idx.shape)
    costs = state.costs
    if costs is None or idx.size == 0:
        return np.zeros(idx.shape, dtype=float)
    bits = np.asarray(costs.adapter_bits(rank, idx), dtype=float)  # each vehicle's own task head
    down = np.asarray(state.downlink_rate_bps, dtype=float)[idx]
    # uplink_rate_bps, when given, is already per entry of idx (e.g. at a chosen power/bandwidth)
    up = (np.asarray(state.uplink_rate_bps, dtype=float)[idx] if uplink_rate_bps is None
          else np.broadcast_to(np.asarray(uplink_rate_bps, dtype=float), idx.shape))
    comp = np.asarray(costs.compute_time_s(idx, rank, steps), dtype=float)
    with np.errstate(divide="ignore"):
        return bits / np.maximum(down, 1e-9) + comp + bits / np.maximum(up, 1e-9)


def fits_window(state: RoundState, idx: np.ndarray, rank, margin: float = 1.0, steps=None) -> np.ndarray:
    """True where `margin` x estimated round time fits the vehicle's dwell window (and the deadline)."""
    idx = np.asarray(idx, dtype=int)
    return margin * round_time_s(state, idx, rank, steps) <= window_s(state, idx)


def largest_fitting_rank(state: RoundState, idx: np.ndarray, candidates, margin: float = 1.0,
                         cap=None) -> np.ndarray:
    """Per vehicle, the largest candidate rank (<= cap) whose round fits its window; 0 = none fits."""
    idx = np.asarray(idx, dtype=int)
    out = np.zeros(idx.shape, dtype=int)
    cap = np.broadcast_to(np.asarray(np.iinfo(np.int64).max if cap is None else cap), idx.shape)
    for r in sorted(int(c) for c in candidates):
        ok = fits_window(state, idx, r, margin) & (r <= cap)
        out = np.where(ok, r, out)
    return out


#: Streams of `selection_keys`: who is selected, and random_module's module draw (independent of it).
SELECTION_STREAM, MODULE_STREAM = 5, 6


def selection_keys(seed: int, round_index: int, vehicle_ids: list[str], stream: int = SELECTION_STREAM) -> np.ndarray:
    """One uniform number per vehicle, fixed by (seed, round, vehicle id) alone, in stream `stream`.

    "random" selection takes the eligible vehicles with the smallest keys. Every strategy of a
    comparison sees the same keys (common random numbers): with the same eligible vehicles they pick
    the same participants, and a vehicle one strategy picks is picked by any other strategy for which
    it is eligible too, unless that strategy has more eligible vehicles before it. The keys need no
    state, so a resumed run draws what an uninterrupted one would.
    """
    return np.asarray([np.random.default_rng([int(seed), int(stream), int(round_index), zlib.crc32(v.encode())]).random()
                       for v in vehicle_ids])


def select(state: RoundState, eligible: np.ndarray, k: int, how: str, seed: int,
           last_round: dict, priority: np.ndarray | None = None) -> np.ndarray:
    """Pick up to k of `eligible` vehicle indices.

    how: "random" (smallest `selection_keys` first: uniform without replacement, paired across
    strategies), "round_robin" (least recently trained first, ties by vehicle id), "priority"
    (largest `priority` first, ties by id).
    """
    eligible = np.asarray(eligible, dtype=int)
    k = int(max(0, min(k, eligible.size)))
    if k == 0:
        return np.zeros(0, dtype=int)
    ids = [state.vehicle_ids[i] for i in eligible]
    if how == "random":
        keys = selection_keys(seed, state.round_index, ids)
        order = sorted(range(eligible.size), key=lambda j: (keys[j], ids[j]))
    elif how == "round_robin":
        order = sorted(range(eligible.size), key=lambda j: (last_round.get(ids[j], -1), ids[j]))
    elif how == "priority":
        pr = np.asarray(priority, dtype=float)
        order = sorted(range(eligible.size), key=lambda j: (-pr[j], ids[j]))
    else:
        raise ValueError(f"unknown selection {how!r}; expected random, round_robin or priority")
    return np.sort(eligible[order[:k]])


def fits_deadline(state: RoundState, idx: np.ndarray, rank, margin: float = 1.0) -> np.ndarray:
    """True where `margin` x estimated round time fits the round deadline (the dwell window ignored)."""
    idx = np.asarray(idx, dtype=int)
    return margin * round_time_s(state, idx, rank) <= float(state.round_deadline_s)


def eligible(state: RoundState, idx: np.ndarray, rank, margin: float = 1.0, respect_window: bool = True) -> np.ndarray:
    """The participation rule every window-aware strategy shares: the vehicles of `idx` whose
    predicted round (download + compute + upload) at `rank` — the smallest rank the strategy would
    give each — fits `margin` times into their dwell window and the deadline.

    With `respect_window` False (a strategy that handles leaving vehicles by the transfer mode) a
    vehicle predicted to leave is kept, but not one whose round could not finish by the deadline
    even if it stayed: a link in outage (SINR below `min_sinr_db`, rate 0) carries nothing whatever
    the mode, and a synchronous round would wait for it until the deadline."""
    idx = np.asarray(idx, dtype=int)
    if not respect_window:
        return idx[fits_deadline(state, idx, rank, margin)]
    return idx[fits_window(state, idx, rank, margin)]


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def snap_rank(rank: int, candidates) -> int:
    """The largest candidate <= rank (the smallest candidate when none is)."""
    c = sorted(int(x) for x in candidates)
    below = [x for x in c if x <= rank]
    return below[-1] if below else c[0]


def target_ranks(state: RoundState, idx: np.ndarray, tier_ranks, memory_bytes_per_rank: float) -> np.ndarray:
    """Rank each vehicle could train on its device: `tier_ranks[tier]` (clipped to the last entry), else
    the largest candidate with rank x memory_bytes_per_rank <= device memory (at least the smallest)."""
    idx = np.asarray(idx, dtype=int)
    cands = sorted(int(r) for r in state.ranks)
    if tier_ranks:
        tr = np.asarray([int(r) for r in tier_ranks])
        raw = tr[np.minimum(np.asarray(state.tier, dtype=int)[idx], tr.size - 1)]
    else:
        raw = np.floor(np.asarray(state.device_memory_bytes, dtype=float)[idx] / float(memory_bytes_per_rank)).astype(int)
    return np.asarray([snap_rank(int(r), cands) for r in raw], dtype=int)


class HeteroRankMixin:
    """Participant selection with per-vehicle ranks shrunk to fit the handover window.

    Each connected vehicle gets its device rank (`target_ranks`), capped by `rank_cap` (per vehicle
    id memory such as HetLoRA's pruned rank); when `respect_window` the largest candidate rank
    <= that whose download + compute + upload fits the dwell window is used, and a vehicle for
    which even the smallest candidate does not fit is not asked. Up to max_participants are chosen.
    """

    def _init_hetero(self, tier_ranks, memory_bytes_per_rank, selection, respect_window, margin):
        check_choice("selection", selection, ("random", "round_robin"))
        if tier_ranks is not None and (not isinstance(tier_ranks, (list, tuple)) or not tier_ranks
                                       or min(int(r) for r in tier_ranks) < 1):
            raise ValueError(f"tier_ranks must be a list of ranks >= 1, got {tier_ranks!r}")
        if memory_bytes_per_rank <= 0 or margin <= 0:
            raise ValueError("memory_bytes_per_rank and margin must be > 0")
        self.tier_ranks = None if tier_ranks is None else [int(r) for r in tier_ranks]
        self.memory_bytes_per_rank = float(memory_bytes_per_rank)
        self.selection = selection
        self.respect_window = bool(respect_window)
        self.margin = float(margin)
        self.last_round: dict[str, int] = {}

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        self.num_tasks = num_tasks

    def _rank_cap(self, state: RoundState, idx: np.ndarray):
        return None

    def _hetero_plan(self, state: RoundState):
        conn = state.connected()
        want = target_ranks(state, conn, self.tier_ranks, self.memory_bytes_per_rank)
        cap = self._rank_cap(state, conn)
        if cap is not None:
            want = np.minimum(want, cap)
        if self.respect_window:
            cands = [r for r in state.ranks]
            rank = largest_fitting_rank(state, conn, cands, self.margin, cap=want)
        else:  # the dwell window ignored, the deadline not (see `eligible`)
            rank = np.where(fits_deadline(state, conn, want, self.margin), want, 0)
        ok = rank > 0
        chosen = select(state, conn[ok], state.max_participants, self.selection, self.seed, self.last_round)
        rank_of = dict(zip(conn[ok].tolist(), rank[ok].tolist()))
        for i in chosen:
            self.last_round[state.vehicle_ids[i]] = int(state.round_index)
        ranks = np.asarray([rank_of[i] for i in chosen], dtype=int)
        shrunk = int(np.sum(rank[ok] < want[ok]))
        extra = {"eligible": int(ok.sum()), "not_fitting": int((~ok).sum()), "shrunk_for_window": shrunk}
        return chosen, ranks, extra

    def _hetero_state(self) -> dict:
        return {"seed": self.seed, "last_round": dict(self.last_round),
                "lora_alpha": self.lora_alpha}

    def _load_hetero(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.last_round = {str(k): int(v) for k, v in state.get("last_round", {}).items()}
        self.lora_alpha = float(state.get("lora_alpha", self.lora_alpha))


def rank_logs(feedback) -> dict:
    """Common per-round numbers: participants, completed, mean rank."""
    st = list(feedback.status)
    ranks = np.asarray(feedback.rank, dtype=float)
    return {"participants": len(st), "completed": int(feedback.delivered().sum()),
            "mean_rank": float(ranks.mean()) if ranks.size else 0.0}


#: all-MiniLM-L6-v2 (the default model) with LoRA on query and value, 2 classes, 48 tokens, batch 16:
#: the shape `costs_of` assumes when a RoundState carries no cost model.
FALLBACK_SHAPE = ModelShape(num_layers=6, hidden_size=384, intermediate_size=1536, num_heads=12, vocab_size=30522,
                            lora_targets=[(384, 384), (384, 384)], head_params=(384 + 1) * 2, seq_len=48, batch_size=16)


class StateRates:
    """Link rates from a RoundState alone: uplink Shannon on the state's SINR (at the default power
    and an equal bandwidth share) scaled by power and bandwidth; downlink proportional to the
    bandwidth (its SINR does not depend on it)."""

    def __init__(self, state: RoundState):
        self.state = state
        self.max_tx_power_w = float(state.max_tx_power_w)

    def _equal_share_hz(self, v):
        st = self.state
        m = np.maximum(np.asarray(st.rsu)[v], 0)
        return np.asarray(st.rsu_bandwidth_hz, float)[m] / np.maximum(np.asarray(st.rsu_load)[m], 1)

    def uplink_rate_bps(self, vehicle, tx_power_w, bandwidth_hz):
        st = self.state
        v = np.asarray(vehicle, int)
        bw = np.maximum(np.asarray(bandwidth_hz, float), 1.0)
        p = np.minimum(np.asarray(tx_power_w, float), self.max_tx_power_w)
        snr = 10 ** (np.asarray(st.sinr_db, float)[v] / 10) * p / st.default_tx_power_w * self._equal_share_hz(v) / bw
        return np.where(np.asarray(st.rsu)[v] >= 0, bw * np.log2(1 + snr), 0.0)

    def downlink_rate_bps(self, vehicle, bandwidth_hz):
        v = np.asarray(vehicle, int)
        share = self._equal_share_hz(v)
        return np.asarray(self.state.downlink_rate_bps, float)[v] * np.asarray(bandwidth_hz, float) / share


def costs_of(state: RoundState) -> CostModelProtocol:
    """state.costs, or the cost model of FALLBACK_SHAPE on the state's devices and rates."""
    if state.costs is not None:
        return state.costs
    n = len(state.vehicle_ids)
    zero = np.zeros(n)
    return CostModel(FALLBACK_SHAPE, flops_per_s=state.device_flops_per_s, power_w=state.device_power_w,
                     cpu_frequency_hz=zero, kappa=zero, cycles_per_flop=zero, rates=StateRates(state))


class SeedOnlyState:
    """For a strategy whose every draw depends on (seed, round, vehicle id) alone: its whole state is the
    seed, and it logs how many it asked and how many delivered."""

    def observe(self, feedback) -> dict:
        return {"participants": len(feedback.status), "completed": int(feedback.delivered().sum())}

    def state_dict(self) -> dict:
        return {"seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])


class ZeroPadToGlobalRank:
    """Aggregation of strategies whose participants train different modules (ranks) of one adapter:
    each starts from the global adapter cut to its rank (B rescaled by r / R for the alpha / r scaling),
    and the updates are zero-padded back to the global rank and averaged with sample weights (HetLoRA's
    rule; FedAvg at equal ranks)."""

    def client_state(self, global_state, rank: int):
        from iovsim.fl.aggregate import resize_rank

        return resize_rank(global_state, int(rank), rescale=True)

    def aggregate(self, updates, global_state):
        from iovsim.fl.aggregate import state_rank, zero_pad_aggregate

        return zero_pad_aggregate(updates, state_rank(global_state), rescale=True)
