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
    """Sparsity weights over the whole adapter: ||dW_k||_F (times the sample count), normalized to sum 1.

    dW_k = B_k A_k / r_k (alpha cancels in the normalization). Falls back to sample weights when
    every update is zero (e.g. the first round, B = 0).
    """
    norms = [update_norm(u.state, lora_alpha=1.0) for u in updates]
    return _normalized_or_samples(norms, updates, use_samples)


def _normalized_or_samples(norms: list[float], updates: list[Update], use_samples: bool) -> list[float]:
    base = [float(u.weight) if use_samples else 1.0 for u in updates]
    w = [n * b for n, b in zip(norms, base)]
    total = sum(w)
    if total <= 0:
        total_s = sum(float(u.weight) for u in updates)
        if total_s <= 0:
            raise ValueError("aggregation weights sum to zero")
        return [float(u.weight) / total_s for u in updates]
    return [x / total for x in w]


def module_sparsity_weights(updates: list[Update], use_samples: bool = False) -> dict[str, list[float]]:
    """HetLoRA's sparsity weights per LoRA module: w_k,m = ||B_k,m A_k,m / r_k||_F / Z_m.

    The paper weights each client's module by the Frobenius norm of its reconstructed update,
    normalized over clients (optionally times samples). A module whose updates are all zero falls
    back to sample weights.
    """
    out = {}
    for m in lora_modules(updates[0].state):
        norms = []
        for u in updates:
            a = u.state[f"{m}.lora_A"].to(torch.float64)
            b = u.state[f"{m}.lora_B"].to(torch.float64)
            norms.append(max(float(torch.sum((b.T @ b) * (a @ a.T))), 0.0) ** 0.5 / a.shape[0])
        out[m] = _normalized_or_samples(norms, updates, use_samples)
    return out


def zero_pad_aggregate(updates: list[Update], rank: int, lora_weights=None, rescale: bool = True) -> dict:
    """HetLoRA aggregation: zero-pad every update to `rank`, weighted mean of A and B.

    `lora_weights` weight the LoRA factors: None (samples), one list for every module, or a dict
    module -> list (per-module weights, see module_sparsity_weights). The head and any other entry
    (e.g. `.delta`) are averaged with the sample weights. With equal ranks and default weights
    this is FedAvg.
    """
    padded = [resize_rank(u.state, rank, rescale=rescale) for u in updates]
    samples = [float(u.weight) for u in updates]
    lora_keys = [k for k in padded[0] if k.endswith((".lora_A", ".lora_B"))]
    other_keys = [k for k in padded[0] if k not in lora_keys]
    out = {}
    for m in lora_modules(padded[0]):
        if isinstance(lora_weights, dict):
            lw = lora_weights[m]
        else:
            lw = samples if lora_weights is None else lora_weights
        keys = (f"{m}.lora_A", f"{m}.lora_B")
        out.update(weighted_mean([{k: p[k] for k in keys} for p in padded], lw))
    if other_keys:
        out.update(weighted_mean([{k: p[k] for k in other_keys} for p in padded], samples))
    return {k: out[k] for k in padded[0]}


def self_prune(state: dict, rank: int, gamma: float, tol: float = 0.5, rescale: bool = True,
               min_rank: int = 1) -> tuple[dict, int]:
    """HetLoRA local rank self-pruning, called by the training side after local training.

    keep = max(min_rank, floor(gamma * rank)); with gamma close to 1 (0.99) the tail is the last
    component, so a rank decays one step at a time. The tail's update per component
    (||B[:, keep:] A[keep:]||_F / sqrt(rank - keep), summed over modules) is compared with the
    rest's (||B[:, :keep] A[:keep]||_F / sqrt(keep)); when it is at most `tol` times that, the
    adapter is truncated to `keep` (B rescaled as in `resize_rank`) and `(state, keep)` is
    returned, otherwise `(state, rank)` unchanged. Per component, so one `tol` means the same at
    every rank; an all-zero update is never pruned.
    """
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must be in (0, 1), got {gamma}")
    rank = int(rank)
    keep = max(int(min_rank), int(gamma * rank))
    if keep >= rank:
        return state, rank
    tail, rest = {}, {}
    for m in lora_modules(state):
        a, b = state[f"{m}.lora_A"], state[f"{m}.lora_B"]
        tail[f"{m}.lora_A"], tail[f"{m}.lora_B"] = a[keep:], b[:, keep:]
        rest[f"{m}.lora_A"], rest[f"{m}.lora_B"] = a[:keep], b[:, :keep]
    rest_rms = update_norm(rest) / keep ** 0.5
    if rest_rms <= 0:
        return state, rank
    if update_norm(tail) / (rank - keep) ** 0.5 <= tol * rest_rms:
        return resize_rank(state, keep, rescale=rescale), keep
    return state, rank


# Singular values below this fraction of the largest are numerical noise of a lower-rank product.
_SV_RTOL = 1e-9


def _flex_factors(u, s, vh, rank: int, scale: float, generator: torch.Generator | None,
                  dtype=torch.float32):
    """FlexLoRA's split of U S V^T at `rank`: B = U_r S_r / scale, A = V_r^T, so scale B A = U_r S_r V_r^T.

    Components with no singular value (dW = 0 there, e.g. the first round where every B is 0, or
    rank > rank of dW) get a fresh kaiming-uniform A row and a zero B column, as peft initializes
    an adapter: their product stays zero but B's gradient does not, so they remain trainable.
    """
    out_f, in_f = u.shape[0], vh.shape[1]
    b = torch.zeros(out_f, rank, dtype=torch.float64)
    a = torch.zeros(rank, in_f, dtype=torch.float64)
    k = min(rank, s.numel())
    s_max = float(s.max()) if s.numel() else 0.0
    n = int((s[:k] > _SV_RTOL * s_max).sum()) if s_max > 0 else 0  # sorted: the live ones come first
    # An SVD fixes each (u_i, v_i) only up to a joint sign; the largest |entry| of v_i is made positive
    # so that the factors depend on dW alone, not on which SVD (dense or low-rank) produced them.
    # Training is exactly equivariant to such flips (negation is exact), so results do not move.
    vh_n = vh[:n]
    sign = torch.sign(vh_n.gather(1, vh_n.abs().argmax(1, keepdim=True)))
    b[:, :n] = u[:, :n] * (s[:n] / scale) * sign.T
    a[:n] = vh_n * sign
    if n < rank:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        a[n:] = kaiming_uniform_A(rank - n, in_f, gen, torch.float64)
    return b.to(dtype), a.to(dtype)


def svd_split(delta: torch.Tensor, rank: int, lora_alpha: float | None = None, dtype=torch.float32,
              generator: torch.Generator | None = None):
    """FlexLoRA factorization of dW for an adapter of `rank`: scale * B @ A = truncated SVD of dW.

    dW ~ U_r S_r V_r^T, B = U_r S_r / scale, A = V_r^T with scale = lora_alpha / rank (1 when alpha
    is None), as in FlexLoRA (Bai et al. 2024). Components without a singular value get a fresh A
    from `generator` and B = 0 (see _flex_factors).
    """
    u, s, vh = torch.linalg.svd(delta.to(torch.float64), full_matrices=False)
    scale = 1.0 if lora_alpha is None else float(lora_alpha) / rank
    return _flex_factors(u, s, vh, rank, scale, generator, dtype)


def lowrank_svd(b: torch.Tensor, a: torch.Tensor, scale: float = 1.0):
    """SVD of scale * B @ A without forming it: QR of B and A^T, SVD of the r x r core.

    Returns U (out x r), S (r,), Vh (r x in). For a weighted sum of several adapters pass the
    stacked factors (stack_lora): B_stack @ A_stack = sum_k w_k s_k B_k A_k, r = sum_k r_k.
    """
    b = b.to(torch.float64)
    a = a.to(torch.float64)
    qb, rb = torch.linalg.qr(b)
    qa, ra = torch.linalg.qr(a.T)
    uc, s, vhc = torch.linalg.svd(scale * (rb @ ra.T))
    return qb @ uc, s, vhc @ qa.T


def refactor_rank(state: dict, rank: int, lora_alpha: float | None = None,
                  generator: torch.Generator | None = None) -> dict:
    """FlexLoRA client split: each module's scale * B @ A re-factorized by SVD at `rank` (see svd_split).

    The SVD comes from QR of B and A^T and the SVD of the r x r core (no out x in matrix).
    """
    r_old = state_rank(state)
    out = {k: v for k, v in state.items() if not k.endswith((".lora_A", ".lora_B"))}
    s_old = 1.0 if lora_alpha is None else float(lora_alpha) / r_old
    s_new = 1.0 if lora_alpha is None else float(lora_alpha) / rank
    for m in lora_modules(state):
        a, b = state[f"{m}.lora_A"], state[f"{m}.lora_B"]
        u, s, vh = lowrank_svd(b, a, s_old)
        nb, na = _flex_factors(u, s, vh, rank, s_new, generator, a.dtype)
        out[f"{m}.lora_A"], out[f"{m}.lora_B"] = na, nb.to(b.dtype)
    return {k: out[k] for k in state}


def _weighted_sum_svd(updates: list[Update], m: str, w: torch.Tensor, lora_alpha: float | None, dense: bool):
    """Thin SVD (U, S, Vh) of module m's sum_k w_k scale_k B_k A_k (w normalized).

    The sum has rank <= R = sum_k r_k, so unless R reaches min(out, in) it comes from the stacked
    factors (lowrank_svd: QR of out x R and in x R, SVD of the R x R core) without forming the
    out x in matrix. `dense` forces the reference path: form the sum, full SVD.
    """
    As = [u.state[f"{m}.lora_A"] for u in updates]
    Bs = [u.state[f"{m}.lora_B"] for u in updates]
    if dense or sum(a.shape[0] for a in As) >= min(Bs[0].shape[0], As[0].shape[1]):
        delta = sum(wi * lora_product(u.state, m, lora_alpha) for wi, u in zip(w, updates))
        return torch.linalg.svd(delta, full_matrices=False)
    scales = [1.0 if lora_alpha is None else float(lora_alpha) / a.shape[0] for a in As]
    a_s, b_s = stack_lora(As, Bs, w, scales)
    return lowrank_svd(b_s, a_s)


def flexlora_aggregate(updates: list[Update], rank: int, lora_alpha: float | None = None,
                       generator: torch.Generator | None = None, dense: bool = False) -> dict:
    """FlexLoRA: sample-weighted sum of full updates scale_k B_k A_k per module, truncated SVD at `rank`.

    The result is an adapter of rank `rank` in the svd_split convention (fresh A where dW has no
    singular value); the head and other entries are sample-weighted means. The SVD is taken from
    the clients' factors (see _weighted_sum_svd); `dense=True` forms each out x in sum instead (the
    reference the tests and tools/bench_aggregate.py compare with: same result to rounding).
    """
    w = torch.as_tensor([float(u.weight) for u in updates], dtype=torch.float64)
    if w.sum() <= 0:
        raise ValueError("aggregation weights sum to zero")
    w = w / w.sum()
    first = updates[0].state
    scale = 1.0 if lora_alpha is None else float(lora_alpha) / rank
    out = {}
    for m in lora_modules(first):
        u, s, vh = _weighted_sum_svd(updates, m, w, lora_alpha, dense)
        b, a = _flex_factors(u, s, vh, rank, scale, generator, first[f"{m}.lora_A"].dtype)
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
