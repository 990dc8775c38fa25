"""UCB-DUAL (arXiv 2508.09532): per-vehicle rank choice as a constrained bandit, dual variable on energy,
inter-task reallocation of the energy budget."""
from __future__ import annotations

import math

import numpy as np

from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy
from iovsim.strategies.common import check_choice, fits_window, rng_state, select, set_rng_state


def _new_stats(n: int) -> dict:
    return {"n": [0] * n, "r": [0.0] * n, "c": [0.0] * n}


@register("ucb_dual")
class UCBDual(Strategy):
    """Two levels.

    Intra-task (each vehicle, each round): arms = `state.ranks`. Reward of a play = training
    progress (loss_before - loss_after) / loss_before clipped to [0, 1] (0 when the update was lost);
    cost = energy_j / (the task's budget / participants of the task this round), so 1 = exactly the
    vehicle's share. The vehicle plays argmax UCB(reward) - lambda_task * LCB(cost) with
    UCB/LCB = mean +/- ucb_c sqrt(2 ln t / n) from its own statistics, or its tier's for arms it never
    played (arms unplayed by both are explored first, ties broken by the seeded rng). The dual
    variable follows projected ascent lambda <- max(0, lambda + dual_step (spent / budget - 1)) per
    round (the budget-normalized form of lambda + eta (spent - budget)).

    Inter-task (server, each round): the sum of the tasks' budgets is split by
    share_t = budget_floor / T + (1 - budget_floor) * score_t, with score_t the normalized mix
    difficulty_weight * difficulty_t + (1 - difficulty_weight) * utilisation_t (difficulty = 1 - accuracy
    or the loss, utilisation = spent / budget of the last round, each normalized over tasks).

    Handover window: only ranks whose download + compute + upload (x margin) fit the vehicle's dwell
    window are arms that round; a vehicle for which no rank fits is not asked. Participants: up to
    max_participants eligible vehicles, random (seeded) or round-robin.

    Aggregation: zero-padding to the global rank with sample weights (`sparsity_weighting` adds
    HetLoRA's norm weights); client_state truncates with the alpha / r compensation.

    `regret_from_log(strategy.history, ...)` gives the cumulative regret against the best fixed rank.
    """

    def __init__(self, ucb_c: float = 0.3, dual_step: float = 0.05, lambda_init: float = 0.0,
                 selection: str = "random", respect_window: bool = True, margin: float = 1.0,
                 reallocate: bool = True, budget_floor: float = 0.5, difficulty: str = "accuracy",
                 difficulty_weight: float = 0.5, history_limit: int = 20000, sparsity_weighting: bool = False):
        super().__init__()
        check_choice("selection", selection, ("random", "round_robin"))
        check_choice("difficulty", difficulty, ("accuracy", "loss"))
        if ucb_c < 0 or dual_step < 0 or lambda_init < 0 or margin <= 0:
            raise ValueError("expected ucb_c, dual_step, lambda_init >= 0 and margin > 0")
        if not 0 <= budget_floor <= 1 or not 0 <= difficulty_weight <= 1:
            raise ValueError("budget_floor and difficulty_weight must be in [0, 1]")
        self.ucb_c = float(ucb_c)
        self.dual_step = float(dual_step)
        self.lambda_init = float(lambda_init)
        self.selection = selection
        self.respect_window = bool(respect_window)
        self.margin = float(margin)
        self.reallocate = bool(reallocate)
        self.budget_floor = float(budget_floor)
        self.difficulty = difficulty
        self.difficulty_weight = float(difficulty_weight)
        self.history_limit = int(history_limit)
        self.sparsity_weighting = bool(sparsity_weighting)
        self.rng = np.random.default_rng()
        self.num_tasks = 1
        self._reset(1)

    def _reset(self, num_tasks: int):
        self.lam = [self.lambda_init] * num_tasks
        self.budgets: list[float] = []
        self.difficulty_last: list[float] | None = None
        self.util_last: list[float] | None = None
        self.ranks: list[int] = []
        self.vstats: dict[str, dict] = {}
        self.tstats: dict[str, dict] = {}
        self.pending: dict[str, dict] = {}
        self.history: list[list] = []
        self.last_round: dict[str, int] = {}

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        self.rng = np.random.default_rng([seed, 5])
        self.num_tasks = int(num_tasks)
        self._reset(self.num_tasks)

    # ------------------------------------------------------------------ inter-task
    def task_budgets(self, base: np.ndarray) -> np.ndarray:
        """This round's per-task budgets: the base budgets, reallocated when all are finite."""
        base = np.asarray(base, dtype=float)
        T = base.size
        if not self.reallocate or T < 2 or not np.all(np.isfinite(base)) or self.difficulty_last is None:
            return base
        d = np.maximum(np.asarray(self.difficulty_last, dtype=float), 0.0)
        u = np.maximum(np.asarray(self.util_last, dtype=float), 0.0)
        dn = d / d.sum() if d.sum() > 0 else np.full(T, 1.0 / T)
        un = u / u.sum() if u.sum() > 0 else np.full(T, 1.0 / T)
        score = self.difficulty_weight * dn + (1 - self.difficulty_weight) * un
        share = self.budget_floor / T + (1 - self.budget_floor) * score
        return base.sum() * share

    # ------------------------------------------------------------------ intra-task
    def _stats_for(self, key: str, table: dict) -> dict:
        st = table.get(key)
        if st is None or len(st["n"]) != len(self.ranks):
            st = table[key] = _new_stats(len(self.ranks))
        return st

    def _scores(self, vid: str, tier: int, lam: float) -> np.ndarray:
        v = self.vstats.get(vid)
        t = self.tstats.get(str(tier))
        R = len(self.ranks)
        out = np.full(R, np.inf)
        for a in range(R):
            src = v if v is not None and v["n"][a] > 0 else (t if t is not None and t["n"][a] > 0 else None)
            if src is None:
                continue
            n = src["n"][a]
            plays = sum(src["n"]) + 1
            bonus = self.ucb_c * math.sqrt(2.0 * math.log(plays) / n)
            ucb_r = src["r"][a] / n + bonus
            lcb_c = max(0.0, src["c"][a] / n - bonus)
            out[a] = ucb_r - lam * lcb_c
        return out

    def configure(self, state: RoundState) -> Plan:
        ranks = sorted(int(r) for r in state.ranks)
        if ranks != self.ranks:  # candidate set changed: statistics are per arm, start over
            self.ranks = ranks
            self.vstats, self.tstats = {}, {}
        T = len(state.task_names)
        if len(self.lam) != T:
            self.lam = [self.lambda_init] * T
        self.budgets = [float(b) for b in self.task_budgets(state.energy_budget_j)]
        conn = state.connected()
        if self.respect_window:
            fit = np.stack([fits_window(state, conn, r, self.margin) for r in ranks], 1) if conn.size else np.zeros((0, len(ranks)), bool)
        else:
            fit = np.ones((conn.size, len(ranks)), bool)
        ok = fit.any(1)
        chosen = select(state, conn[ok], state.max_participants, self.selection, self.rng, self.last_round)
        fit_of = {int(i): f for i, f in zip(conn, fit)}
        tasks = np.asarray(state.task, dtype=int)
        per_task = np.bincount(tasks[chosen], minlength=T) if chosen.size else np.zeros(T, int)
        self.pending = {}
        out_ranks = []
        for i in chosen:
            vid = state.vehicle_ids[i]
            t = int(tasks[i])
            s = self._scores(vid, int(state.tier[i]), self.lam[t])
            s = np.where(fit_of[int(i)], s, -np.inf)
            best = np.flatnonzero(s == s.max())
            a = int(best[0]) if best.size == 1 else int(self.rng.choice(best))
            share = self.budgets[t] / max(int(per_task[t]), 1)
            self.pending[vid] = {"arm": a, "task": t, "tier": int(state.tier[i]), "share": share}
            self.last_round[vid] = int(state.round_index)
            out_ranks.append(ranks[a])
        extra = {"eligible": int(ok.sum()), "not_fitting": int((~ok).sum())}
        return Plan(participants=chosen, rank=np.asarray(out_ranks, dtype=int),
                    train_options=[{} for _ in chosen], extra=extra)

    def client_state(self, global_state, rank: int):
        from iovsim.fl.aggregate import resize_rank

        return resize_rank(global_state, int(rank), rescale=True)

    def aggregate(self, updates, global_state):
        """Mixed ranks: zero-padding to the global rank (HetLoRA style), sample weights (or sparsity)."""
        from iovsim.fl.aggregate import sparsity_weights, state_rank, zero_pad_aggregate

        w = sparsity_weights(updates) if self.sparsity_weighting else None
        return zero_pad_aggregate(updates, state_rank(global_state), lora_weights=w, rescale=True)

    def observe(self, fb: RoundFeedback) -> dict:
        T = len(self.lam)
        rank_sum, rank_n = np.zeros(T), np.zeros(T)
        rewards, costs = [], []
        for k, vid in enumerate(fb.vehicle_ids):
            p = self.pending.get(vid)
            if p is None:
                continue
            before, after = float(fb.train_loss_before[k]), float(fb.train_loss_after[k])
            if fb.status[k] == "ok" and np.isfinite(before) and np.isfinite(after) and before > 0:
                reward = min(1.0, max(0.0, (before - after) / before))
            else:
                reward = 0.0
            energy = float(fb.energy_j[k])
            cost = energy / p["share"] if np.isfinite(p["share"]) and p["share"] > 0 else 0.0
            a = p["arm"]
            for st in (self._stats_for(vid, self.vstats), self._stats_for(str(p["tier"]), self.tstats)):
                st["n"][a] += 1
                st["r"][a] += reward
                st["c"][a] += cost
            rank_sum[p["task"]] += self.ranks[a]
            rank_n[p["task"]] += 1
            rewards.append(reward)
            costs.append(cost)
            self.history.append([int(fb.round_index), vid, int(self.ranks[a]), reward, cost, int(p["task"])])
        if len(self.history) > self.history_limit:
            self.history = self.history[-self.history_limit:]
        spent = np.asarray(fb.task_energy_j, dtype=float)
        budgets = np.asarray(self.budgets if self.budgets else [np.inf] * T, dtype=float)
        log = {}
        util = []
        for t in range(T):
            b = budgets[t]
            ratio = spent[t] / b if np.isfinite(b) and b > 0 else 0.0
            if np.isfinite(b) and b > 0:
                self.lam[t] = float(max(0.0, self.lam[t] + self.dual_step * (ratio - 1.0)))
            util.append(ratio)
            name = f"t{t}"
            log[f"mean_rank/{name}"] = float(rank_sum[t] / rank_n[t]) if rank_n[t] else 0.0
            log[f"lambda/{name}"] = float(self.lam[t])
            log[f"budget_j/{name}"] = float(b) if np.isfinite(b) else -1.0
            log[f"spent_j/{name}"] = float(spent[t])
        fin = np.isfinite(budgets)
        log["budget_violation_j"] = float(np.maximum(spent[fin] - budgets[fin], 0).sum()) if fin.any() else 0.0
        log["mean_reward"] = float(np.mean(rewards)) if rewards else 0.0
        log["mean_cost"] = float(np.mean(costs)) if costs else 0.0
        acc = np.asarray(fb.task_accuracy, dtype=float)
        loss = np.asarray(fb.task_loss, dtype=float)
        diff = (1.0 - acc) if self.difficulty == "accuracy" else loss
        self.difficulty_last = [float(x) if np.isfinite(x) else 1.0 for x in diff]
        self.util_last = [float(x) for x in util]
        self.pending = {}
        return log

    def state_dict(self) -> dict:
        fin = lambda x: float(x) if math.isfinite(x) else None  # strict JSON: no Infinity
        pending = {v: {**p, "share": fin(p["share"])} for v, p in self.pending.items()}
        return {"rng": rng_state(self.rng), "lam": list(self.lam), "budgets": [fin(b) for b in self.budgets],
                "difficulty_last": self.difficulty_last, "util_last": self.util_last, "ranks": list(self.ranks),
                "vstats": self.vstats, "tstats": self.tstats, "pending": pending,
                "history": self.history, "last_round": dict(self.last_round)}

    def load_state_dict(self, state: dict) -> None:
        unfin = lambda x: math.inf if x is None else float(x)
        set_rng_state(self.rng, state["rng"])
        self.lam = [float(x) for x in state["lam"]]
        self.budgets = [unfin(x) for x in state["budgets"]]
        self.difficulty_last = state["difficulty_last"]
        self.util_last = state["util_last"]
        self.ranks = [int(r) for r in state["ranks"]]
        self.vstats = state["vstats"]
        self.tstats = state["tstats"]
        self.pending = {v: {**p, "share": unfin(p["share"])} for v, p in state["pending"].items()}
        self.history = [list(h) for h in state["history"]]
        self.last_round = {str(k): int(v) for k, v in state["last_round"].items()}


def regret_from_log(history, reward_means: dict | None = None, cost_means: dict | None = None,
                    budget: float = 1.0) -> np.ndarray:
    """Cumulative regret over the plays in `history` ([round, vehicle, rank, reward, cost, ...] rows, as
    `UCBDual.history`) against the best fixed rank in hindsight whose mean cost is <= `budget`
    (costs are in units of the vehicle's budget share, so 1 = on budget).

    With `reward_means` / `cost_means` (rank -> mean; known in synthetic tests) this is the
    pseudo-regret sum_t (mu* - mu[rank_t]); otherwise the means are the empirical means per rank
    in the log and the regret is sum_t (mu* - reward_t).
    """
    h = list(history)
    if not h:
        return np.zeros(0)
    ranks = np.asarray([int(x[2]) for x in h])
    rewards = np.asarray([float(x[3]) for x in h])
    costs = np.asarray([float(x[4]) for x in h])
    if reward_means is None:
        arms = sorted(set(ranks.tolist()))
        reward_means = {r: float(rewards[ranks == r].mean()) for r in arms}
        cost_means = {r: float(costs[ranks == r].mean()) for r in arms}
        per_play = None
    else:
        per_play = np.asarray([reward_means[int(r)] for r in ranks])
    cost_means = cost_means or {r: 0.0 for r in reward_means}
    feasible = [r for r in reward_means if cost_means.get(r, 0.0) <= budget]
    if not feasible:
        feasible = [min(reward_means, key=lambda r: cost_means.get(r, 0.0))]
    best = max(reward_means[r] for r in feasible)
    got = rewards if per_play is None else per_play
    return np.cumsum(best - got)
