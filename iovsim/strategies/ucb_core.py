"""Numbers-only pieces of UCB-DUAL (arXiv 2508.09532): reward, bandit index, adjacent moves, warm start,
dual update, inter-task budget allocation, and the fault-tolerance cost rule.

Each function takes plain numbers/arrays and returns values, so the synthetic tests exercise exactly
what the strategies run. Sources of the formulas and defaults are in docs/strategies.md (ucb_dual).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from iovsim.strategies.base import TRANSFER_MODES  # noqa: F401 - used by the strategies' parameter checks


def paper_reward(latency_s, energy_j, accuracy_pct, alpha_per_s: float, beta_per_j: float,
                 gamma_per_pct: float):
    """r = -(alpha tau + beta e - gamma q), with its three parts (latency, energy, accuracy terms)."""
    lat = alpha_per_s * np.asarray(latency_s, dtype=float)
    en = beta_per_j * np.asarray(energy_j, dtype=float)
    acc = gamma_per_pct * np.asarray(accuracy_pct, dtype=float)
    return -(lat + en - acc), lat, en, acc


def ucb_index(sum_reward, plays, t: int, price_per_arm, initial_index: float, c: float = 1.0) -> np.ndarray:
    """mean reward - price + c sqrt(2 ln t / n) per arm; an arm never played has `initial_index` - price.

    `price_per_arm` is lambda x rank (rank pricing) or lambda x mean normalized energy (energy pricing).
    Untried arms are priced too: an unpriced constant would make untried higher ranks look better than
    tried lower ones exactly when the budget binds.
    """
    n = np.asarray(plays, dtype=float)
    s = np.asarray(sum_reward, dtype=float)
    seen = n > 0
    bonus = c * np.sqrt(2.0 * math.log(max(int(t), 1)) / np.where(seen, n, 1.0))
    mean = np.where(seen, s / np.where(seen, n, 1.0) + bonus, float(initial_index))
    return mean - np.asarray(price_per_arm, dtype=float)


def adjacent_choice(index: np.ndarray, current: int) -> int:
    """Best of the current arm and its neighbours in the candidate list.

    Ties keep the current arm; between neighbours the lower rank wins (the authors' scan order).
    """
    best = int(current)
    for a in (current - 1, current + 1):
        if 0 <= a < len(index) and index[a] > index[best]:
            best = a
    return best


def data_shares(budget: float, num_samples) -> np.ndarray:
    """Each vehicle's data-proportional share of its task's rank budget."""
    n = np.maximum(np.asarray(num_samples, dtype=float), 0.0)
    if n.size == 0:
        return n
    if n.sum() <= 0:
        return np.full(n.shape, budget / n.size)
    return budget * n / n.sum()


def nearest_arm(candidates, value: float) -> int:
    """Index of the candidate rank nearest `value` (ties to the lower rank)."""
    c = np.asarray(candidates, dtype=float)
    return int(np.argmin(np.abs(c - value) + 1e-9 * c))


def dual_step(lam: float, used: float, budget: float, eta: float) -> float:
    """Projected dual ascent lambda <- max(0, lambda + eta (used - budget))."""
    if not math.isfinite(budget):
        return 0.0
    return float(max(0.0, lam + eta * (used - budget)))


def task_difficulty(h_prev, budgets, accuracy_pct, decay: float = 0.9) -> np.ndarray:
    """h_t <- decay h_t + (1 - decay) budget_t / accuracy_t (accuracy in percent, at least 1).

    A task whose accuracy was not measured this round (NaN: fl.eval_every) keeps its h."""
    raw = np.asarray(accuracy_pct, dtype=float)
    h_prev = np.asarray(h_prev, dtype=float)
    acc = np.maximum(np.nan_to_num(raw, nan=1.0), 1.0)
    new = decay * h_prev + (1 - decay) * np.asarray(budgets, dtype=float) / acc
    return np.where(np.isnan(raw), h_prev, new)


def allocate_budgets(total: float, used, h, budgets, floor: float, cap: float, exponent: float = 2.0) -> np.ndarray:
    """Split `total` over tasks: each keeps what it used plus a share of the rest by h^exponent x utilisation.

    utilisation_t = used_t / budget_t. The result is projected onto {floor <= b_t <= cap, sum b = total}
    by one common shift (water-filling), so the total is conserved exactly. Needs T floor <= total <= T cap.
    """
    used = np.maximum(np.asarray(used, dtype=float), 0.0)
    b_old = np.asarray(budgets, dtype=float)
    T = used.size
    if not T * floor - 1e-9 <= total <= T * cap + 1e-9:
        raise ValueError(f"infeasible budget bounds: {T} tasks, floor {floor}, cap {cap}, total {total}")
    util = np.where(b_old > 0, used / np.where(b_old > 0, b_old, 1.0), 0.0)
    w = np.asarray(h, dtype=float) ** exponent * util
    rest = total - used.sum()
    raw = used + (rest * w / w.sum() if w.sum() > 0 else rest / T)
    fill = lambda c: float(np.clip(raw + c, floor, cap).sum() - total)
    lo, hi = floor - raw.max() - 1.0, cap - raw.min() + 1.0
    shift = 0.0 if abs(fill(0.0)) < 1e-12 else brentq(fill, lo, hi, xtol=1e-12)
    return np.clip(raw + shift, floor, cap)


def transfer_costs(*, accuracy_target_pct: float, accuracy_pct: float, round_energy_j: float,
                   migration_delay_s: float, migration_energy_j: float, early_possible: bool,
                   migrate_possible: bool, alpha_per_s: float, beta_per_j: float,
                   gamma_per_pct: float) -> dict:
    """The authors' fault-tolerance costs for a vehicle that will leave its cell mid-round.

    early upload: gamma max(0, q_target - q); migrate: alpha delay + beta energy;
    abandon: beta (energy spent for nothing) + gamma q_target. Infeasible options cost inf.
    """
    early = gamma_per_pct * max(0.0, accuracy_target_pct - accuracy_pct) if early_possible else math.inf
    migrate = alpha_per_s * migration_delay_s + beta_per_j * migration_energy_j if migrate_possible else math.inf
    abandon = beta_per_j * round_energy_j + gamma_per_pct * accuracy_target_pct
    return {"early_upload": early, "migrate": migrate, "abandon": abandon}


def cheapest_transfer(costs: dict) -> str:
    """The plan's transfer mode for the cheapest option (abandon = today's `lose`); ties by list order."""
    best = min(("early_upload", "migrate", "abandon"), key=lambda k: costs[k])
    return "lose" if best == "abandon" else best
