"""Shared machinery of the Lyapunov (drift-plus-penalty) strategies: virtual energy queues, outage-aware
evaluation of (rank, power, bandwidth) options, alternating schedule / bandwidth optimisation."""
from __future__ import annotations

import math

import numpy as np

from iovsim.channel.fading import exceed_probability
from iovsim.schema import coerce_number
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy
from iovsim.strategies.common import costs_of, window_s


def success_probability(bits, rate_bps, bandwidth_hz, avail_s, k_factor=None):
    """P(upload of `bits` finishes within `avail_s`) under block fading.

    The mean SNR g follows from the mean rate (rate = B log2(1 + g)); the upload fails when the
    faded SNR is below the threshold needed for bits / avail_s, so P = P(|h|^2 >= g_th / g). 0 when
    no time is left, 1 when the window is unbounded. `k_factor` (the channel's fading, per vehicle:
    `RoundState.fading_k_factor`): 0 Rayleigh, > 0 Rician, inf no fading, with the channel's own
    closed form (`iovsim.channel.fading.exceed_probability`); None (the channel has no fading):
    Rayleigh, exp(-g_th / g), the paper's assumption.
    """
    bits = np.asarray(bits, float)
    bw = np.maximum(np.asarray(bandwidth_hz, float), 1.0)
    avail = np.asarray(avail_s, float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        g = np.expm1(np.log(2) * np.asarray(rate_bps, float) / bw)
        need = np.where(avail > 0, bits / np.where(avail > 0, avail, 1.0), np.inf)
        g_th = np.expm1(np.minimum(np.log(2) * need / bw, 700.0))
        x = g_th / np.maximum(g, 1e-300)
        p = np.exp(-x) if k_factor is None else exceed_probability(x, k_factor)
    return np.where(avail > 0, np.nan_to_num(p, nan=0.0), 0.0)


def _k_of(state: RoundState, idx):
    """The channel's fading K-factor of vehicles `idx` (None when the channel has no fading)."""
    k = getattr(state, "fading_k_factor", None)
    return None if k is None else np.asarray(k, float)[idx]


def expected_per_rsu(state: RoundState, conn: np.ndarray) -> np.ndarray:
    """Participants each RSU is expected to get before the schedule is known: its share of the connected
    vehicles x max_participants, at least 1, at most its load. The first bandwidth guess is 1 / this,
    and split_lora counts this many split jobs on the RSU's edge server (`costs.split.edge_share`)."""
    rsu = np.asarray(state.rsu, int)
    load = np.bincount(rsu[conn], minlength=state.num_rsus)
    return np.maximum(1, np.minimum(load, np.ceil(state.max_participants * load / max(conn.size, 1))))


class LyapunovBase(Strategy):
    """Virtual queues in budget units (so V is dimensionless): per vehicle Q_i <- max(Q_i + E_i / Ebar_i - 1, 0)
    (long-term per-device energy) and per task Z_t <- max(Z_t + spent_t / budget_t - 1, 0); the
    drift-plus-penalty energy term of vehicle i is (Q_i + Z_t) E_i / Ebar_i.

    Ebar_i = `vehicle_energy_budget_j` when > 0, else the task's per-round budget / the task's connected
    vehicles that round. Queues of vehicles out of coverage are frozen; infinite budgets give zero queues.
    Subclasses define the options (ranks, powers), the utility and the cost of one option.
    """

    def __init__(self, V: float = 10.0, vehicle_energy_budget_j: float = 0.0, bandwidth_iters: int = 2,
                 margin: float = 1.0):
        super().__init__()
        if V < 0 or vehicle_energy_budget_j < 0 or margin <= 0:
            raise ValueError("expected V >= 0, vehicle_energy_budget_j >= 0, margin > 0")
        # At least one sqrt-rule step: only it makes the shares of each RSU sum to 1; the first guess
        # (1 / expected participants of the RSU) oversubscribes an RSU that gets more than expected.
        try:
            self.bandwidth_iters = coerce_number(bandwidth_iters, int, {"ge": 1})
        except ValueError as e:
            raise ValueError(f"bandwidth_iters: {e}") from None
        self.V = float(V)
        self.vehicle_energy_budget_j = float(vehicle_energy_budget_j)
        self.margin = float(margin)
        self.Q: dict[str, float] = {}
        self.Z: list[float] = []
        self.ebar: dict[str, float] = {}
        self.budgets: list[float] = []
        self.planned: dict = {}

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        self.rng = np.random.default_rng([seed, 5])
        self.Z = [0.0] * num_tasks

    # ---- subclass hooks
    def options(self, state: RoundState) -> list[tuple[int, float]]:
        raise NotImplementedError

    def utility(self, state: RoundState, idx: np.ndarray, rank: int) -> np.ndarray:
        raise NotImplementedError

    def option_cost(self, state, costs, idx, rank, power, bw_hz):
        """(energy_j, upload_bits, time before the upload s, upload time s, upload rate bps) for option (rank, power)."""
        steps = np.full(idx.shape, state.local_steps)
        r = np.full(idx.shape, rank)
        comp_t = np.asarray(costs.compute_time_s(idx, r, steps), float)
        comp_e = np.asarray(costs.compute_energy_j(idx, r, steps), float)
        bits = np.asarray(costs.adapter_bits(r, idx), float)  # each vehicle's own task head
        down_t = bits / np.maximum(np.asarray(state.downlink_rate_bps, float)[idx], 1e-9)
        rate = np.asarray(costs.upload_rate_bps(idx, np.full(idx.shape, power), bw_hz), float)
        up_t = bits / np.maximum(rate, 1e-9)
        return comp_e + power * up_t, bits, down_t + comp_t, up_t, rate

    # ---- planning
    def _price(self, state: RoundState, idx: np.ndarray) -> np.ndarray:
        """Energy price per joule of each vehicle: (Q_i + Z_t) / Ebar_i (0 for an unbounded budget)."""
        z = np.asarray(self.Z, float)[np.asarray(state.task, int)[idx]]
        q = np.asarray([self.Q.get(state.vehicle_ids[i], 0.0) for i in idx])
        ebar = np.asarray([self.ebar.get(state.vehicle_ids[i], math.inf) for i in idx])
        return (q + z) / ebar

    def _best(self, state, costs, idx, share, price):
        """Per vehicle: min drift-plus-penalty over options at bandwidth share `share` (skip = 0)."""
        bw = share * np.asarray(state.rsu_bandwidth_hz, float)[np.asarray(state.rsu)[idx]]
        win = window_s(state, idx)
        best = np.zeros(idx.shape)
        choice = np.full(idx.shape, -1)
        for o, (rank, power) in enumerate(self.options(state)):
            e, bits, pre_t, up_t, rate = self.option_cost(state, costs, idx, rank, power, bw)
            ps = success_probability(bits, rate, bw, win / self.margin - pre_t, _k_of(state, idx))
            dpp = -self.V * self.utility(state, idx, rank) * ps + price * e
            better = dpp < best - 1e-15
            best = np.where(better, dpp, best)
            choice = np.where(better, o, choice)
        return best, choice

    def _plan(self, state: RoundState) -> Plan:
        T = len(state.task_names)
        if len(self.Z) != T:
            self.Z = [0.0] * T
        costs = costs_of(state)
        opts = self.options(state)
        conn = state.connected()
        tasks = np.asarray(state.task, int)
        rsu = np.asarray(state.rsu, int)
        budgets = np.asarray(state.energy_budget_j, float)
        self.budgets = [float(b) for b in budgets]
        n_conn_t = np.bincount(tasks[conn], minlength=T) if conn.size else np.zeros(T, int)
        self.ebar = {}
        for i in conn:
            b = self.vehicle_energy_budget_j or budgets[tasks[i]] / max(n_conn_t[tasks[i]], 1)
            if np.isfinite(b):
                self.ebar[state.vehicle_ids[i]] = float(b)
        if conn.size == 0 or state.max_participants < 1:
            self.planned = {}
            return Plan(participants=np.zeros(0, int), rank=np.zeros(0, int), tx_power_w=np.zeros(0),
                        bandwidth_share=np.zeros(0), train_options=[], extra={})
        share = 1.0 / expected_per_rsu(state, conn)[rsu[conn]]
        price = self._price(state, conn)
        best, choice = self._best(state, costs, conn, share, price)
        keep = self._top(state, conn, best, choice)
        idx, sh, pr, ch = conn[keep], share[keep], price[keep], choice[keep]
        for _ in range(self.bandwidth_iters):
            if idx.size == 0:
                break
            # min sum_i c_i / b_i s.t. sum b_i = 1 per RSU gives b_i ~ sqrt(c_i); c_i = upload time at the
            # whole band x (energy price x power + V utility / window): costly, valuable, urgent uploads get more.
            e, up_t, ps, powers, util = self._eval_choice(state, costs, idx, sh, ch)
            c = up_t * sh * (pr * powers + self.V * util / np.maximum(window_s(state, idx), 1e-9)) + 1e-12
            root = np.sqrt(c)
            tot = np.bincount(rsu[idx], weights=root, minlength=state.num_rsus)
            sh = root / tot[rsu[idx]]
            _, ch = self._best(state, costs, idx, sh, pr)
            keep = ch >= 0
            idx, sh, pr, ch = idx[keep], sh[keep], pr[keep], ch[keep]
        order = np.argsort(idx, kind="stable")
        idx, sh, ch = idx[order], sh[order], ch[order]
        e, up_t, ps, powers, util = self._eval_choice(state, costs, idx, sh, ch)
        ranks = np.asarray([opts[c][0] for c in ch], dtype=int)
        self.planned = {state.vehicle_ids[i]: {"task": int(tasks[i]), "energy_est_j": float(ei), "success": float(p)}
                        for i, ei, p in zip(idx, e, ps)}
        extra = {"mean_success": float(ps.mean()) if ps.size else 0.0,
                 "mean_power_w": float(powers.mean()) if powers.size else 0.0,
                 "mean_bandwidth_share": float(sh.mean()) if sh.size else 0.0,
                 "expected_energy_j": float(e.sum())}
        return Plan(participants=idx, rank=ranks, tx_power_w=powers, bandwidth_share=sh,
                    train_options=[self.train_option(int(r)) for r in ranks], extra=extra)

    def train_option(self, rank: int) -> dict:
        return {}

    def _eval_choice(self, state, costs, idx, share, choice):
        """Energy, upload time, success probability, power and utility of each vehicle's chosen option."""
        opts = self.options(state)
        n = idx.size
        e, up_t, ps, powers, util = (np.zeros(n) for _ in range(5))
        if n == 0:
            return e, up_t, ps, powers, util
        bw = share * np.asarray(state.rsu_bandwidth_hz, float)[np.asarray(state.rsu)[idx]]
        win = window_s(state, idx)
        for o in np.unique(choice):
            m = choice == o
            rank, power = opts[o]
            ee, bits, pre_t, ut, rate = self.option_cost(state, costs, idx[m], rank, power, bw[m])
            e[m], up_t[m], powers[m] = ee, ut, power
            ps[m] = success_probability(bits, rate, bw[m], win[m] / self.margin - pre_t, _k_of(state, idx[m]))
            util[m] = self.utility(state, idx[m], rank)
        return e, up_t, ps, powers, util

    def _top(self, state, idx, best, choice):
        """Vehicles whose best option beats skipping, the most negative drift-plus-penalty first."""
        cand = np.flatnonzero(choice >= 0)
        ids = [state.vehicle_ids[i] for i in idx[cand]]
        order = sorted(range(cand.size), key=lambda j: (best[cand[j]], ids[j]))
        keep = np.zeros(idx.size, bool)
        keep[cand[order[: state.max_participants]]] = True
        return keep

    # ---- queues
    def observe(self, fb: RoundFeedback) -> dict:
        T = len(self.Z)
        spent_by = {vid: float(e) for vid, e in zip(fb.vehicle_ids, fb.energy_j)}
        for vid in set(self.ebar) | set(spent_by):
            ebar = self.ebar.get(vid, math.inf)
            if not math.isfinite(ebar):
                continue
            q = max(self.Q.get(vid, 0.0) + spent_by.get(vid, 0.0) / ebar - 1.0, 0.0)
            if q > 0:
                self.Q[vid] = q
            else:
                self.Q.pop(vid, None)
        spent = np.asarray(fb.task_energy_j, float)
        log = {}
        for t in range(T):
            b = self.budgets[t] if t < len(self.budgets) else math.inf
            if math.isfinite(b):
                self.Z[t] = max(self.Z[t] + float(spent[t]) / b - 1.0, 0.0) if b > 0 else self.Z[t]
            log[f"task_queue/t{t}"] = self.Z[t]
            log[f"spent_j/t{t}"] = float(spent[t])
            log[f"budget_j/t{t}"] = b if math.isfinite(b) else -1.0
        qs = list(self.Q.values())
        ranks = np.asarray(fb.rank, float)
        log.update({"queue_mean": float(np.mean(qs)) if qs else 0.0, "queue_max": max(qs) if qs else 0.0,
                    "participants": len(fb.vehicle_ids), "completed": int(fb.delivered().sum()),
                    "mean_rank": float(ranks.mean()) if ranks.size else 0.0})
        return log

    def state_dict(self) -> dict:
        from iovsim.strategies.common import rng_state

        return {"rng": rng_state(self.rng), "Q": dict(self.Q), "Z": list(self.Z), "ebar": dict(self.ebar),
                "budgets": [b if math.isfinite(b) else None for b in self.budgets], "planned": self.planned}

    def load_state_dict(self, state: dict) -> None:
        from iovsim.strategies.common import set_rng_state

        set_rng_state(self.rng, state["rng"])
        self.Q = {str(k): float(v) for k, v in state["Q"].items()}
        self.Z = [float(z) for z in state["Z"]]
        self.ebar = {str(k): float(v) for k, v in state["ebar"].items()}
        self.budgets = [math.inf if b is None else float(b) for b in state["budgets"]]
        self.planned = state.get("planned", {})
