"""Aggregation math on adapter state dicts (plain tensors, see strategies/base.py for names)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Update:
    """One adapter update entering aggregation (from a vehicle, or an RSU's aggregate)."""

    state: dict                      # name -> torch.Tensor
    weight: float                    # samples behind it (FedAvg weight)
    rank: int
    source: str = ""                 # vehicle id or rsu id
    info: dict = field(default_factory=dict)


def state_rank(state: dict) -> int:
    """Rank of an adapter state dict (rows of its first lora_A)."""
    for k, v in state.items():
        if k.endswith(".lora_A"):
            return int(v.shape[0])
    raise ValueError("state dict has no lora_A")


def weighted_mean(states: list[dict], weights) -> dict:
    """Key-wise weighted mean of same-shaped state dicts (weights need not sum to 1)."""
    w = torch.as_tensor([float(x) for x in weights], dtype=torch.float64)
    if w.sum() <= 0:
        raise ValueError("aggregation weights sum to zero")
    w = w / w.sum()
    out = {}
    for key in states[0]:
        acc = torch.zeros_like(states[0][key], dtype=torch.float64)
        for wi, s in zip(w, states):
            acc += wi * s[key].to(torch.float64)
        out[key] = acc.to(states[0][key].dtype)
    return out


def fedavg(updates: list[Update]) -> Update:
    """Sample-weighted FedAvg of A, B and the head (HomoLoRA). Ranks must agree."""
    ranks = {u.rank for u in updates}
    if len(ranks) != 1:
        raise ValueError(f"FedAvg needs equal ranks, got {sorted(ranks)}")
    total = sum(u.weight for u in updates)
    state = weighted_mean([u.state for u in updates], [u.weight for u in updates])
    return Update(state=state, weight=total, rank=updates[0].rank, source="+".join(u.source for u in updates))


# ---------------------------------------------------------------------------------------------
# Rank-heterogeneous LoRA math (HetLoRA, FlexLoRA, FLoRA). peft scales an adapter by alpha / r, so
# the update a rank-r adapter applies is  dW = (alpha / r) B A.  Functions that move an adapter
# between ranks keep dW's components unchanged when `rescale` is true (B is multiplied by
# r_to / r_from); functions that form dW take `lora_alpha`.
# ---------------------------------------------------------------------------------------------

def lora_modules(state: dict) -> list[str]:
    """Module paths that carry a LoRA pair in `state` (in key order)."""
    return [k[: -len(".lora_A")] for k in state if k.endswith(".lora_A")]


def resize_rank(state: dict, rank: int, rescale: bool = True) -> dict:
    """Truncate (first `rank` rows of A / columns of B) or zero-pad an adapter to `rank`.

    With `rescale`, B is multiplied by rank / old_rank so that (alpha / r) B A keeps the kept
    components' contribution (peft's alpha / r scaling); truncate-then-pad round-trips exactly.
    """
    old = state_rank(state)
    factor = rank / old if rescale else 1.0
    out = {}
    for k, v in state.items():
        if k.endswith(".lora_A"):
            out[k] = v[:rank].clone() if old >= rank else torch.cat([v, v.new_zeros(rank - old, v.shape[1])], 0)
        elif k.endswith(".lora_B"):
            b = v[:, :rank].clone() if old >= rank else torch.cat([v, v.new_zeros(v.shape[0], rank - old)], 1)
            out[k] = b * factor if factor != 1.0 else b
        else:
            out[k] = v
    return out


def lora_product(state: dict, module: str, lora_alpha: float | None = None) -> torch.Tensor:
    """dW = scale * B @ A of one module in float64; scale = lora_alpha / rank (1 when alpha is None)."""
    a = state[f"{module}.lora_A"].to(torch.float64)
    b = state[f"{module}.lora_B"].to(torch.float64)
    scale = 1.0 if lora_alpha is None else float(lora_alpha) / a.shape[0]
    return scale * (b @ a)


def update_norm(state: dict, lora_alpha: float | None = None) -> float:
    """Frobenius norm of the whole adapter update: sqrt(sum over modules ||scale B A||_F^2).

    Computed as trace((B^T B)(A A^T)) so no out x in matrix is formed.
    """
    total = 0.0
    for m in lora_modules(state):
        a = state[f"{m}.lora_A"].to(torch.float64)
        b = state[f"{m}.lora_B"].to(torch.float64)
        scale = 1.0 if lora_alpha is None else float(lora_alpha) / a.shape[0]
        total += scale * scale * float(torch.sum((b.T @ b) * (a @ a.T)))
    return max(total, 0.0) ** 0.5


def sparsity_weights(updates: list[Update], use_samples: bool = True) -> list[float]:
    """HetLoRA's sparsity weights: ||dW_k||_F (times the sample count), normalized to sum 1.

    dW_k = B_k A_k / r_k (alpha cancels in the normalization). Falls back to sample weights when
    every update is zero (e.g. the first round, B = 0).
    """
    norms = [update_norm(u.state, lora_alpha=1.0) for u in updates]
    base = [float(u.weight) if use_samples else 1.0 for u in updates]
    w = [n * b for n, b in zip(norms, base)]
    total = sum(w)
    if total <= 0:
        total_b = sum(base)
        if total_b <= 0:
            raise ValueError("aggregation weights sum to zero")
        return [b / total_b for b in base]
    return [x / total for x in w]


def zero_pad_aggregate(updates: list[Update], rank: int, lora_weights=None, rescale: bool = True) -> dict:
    """HetLoRA aggregation: zero-pad every update to `rank`, weighted mean of A and B.

    `lora_weights` weight the LoRA factors (default: samples); the head and any other entry
    (e.g. `.delta`) are averaged with the sample weights. With equal ranks and default weights
    this is FedAvg.
    """
    padded = [resize_rank(u.state, rank, rescale=rescale) for u in updates]
    samples = [float(u.weight) for u in updates]
    lw = samples if lora_weights is None else [float(x) for x in lora_weights]
    lora_keys = [k for k in padded[0] if k.endswith((".lora_A", ".lora_B"))]
    other_keys = [k for k in padded[0] if k not in lora_keys]
    out = weighted_mean([{k: p[k] for k in lora_keys} for p in padded], lw)
    if other_keys:
        out.update(weighted_mean([{k: p[k] for k in other_keys} for p in padded], samples))
    return {k: out[k] for k in padded[0]}


def self_prune(state: dict, rank: int, gamma: float, tol: float = 0.1, rescale: bool = True,
               min_rank: int = 1) -> tuple[dict, int]:
    """HetLoRA local rank self-pruning, called by the training side after local training.

    The tail = components keep..rank-1 with keep = max(min_rank, floor(gamma * rank)). When the
    tail's update norm ||B[:, keep:] A[keep:]|| is at most `tol` x the whole update's norm, the
    adapter is truncated to `keep` (B rescaled as in `resize_rank`) and `(state, keep)` is
    returned; otherwise `(state, rank)` unchanged. An all-zero update is never pruned.
    """
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must be in (0, 1), got {gamma}")
    rank = int(rank)
    keep = max(int(min_rank), int(gamma * rank))
    if keep >= rank:
        return state, rank
    whole = update_norm(state)
    if whole <= 0:
        return state, rank
    tail = {}
    for m in lora_modules(state):
        tail[f"{m}.lora_A"] = state[f"{m}.lora_A"][keep:]
        tail[f"{m}.lora_B"] = state[f"{m}.lora_B"][:, keep:]
    if update_norm(tail) <= tol * whole:
        return resize_rank(state, keep, rescale=rescale), keep
    return state, rank


def svd_split(delta: torch.Tensor, rank: int, lora_alpha: float | None = None, dtype=torch.float32):
    """Best rank-`rank` factorization of dW for an adapter: scale * B @ A = truncated SVD of dW.

    Convention (balanced split): dW ~ U_r S_r V_r^T, B = U_r sqrt(S_r / scale),
    A = sqrt(S_r / scale) V_r^T with scale = lora_alpha / rank (1 when alpha is None). Missing
    singular values (rank > min(out, in)) are padded with zeros.
    """
    d = delta.to(torch.float64)
    u, s, vh = torch.linalg.svd(d, full_matrices=False)
    k = min(rank, s.numel())
    scale = 1.0 if lora_alpha is None else float(lora_alpha) / rank
    root = torch.sqrt(s[:k] / scale)
    b = torch.zeros(d.shape[0], rank, dtype=torch.float64)
    a = torch.zeros(rank, d.shape[1], dtype=torch.float64)
    b[:, :k] = u[:, :k] * root
    a[:k] = root[:, None] * vh[:k]
    return b.to(dtype), a.to(dtype)


def lowrank_svd(b: torch.Tensor, a: torch.Tensor, scale: float = 1.0):
    """SVD of scale * B @ A without forming it: QR of B and A^T, SVD of the r x r core.

    Returns U (out x r), S (r,), Vh (r x in).
    """
    b = b.to(torch.float64)
    a = a.to(torch.float64)
    qb, rb = torch.linalg.qr(b)
    qa, ra = torch.linalg.qr(a.T)
    uc, s, vhc = torch.linalg.svd(scale * (rb @ ra.T))
    return qb @ uc, s, vhc @ qa.T


def refactor_rank(state: dict, rank: int, lora_alpha: float | None = None) -> dict:
    """FlexLoRA client split: each module's scale * B @ A re-factorized by SVD at `rank` (see svd_split)."""
    r_old = state_rank(state)
    out = {}
    for k, v in state.items():
        if not k.endswith((".lora_A", ".lora_B")):
            out[k] = v
    for m in lora_modules(state):
        a, b = state[f"{m}.lora_A"], state[f"{m}.lora_B"]
        s_old = 1.0 if lora_alpha is None else float(lora_alpha) / r_old
        u, s, vh = lowrank_svd(b, a, s_old)
        k = min(rank, s.numel())
        s_new = 1.0 if lora_alpha is None else float(lora_alpha) / rank
        root = torch.sqrt(s[:k] / s_new)
        nb = torch.zeros(b.shape[0], rank, dtype=torch.float64)
        na = torch.zeros(rank, a.shape[1], dtype=torch.float64)
        nb[:, :k] = u[:, :k] * root
        na[:k] = root[:, None] * vh[:k]
        out[f"{m}.lora_A"] = na.to(a.dtype)
        out[f"{m}.lora_B"] = nb.to(b.dtype)
    return {k: out[k] for k in state}


def flexlora_aggregate(updates: list[Update], rank: int, lora_alpha: float | None = None) -> dict:
    """FlexLoRA: sample-weighted sum of full updates scale_k B_k A_k per module, truncated SVD at `rank`.

    The result is an adapter of rank `rank` in the svd_split convention; the head and other
    entries are sample-weighted means.
    """
    w = torch.as_tensor([float(u.weight) for u in updates], dtype=torch.float64)
    if w.sum() <= 0:
        raise ValueError("aggregation weights sum to zero")
    w = w / w.sum()
    first = updates[0].state
    out = {}
    for m in lora_modules(first):
        delta = sum(wi * lora_product(u.state, m, lora_alpha) for wi, u in zip(w, updates))
        b, a = svd_split(delta, rank, lora_alpha, dtype=first[f"{m}.lora_A"].dtype)
        out[f"{m}.lora_A"], out[f"{m}.lora_B"] = a, b
    others = [k for k in first if not k.endswith((".lora_A", ".lora_B"))]
    if others:
        out.update(weighted_mean([{k: u.state[k] for k in others} for u in updates], [u.weight for u in updates]))
    return {k: out[k] for k in first}


def stack_lora(As: list[torch.Tensor], Bs: list[torch.Tensor], weights, scales=None):
    """FLoRA stacking: A_stack = [A_1; ...; A_K], B_stack = [w_1 s_1 B_1, ..., w_K s_K B_K].

    Then B_stack @ A_stack = sum_k w_k s_k B_k A_k exactly (ranks may differ). `weights` are
    normalized to sum 1; `scales` default to 1.
    """
    w = torch.as_tensor([float(x) for x in weights], dtype=torch.float64)
    if w.sum() <= 0:
        raise ValueError("aggregation weights sum to zero")
    w = w / w.sum()
    scales = [1.0] * len(As) if scales is None else [float(s) for s in scales]
    a_stack = torch.cat([a.to(torch.float64) for a in As], 0)
    b_stack = torch.cat([wi * si * b.to(torch.float64) for wi, si, b in zip(w, scales, Bs)], 1)
    return a_stack, b_stack


def kaiming_uniform_A(rank: int, in_features: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """A fresh LoRA A as peft initializes it: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in))."""
    bound = 1.0 / in_features ** 0.5
    return ((torch.rand(rank, in_features, generator=generator, dtype=torch.float64) * 2 - 1) * bound).to(dtype)


def flora_aggregate(updates: list[Update], global_state: dict, lora_alpha: float, rank: int,
                    generator: torch.Generator) -> dict:
    """FLoRA: merge the stacked product into `.delta` and hand out fresh adapters.

    new delta = sum_k w_k (delta_k + (alpha / r_k) B_k A_k), w = samples, where delta_k is the
    update's `.delta` (the global's when it has none, zero when neither has). Since every update
    of a round starts from the same delta this is delta + B_stack @ A_stack, and it composes
    exactly over the RSU -> cloud hierarchy. The returned state has that delta, fresh A
    (kaiming-uniform from `generator`) and zero B at `rank`, and the sample-weighted head.
    """
    weights = [float(u.weight) for u in updates]
    total = sum(weights)
    if total <= 0:
        raise ValueError("aggregation weights sum to zero")
    out = {}
    for m in lora_modules(global_state):
        a_g = global_state[f"{m}.lora_A"]
        b_g = global_state[f"{m}.lora_B"]
        zero = torch.zeros(b_g.shape[0], a_g.shape[1], dtype=torch.float64)
        deltas = [u.state.get(f"{m}.delta", global_state.get(f"{m}.delta")) for u in updates]
        prev = sum((wi / total) * (zero if d is None else d.to(torch.float64)) for wi, d in zip(weights, deltas))
        As = [u.state[f"{m}.lora_A"] for u in updates]
        Bs = [u.state[f"{m}.lora_B"] for u in updates]
        a_s, b_s = stack_lora(As, Bs, weights, [lora_alpha / a.shape[0] for a in As])
        out[f"{m}.lora_A"] = kaiming_uniform_A(rank, a_g.shape[1], generator, a_g.dtype)
        out[f"{m}.lora_B"] = torch.zeros(b_g.shape[0], rank, dtype=b_g.dtype)
        out[f"{m}.delta"] = (prev + b_s @ a_s).to(a_g.dtype)
    skip = {k for k in out} | {k for k in global_state if k.endswith(".delta")}
    others = [k for k in updates[0].state if k not in skip and not k.endswith((".lora_A", ".lora_B", ".delta"))]
    if others:
        out.update(weighted_mean([{k: u.state[k] for k in others} for u in updates], weights))
    order = [k for k in global_state if k in out] + [k for k in out if k not in global_state]
    return {k: out[k] for k in order}
