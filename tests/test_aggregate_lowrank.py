"""FlexLoRA aggregation through the clients' low-rank factors equals the dense-SVD reference."""
from __future__ import annotations

import pytest
import torch

import iovsim.fl.aggregate as agg
from iovsim.fl.aggregate import flexlora_aggregate, lora_product, refactor_rank
from iovsim.strategies.base import Update

# (out, in) per module; every client's ranks sum to less than min(out, in), so the low-rank path runs
SHAPES = {"l0.query": (40, 30), "l0.value": (30, 50), "l1.query": (36, 36)}
ALPHA = 16.0


def client(rank, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    s = {}
    for m, (o, i) in SHAPES.items():
        s[f"{m}.lora_A"] = torch.randn(rank, i, generator=g, dtype=torch.float64).to(dtype)
        s[f"{m}.lora_B"] = torch.randn(o, rank, generator=g, dtype=torch.float64).to(dtype)
    s["head.weight"] = torch.randn(3, 30, generator=g).to(dtype)
    s["head.bias"] = torch.randn(3, generator=g).to(dtype)
    return s


def rel(x, ref):
    return float(torch.linalg.norm(x.double() - ref.double()) / torch.linalg.norm(ref.double()))


def both(ups, rank, seed=5):
    lo = flexlora_aggregate(ups, rank, ALPHA, torch.Generator().manual_seed(seed))
    de = flexlora_aggregate(ups, rank, ALPHA, torch.Generator().manual_seed(seed), dense=True)
    return lo, de


@pytest.fixture
def lowrank_calls(monkeypatch):
    """Counts lowrank_svd calls, so a test knows the low-rank path (not the dense fallback) ran."""
    calls = []
    real = agg.lowrank_svd

    def spy(*a, **k):
        calls.append(a[0].shape)
        return real(*a, **k)

    monkeypatch.setattr(agg, "lowrank_svd", spy)
    return calls


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_lowrank_aggregate_equals_dense(dtype, tol, lowrank_calls):
    ranks, weights = [2, 5, 3, 7], [30.0, 12.0, 55.0, 8.0]
    ups = [Update(client(r, 10 + k, dtype), w, r) for k, (r, w) in enumerate(zip(ranks, weights))]
    for target in (4, 8, 12):
        lo, de = both(ups, target)
        assert list(lo) == list(de)
        for m in SHAPES:
            p_de = lora_product(de, m, ALPHA)
            assert rel(lora_product(lo, m, ALPHA), p_de) <= tol, (target, m)
            # signs are fixed the same way in both paths, so the factors agree too (distinct random spectra)
            assert rel(lo[f"{m}.lora_A"], de[f"{m}.lora_A"]) <= tol and rel(lo[f"{m}.lora_B"], de[f"{m}.lora_B"]) <= tol
            assert lo[f"{m}.lora_A"].dtype == dtype and lo[f"{m}.lora_B"].dtype == dtype
        for k in ("head.weight", "head.bias"):
            assert torch.equal(lo[k], de[k])
        # FlexLoRA hands every client the truncation of the global at its own rank
        for r in ranks:
            c_lo, c_de = refactor_rank(lo, r, ALPHA), refactor_rank(de, r, ALPHA)
            for m in SHAPES:
                assert rel(lora_product(c_lo, m, ALPHA), lora_product(c_de, m, ALPHA)) <= tol, (target, r, m)
    stacked = [c for c in lowrank_calls if c[1] == sum(ranks)]  # refactor_rank's own calls have width r
    assert len(stacked) == 3 * len(SHAPES) and stacked[0] == (40, sum(ranks))
    # the weighted sum itself at full rank: sum_k w_k (alpha / r_k) B_k A_k
    lo, _ = both(ups, sum(ranks))
    for m in SHAPES:
        want = sum((w / sum(weights)) * lora_product(u.state, m, ALPHA) for w, u in zip(weights, ups))
        assert rel(lora_product(lo, m, ALPHA), want) <= tol


def test_target_rank_above_sum_of_ranks_gets_the_same_fresh_rows(lowrank_calls):
    """R = 2 + 3 < 9: the live directions match and the other 4 get the same seeded fresh A, B = 0."""
    ups = [Update(client(2, 1, torch.float64), 3.0, 2), Update(client(3, 2, torch.float64), 1.0, 3)]
    lo, de = both(ups, 9, seed=7)
    assert lowrank_calls
    for m in SHAPES:
        assert rel(lora_product(lo, m, ALPHA), lora_product(de, m, ALPHA)) <= 1e-10
        assert torch.equal(lo[f"{m}.lora_A"][5:], de[f"{m}.lora_A"][5:])
        assert torch.count_nonzero(lo[f"{m}.lora_B"][:, 5:]) == 0
        assert torch.count_nonzero(lo[f"{m}.lora_B"][:, :5].norm(dim=0)) == 5
    # untrained updates (B = 0, the first round): every direction fresh, identically in both paths
    zero = [Update({k: torch.zeros_like(v) if k.endswith("lora_B") else v for k, v in u.state.items()},
                   u.weight, u.rank) for u in ups]
    lo, de = both(zero, 6, seed=3)
    for m in SHAPES:
        assert torch.equal(lo[f"{m}.lora_A"], de[f"{m}.lora_A"]) and torch.count_nonzero(lo[f"{m}.lora_B"]) == 0


def test_ranks_summing_past_the_width_take_the_dense_path(lowrank_calls):
    ups = [Update(client(r, 20 + r, torch.float64), 1.0, r) for r in (20, 25)]  # 45 >= min(out, in) everywhere
    lo, de = both(ups, 8)
    assert lowrank_calls == []
    for k in lo:
        assert torch.equal(lo[k], de[k])


def _orthonormal(n, k, seed):
    q, _ = torch.linalg.qr(torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_tied_singular_values_inside_the_kept_set():
    """Spectrum (3, 3, 2, 2, 1) spread over clients: truncations at 2 and 4 do not split a tie, so the
    product is unique and both paths give it (the factors inside a tie may differ by a rotation)."""
    o, i = SHAPES["l0.query"]
    u, v = _orthonormal(o, 5, 1), _orthonormal(i, 5, 2)
    sv = torch.tensor([3.0, 3.0, 2.0, 2.0, 1.0], dtype=torch.float64)
    parts = [[0, 2], [1, 4], [3]]  # the components each client holds
    ups = []
    for k, cols in enumerate(parts):
        r = len(cols)
        s = client(r, 40 + k, torch.float64)
        # weights equal, so w_k (alpha / r_k) B_k A_k = U_c S_c V_c^T needs B_k = K r_k / alpha U_c S_c
        s["l0.query.lora_B"] = u[:, cols] * sv[cols] * (len(parts) * r / ALPHA)
        s["l0.query.lora_A"] = v[:, cols].T
        ups.append(Update(s, 1.0, r))
    for target in (2, 4):
        lo, de = both(ups, target)
        want = u[:, :target] * sv[:target] @ v[:, :target].T
        for out in (lo, de):
            assert rel(lora_product(out, "l0.query", ALPHA), want) <= 1e-10
