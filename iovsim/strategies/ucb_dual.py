"""UCB-DUAL (arXiv 2508.09532) as its authors' code formulates it: a per-vehicle bandit over LoRA ranks with a
latency/energy/accuracy reward, a dual variable pricing rank against each task's rank budget, warm start and
adjacent moves, inter-task reallocation of the total budget, FlexLoRA aggregation, and the fault-tolerance
rule that picks a transfer mode for a vehicle about to leave its cell. Equations and sources: docs/strategies.md.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from iovsim.strategies import register
from iovsim.strategies.base import Plan, RoundFeedback, RoundState, Strategy, Update, state_rank
from iovsim.strategies.common import check_choice, eligible, rng_state, round_time_s, select, set_rng_state
from iovsim.strategies import ucb_core as core


def local_accuracy_pct(fb: RoundFeedback) -> tuple[np.ndarray, np.ndarray]:
    """q per participant in percent, and where it was measured.

    `fb.local_accuracy`: the accuracy in [0, 1] on the vehicle's held-out local data after its local
    training (eval mode), NaN where not measured. Where it is NaN, the relative training-loss decrease
    (before - after) / before, in percent (0 where that is not known either).
    """
    acc = np.asarray(fb.local_accuracy, dtype=float)
    before = np.asarray(fb.train_loss_before, dtype=float)
    after = np.asarray(fb.train_loss_after, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(np.isfinite(before) & np.isfinite(after) & (before > 0), (before - after) / before, 0.0)
    measured = np.isfinite(acc)
    return np.where(measured, 100.0 * acc, 100.0 * np.clip(drop, 0.0, 1.0)), measured


def _stats(n_arms: int) -> dict:
    return {"n": [0] * n_arms, "r": [0.0] * n_arms, "e": [0.0] * n_arms}


@register("ucb_dual")
class UCBDual(Strategy):
    """Per vehicle: bandit over `state.ranks`; per task: dual price on rank; server: budget reallocation.

    See docs/strategies.md (ucb_dual) for the equations, every parameter's default and its source.
    """

    def __init__(self, price: str = "rank", rank_budget=None, alpha_per_s: float = 0.16,
                 beta_per_j: float = 0.001, gamma_per_pct: float = 1.8, dual_step: float = 0.01,
                 dual_every: int = 3, decide_every: int = 3, initial_index: float = 0.0, ucb_c: float = 1.0,
                 realloc_every: int = 6, realloc_until_round: int | None = None, difficulty_decay: float = 0.9,
                 weight_exponent: float = 2.0, budget_floor: float = 0.08, budget_cap: float = 0.7,
                 reset_below_pct: float = 64.0, fault_alpha_per_s: float = 0.2, fault_beta_per_j: float = 0.05,
                 fault_gamma_per_pct: float = 2.0, safe_mode: str = "lose", energy_dual_step: float = 0.05,
                 selection: str = "random", respect_window: bool = False, margin: float = 1.0):
        super().__init__()
        check_choice("price", price, ("rank", "energy"))
        check_choice("selection", selection, ("random", "round_robin"))
        check_choice("safe_mode", safe_mode, core.TRANSFER_MODES)
        if rank_budget is not None and not (isinstance(rank_budget, (int, float)) and rank_budget > 0
                                            or isinstance(rank_budget, (list, tuple)) and rank_budget
                                            and min(rank_budget) > 0):
            raise ValueError(f"rank_budget must be null, a number > 0 or a list of numbers > 0, got {rank_budget!r}")
        if min(dual_every, decide_every, realloc_every) < 1:
            raise ValueError("dual_every, decide_every and realloc_every must be >= 1")
        if min(alpha_per_s, beta_per_j, gamma_per_pct, dual_step, ucb_c, energy_dual_step,
               fault_alpha_per_s, fault_beta_per_j, fault_gamma_per_pct) < 0:
            raise ValueError("weights, steps and ucb_c must be >= 0")
        if not 0 <= budget_floor <= budget_cap <= 1 or not 0 <= difficulty_decay <= 1:
            raise ValueError("expected 0 <= budget_floor <= budget_cap <= 1 and 0 <= difficulty_decay <= 1")
        if margin <= 0:
            raise ValueError("margin must be > 0")
        self.price = price
        self.rank_budget = list(rank_budget) if isinstance(rank_budget, (list, tuple)) else rank_budget
        self.w = (float(alpha_per_s), float(beta_per_j), float(gamma_per_pct))
        self.fault_w = (float(fault_alpha_per_s), float(fault_beta_per_j), float(fault_gamma_per_pct))
        self.eta, self.eta_energy = float(dual_step), float(energy_dual_step)
        self.dual_every, self.decide_every, self.realloc_every = int(dual_every), int(decide_every), int(realloc_every)
        self.realloc_until = None if realloc_until_round is None else int(realloc_until_round)
        self.initial_index, self.ucb_c = float(initial_index), float(ucb_c)
        self.decay, self.exponent = float(difficulty_decay), float(weight_exponent)
        self.floor_frac, self.cap_frac = float(budget_floor), float(budget_cap)
        self.reset_below = float(reset_below_pct)
        self.safe_mode = safe_mode
        self.selection, self.respect_window, self.margin = selection, bool(respect_window), float(margin)
        self.init_rng = np.random.default_rng()
        self._reset(1)

    # ------------------------------------------------------------------ memory
    def _reset(self, num_tasks: int) -> None:
        self.num_tasks = int(num_tasks)
        self.cands: list[int] = []
        self.vehicles: dict[str, dict] = {}
        self.stats: dict[str, dict] = {}
        self.pending: dict[str, dict] = {}
        self.last_round: dict[str, int] = {}
        self.budgets: list[float] | None = None        # rank budgets per task
        self.energy_budgets: list[float] | None = None
        self.lam = [0.0] * num_tasks
        self.h = [0.0] * num_tasks
        self.epoch = [0] * num_tasks
        self.q_target = [0.0] * num_tasks
        self.acc_dual = [[0.0, 0.0, 0] for _ in range(num_tasks)]   # rank sum, energy sum, rounds
        self.acc_alloc = [[0.0, 0.0, 0] for _ in range(num_tasks)]
        self.deadline_s = math.inf
        self.regret = 0.0

    def setup(self, num_tasks: int, seed: int, lora_alpha: float = 16.0) -> None:
        super().setup(num_tasks, seed, lora_alpha)
        # Fresh A rows of the FlexLoRA split come from their own stream (never shift selection draws).
        self.init_rng = np.random.default_rng([seed, 11])
        self._reset(num_tasks)

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.init_rng.integers(2**62)))

    def _init_budgets(self, state: RoundState) -> None:
        T = len(state.task_names)
        if len(self.lam) != T:
            self._reset(T)
        if self.budgets is None:
            rb = self.rank_budget
            if isinstance(rb, list):
                if len(rb) != T:
                    raise ValueError(f"rank_budget lists {len(rb)} tasks, the run has {T}")
                self.budgets = [float(b) for b in rb]
            else:
                total = float(rb) if rb is not None else float(state.max_participants * state.default_rank)
                self.budgets = [total / T] * T
        if self.energy_budgets is None:
            self.energy_budgets = [float(b) for b in np.asarray(state.energy_budget_j, dtype=float)]

    # ------------------------------------------------------------------ planning
    def configure(self, state: RoundState) -> Plan:
        cands = sorted(int(r) for r in state.ranks)
        if cands != self.cands:  # arms changed: per-arm statistics start over
            self.cands, self.stats, self.vehicles = cands, {}, {}
        self._init_budgets(state)
        self.deadline_s = float(state.round_deadline_s)
        chosen = select(state, self._eligible(state), state.max_participants, self.selection, self.seed,
                        self.last_round)
        tasks = np.asarray(state.task, dtype=int)
        share = np.zeros(chosen.size)
        for t in range(len(self.budgets)):
            m = tasks[chosen] == t
            share[m] = core.data_shares(self.budgets[t], np.asarray(state.num_samples)[chosen[m]])
        self.pending = {}
        ranks, steps, modes = [], [], []
        for k, i in enumerate(chosen):
            vid, t = state.vehicle_ids[i], int(tasks[i])
            arm, n_steps, ctx = self._choose(state, int(i), t, float(share[k]))
            rank = self.cands[arm]
            modes.append(self._transfer_mode(state, int(i), t, rank, n_steps))
            self.pending[vid] = {"arm": arm, "task": t, "ctx": ctx, "share": float(share[k]),
                                 "energy_share": self._energy_share(t, chosen, tasks)}
            self.last_round[vid] = int(state.round_index)
            ranks.append(rank)
            steps.append(n_steps)
        extra = {"eligible": int(self._last_eligible), "at_risk": sum(m != self.safe_mode for m in modes)}
        local_steps = None if all(s == state.local_steps for s in steps) else np.asarray(steps, dtype=int)
        return Plan(participants=chosen, rank=np.asarray(ranks, dtype=int), local_steps=local_steps,
                    train_options=[{"transfer_mode": m} for m in modes], extra=extra)

    def _eligible(self, state: RoundState) -> np.ndarray:
        ok = eligible(state, state.connected(), self.cands[0], self.margin, self.respect_window)
        self._last_eligible = ok.size
        return ok

    def _energy_share(self, t: int, chosen, tasks) -> float:
        b = self.energy_budgets[t] if t < len(self.energy_budgets) else math.inf
        return b / max(int(np.sum(tasks[chosen] == t)), 1)

    def _index(self, ctx: str, t: int, round_no: int) -> np.ndarray:
        st = self.stats.setdefault(ctx, _stats(len(self.cands)))
        n = np.asarray(st["n"], dtype=float)
        if self.price == "rank":
            price = self.lam[t] * np.asarray(self.cands, dtype=float)
        else:
            price = self.lam[t] * np.asarray(st["e"]) / np.maximum(n, 1.0)
        return core.ucb_index(st["r"], n, round_no, price, self.initial_index, self.ucb_c)

    def _choose(self, state: RoundState, i: int, t: int, share: float) -> tuple[int, int, str]:
        """Warm start at the share; re-decide every `decide_every` plays among adjacent arms."""
        vid = state.vehicle_ids[i]
        warm = core.nearest_arm(self.cands, share)
        v = self.vehicles.get(vid)
        if v is None or v["task"] != t:
            v = self.vehicles[vid] = {"arm": warm, "since": 0, "q": None, "epoch": self.epoch[t], "task": t}
        elif v["epoch"] != self.epoch[t]:  # the task's budget was reallocated
            v["epoch"] = self.epoch[t]
            if v["q"] is None or v["q"] < self.reset_below:
                v["arm"], v["since"] = warm, 0
        if v["since"] >= self.decide_every:
            v["arm"] = core.adjacent_choice(self._index(vid, t, state.round_index + 1), v["arm"])
            v["since"] = 0
        v["since"] += 1
        return v["arm"], int(state.local_steps), vid

    @staticmethod
    def _backhaul(state: RoundState) -> tuple[float, float]:
        """The engine's RSU-to-RSU backhaul (config channel.backhaul_latency_s / backhaul_rate_bps)."""
        return float(state.backhaul_latency_s), float(state.backhaul_rate_bps)

    def _transfer_mode(self, state: RoundState, i: int, t: int, rank: int, steps: int) -> str:
        """The authors' cost rule for a participant whose predicted round outlasts its dwell."""
        dwell = float(np.nan_to_num(state.dwell_time_s[i], nan=math.inf))
        tau = float(round_time_s(state, [i], rank, steps)[0])
        if state.costs is None or tau <= dwell:
            return self.safe_mode
        c = state.costs
        bits = float(c.adapter_bits(rank, i))
        down = bits / max(float(state.downlink_rate_bps[i]), 1e-9)
        up = bits / max(float(state.uplink_rate_bps[i]), 1e-9)
        step_s = float(np.asarray(c.compute_time_s(np.asarray([i]), np.asarray([rank]), np.asarray([1])))[0])
        done = math.floor((dwell - down - up) / step_s) if step_s > 0 else steps
        lat_s, rate_bps = self._backhaul(state)
        delay = lat_s + bits / rate_bps if rate_bps > 0 else math.inf
        energy = float(np.asarray(c.compute_energy_j(np.asarray([i]), np.asarray([rank]), np.asarray([steps])))[0])
        q = self.vehicles.get(state.vehicle_ids[i], {}).get("q")
        a, b, g = self.fault_w
        costs = core.transfer_costs(
            accuracy_target_pct=self.q_target[t], accuracy_pct=0.0 if q is None else q,
            round_energy_j=energy + state.default_tx_power_w * up, migration_delay_s=delay,
            migration_energy_j=state.default_tx_power_w * delay, early_possible=done >= 1,
            migrate_possible=tau + delay <= state.round_deadline_s, alpha_per_s=a, beta_per_j=b, gamma_per_pct=g)
        return core.cheapest_transfer(costs)

    # ------------------------------------------------------------------ aggregation
    def client_state(self, global_state, rank: int):
        from iovsim.fl.aggregate import refactor_rank

        return refactor_rank(global_state, int(rank), self.lora_alpha, self._generator())

    def aggregate(self, updates: list[Update], global_state) -> dict:
        """FlexLoRA: sample-weighted sum of (alpha / r_k) B_k A_k, truncated SVD at the global rank."""
        from iovsim.fl.aggregate import flexlora_aggregate

        return flexlora_aggregate(updates, state_rank(global_state), self.lora_alpha, self._generator())

    # ------------------------------------------------------------------ learning
    def observe(self, fb: RoundFeedback) -> dict:
        T = len(self.lam)
        q, measured = local_accuracy_pct(fb)
        ok = fb.delivered()
        q = np.where(ok, q, 0.0)  # a lost update contributes no accuracy
        lat = np.asarray(fb.latency_s, dtype=float)
        lat = np.where(np.isfinite(lat), lat, self.deadline_s if math.isfinite(self.deadline_s) else 0.0)
        energy = np.nan_to_num(np.asarray(fb.energy_j, dtype=float))
        reward, r_lat, r_en, r_acc = core.paper_reward(lat, energy, q, *self.w)
        used = np.zeros(T)
        active = np.zeros(T, bool)
        best_q = [None] * T
        rows = []
        for k, vid in enumerate(fb.vehicle_ids):
            p = self.pending.get(vid)
            if p is None:
                continue
            t, arm = p["task"], p["arm"]
            st = self.stats.setdefault(p["ctx"], _stats(len(self.cands)))
            st["n"][arm] += 1
            st["r"][arm] += float(reward[k])
            e_norm = float(energy[k] / p["energy_share"]) if 0 < p["energy_share"] < math.inf else 0.0
            st["e"][arm] += e_norm
            if ok[k] and vid in self.vehicles:
                self.vehicles[vid]["q"] = float(q[k])
                best_q[t] = max(best_q[t] or 0.0, float(q[k]))
            self._after_play(vid, p, fb.status[k], float(reward[k]), e_norm)
            used[t] += self.cands[arm]
            active[t] = True
            rows.append(k)
        self.q_target = [self.q_target[t] if best_q[t] is None else best_q[t] for t in range(T)]
        spent = np.asarray(fb.task_energy_j, dtype=float)[:T]
        log = self._round_log(used, spent, active, rows, reward, r_lat, r_en, r_acc, fb, measured)
        self._update_duals(fb.round_index + 1, used, spent, active)
        self._update_budgets(fb.round_index + 1, used, spent, active, np.asarray(fb.task_accuracy, dtype=float))
        self.regret = self._regret()
        log["regret_cum"] = self.regret
        self.pending = {}
        return log

    def _after_play(self, vid: str, pending: dict, status: str, reward: float, energy_norm: float) -> None:
        """Hook for subclasses (dwell_ucb learns its prediction error here)."""

    def _is_context(self, key: str) -> bool:
        return True

    def _update_duals(self, round_no: int, used, spent, active) -> None:
        for t in range(len(self.lam)):
            acc = self.acc_dual[t]
            if active[t]:
                acc[0] += float(used[t])
                acc[1] += float(spent[t])
                acc[2] += 1
        if round_no % self.dual_every:
            return
        for t, acc in enumerate(self.acc_dual):
            if acc[2]:
                if self.price == "rank":
                    self.lam[t] = core.dual_step(self.lam[t], acc[0] / acc[2], self.budgets[t], self.eta)
                elif math.isfinite(self.energy_budgets[t]) and self.energy_budgets[t] > 0:
                    ratio = acc[1] / acc[2] / self.energy_budgets[t]
                    self.lam[t] = core.dual_step(self.lam[t], ratio, 1.0, self.eta_energy)
            self.acc_dual[t] = [0.0, 0.0, 0]

    def _update_budgets(self, round_no: int, used, spent, active, task_acc) -> None:
        T = len(self.lam)
        budgets = self.budgets if self.price == "rank" else self.energy_budgets
        self.h = [float(x) for x in core.task_difficulty(self.h, budgets, 100.0 * task_acc[:T], self.decay)]
        for t, acc in enumerate(self.acc_alloc):
            if active[t]:
                acc[0] += float(used[t])
                acc[1] += float(spent[t])
                acc[2] += 1
        if (T < 2 or round_no % self.realloc_every or not all(math.isfinite(b) for b in budgets)
                or (self.realloc_until is not None and round_no >= self.realloc_until)):
            return
        col = 0 if self.price == "rank" else 1
        avg = [a[col] / a[2] if a[2] else 0.0 for a in self.acc_alloc]
        total = float(sum(budgets))
        new = core.allocate_budgets(total, avg, self.h, budgets, self.floor_frac * total,
                                    self.cap_frac * total, self.exponent)
        for t in range(T):
            if abs(new[t] - budgets[t]) > 1e-9:
                self.epoch[t] += 1
        new = [float(x) for x in new]
        if self.price == "rank":
            self.budgets = new
        else:
            self.energy_budgets = new
        self.acc_alloc = [[0.0, 0.0, 0] for _ in range(T)]

    def _regret(self) -> float:
        """Diagnostic: sum over contexts and arms of plays x (best empirical mean in the context - arm mean)."""
        total = 0.0
        for key, st in self.stats.items():
            if not self._is_context(key):
                continue
            n = np.asarray(st["n"], dtype=float)
            if n.sum() == 0:
                continue
            mean = np.asarray(st["r"]) / np.maximum(n, 1.0)
            best = mean[n > 0].max()
            total += float(np.sum(n * (best - mean) * (n > 0)))
        return total

    def _round_log(self, used, spent, active, rows, reward, r_lat, r_en, r_acc, fb, measured) -> dict:
        log: dict = {}
        ranks = [self.cands[self.pending[fb.vehicle_ids[k]]["arm"]] for k in rows]
        log["rank_mean"] = float(np.mean(ranks)) if ranks else 0.0
        log["rank_min"] = float(min(ranks)) if ranks else 0.0
        log["rank_max"] = float(max(ranks)) if ranks else 0.0
        violation = 0.0
        for t in range(len(self.lam)):
            log[f"lambda/t{t}"] = float(self.lam[t])
            log[f"rank_budget/t{t}"] = float(self.budgets[t])
            log[f"rank_used/t{t}"] = float(used[t])
            e_b = self.energy_budgets[t]
            log[f"energy_budget_j/t{t}"] = float(e_b) if math.isfinite(e_b) else -1.0
            if self.price == "rank":
                violation += max(0.0, float(used[t]) - self.budgets[t])
            elif math.isfinite(e_b):
                violation += max(0.0, float(spent[t]) - e_b)
        log["budget_violation"] = violation
        idx = np.asarray(rows, dtype=int)
        for name, arr in (("reward", reward), ("reward_latency", r_lat), ("reward_energy", r_en),
                          ("reward_accuracy", r_acc)):
            log[name] = float(np.mean(arr[idx])) if idx.size else 0.0
        log["accuracy_measured"] = int(np.sum(measured[idx])) if idx.size else 0
        return log

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        fin = lambda x: float(x) if math.isfinite(x) else None  # strict JSON: no Infinity
        pending = {v: {**p, "energy_share": fin(p["energy_share"])} for v, p in self.pending.items()}
        return {"seed": self.seed, "cands": list(self.cands), "vehicles": self.vehicles,
                "stats": self.stats, "pending": pending, "last_round": dict(self.last_round),
                "budgets": self.budgets, "energy_budgets": None if self.energy_budgets is None
                else [fin(b) for b in self.energy_budgets], "lam": list(self.lam), "h": list(self.h),
                "epoch": list(self.epoch), "q_target": list(self.q_target), "acc_dual": self.acc_dual,
                "acc_alloc": self.acc_alloc, "deadline_s": fin(self.deadline_s), "regret": self.regret,
                "lora_alpha": self.lora_alpha, "init_rng": rng_state(self.init_rng)}

    def load_state_dict(self, state: dict) -> None:
        unfin = lambda x: math.inf if x is None else float(x)
        self.seed = int(state["seed"])
        self.cands = [int(r) for r in state["cands"]]
        self.vehicles = {str(k): dict(v) for k, v in state["vehicles"].items()}
        self.stats = {str(k): {n: list(a) for n, a in v.items()} for k, v in state["stats"].items()}
        self.pending = {v: {**p, "energy_share": unfin(p["energy_share"])} for v, p in state["pending"].items()}
        self.last_round = {str(k): int(v) for k, v in state["last_round"].items()}
        self.budgets = None if state["budgets"] is None else [float(b) for b in state["budgets"]]
        self.energy_budgets = None if state["energy_budgets"] is None else [unfin(b) for b in state["energy_budgets"]]
        self.lam = [float(x) for x in state["lam"]]
        self.h = [float(x) for x in state["h"]]
        self.epoch = [int(x) for x in state["epoch"]]
        self.q_target = [float(x) for x in state["q_target"]]
        self.acc_dual = [list(a) for a in state["acc_dual"]]
        self.acc_alloc = [list(a) for a in state["acc_alloc"]]
        self.deadline_s = unfin(state["deadline_s"])
        self.regret = float(state["regret"])
        self.lora_alpha = float(state["lora_alpha"])
        if "init_rng" in state:
            set_rng_state(self.init_rng, state["init_rng"])
        self.num_tasks = len(self.lam)
