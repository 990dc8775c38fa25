"""Forward-only passes cut by length (fl.train.length_passes): every row once, caps kept, little padding."""
import numpy as np
import pytest

from iovsim.fl.train import MIN_PASS_ROWS, PAD_SLACK, length_passes


def padded(widths, passes):
    return sum(len(p) * int(widths[p].max()) for p in passes)


@pytest.mark.parametrize("seed", range(5))
def test_passes_cover_every_row_once_and_keep_the_caps(seed):
    rng = np.random.default_rng(seed)
    widths = rng.integers(3, 65, size=int(rng.integers(1, 700)))
    passes = length_passes(widths, max_rows=128, max_tokens=4096)
    assert np.array_equal(np.sort(np.concatenate(passes)), np.arange(len(widths)))
    seen = np.concatenate([widths[p] for p in passes])
    assert np.all(seen[1:] >= seen[:-1])  # by width
    for p in passes:
        n, w = len(p), int(widths[p].max())
        assert n <= 128 and (n == 1 or n * w <= 4096)
        if n > MIN_PASS_ROWS:
            assert n * w <= (1 + PAD_SLACK) * widths[p].sum() + 1e-9
    # far less padding than fixed chunks of the length-sorted rows (the previous evaluation plan)
    order = np.argsort(widths, kind="stable")
    chunks = [order[s:s + 128] for s in range(0, len(order), 128)]
    assert padded(widths, passes) <= padded(widths, chunks)
    if len(widths) > 300:
        assert padded(widths, passes) <= 1.1 * widths.sum() < 0.95 * padded(widths, chunks)


def test_uniform_widths_and_edge_cases():
    # equal widths (e.g. no dynamic padding): cut only by the caps
    assert [len(p) for p in length_passes(np.full(100, 40), 64)] == [64, 36]
    assert [len(p) for p in length_passes(np.full(100, 40), 1000, max_tokens=1600)] == [40, 40, 20]
    assert length_passes(np.array([], dtype=int), 8) == []
    assert [p.tolist() for p in length_passes(np.array([500]), 8, max_tokens=100)] == [[0]]  # one row always fits
    # a few short rows then long ones: short rows stay together until MIN_PASS_ROWS, then cut by padding
    w = np.array([5] * 20 + [50] * 20)
    assert [len(p) for p in length_passes(w, 1000)] == [20, 20]
