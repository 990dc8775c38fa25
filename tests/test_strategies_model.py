"""The strategies' rank conventions against the real peft model (alpha / r scaling, merged deltas)."""
import numpy as np
import pytest

pytest.importorskip("peft")

from iovsim.fl.train import TrainJob  # noqa: E402
from iovsim.strategies import create  # noqa: E402
from iovsim.strategies.base import Update, state_rank  # noqa: E402

ALPHA = 16.0
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(real_model):
    return real_model


def train(ex, state, rank, seed, steps=4):
    job = TrainJob("v", 0, state, rank, steps, 8, 5e-3, 1e-2, np.arange(seed * 40, seed * 40 + 40), [seed, 1])
    return ex.train([job])[0]


def test_one_client_aggregate_reproduces_its_model(setup):
    """With one update, FLoRA (merged delta), FlexLoRA (SVD) and HetLoRA (padding) give the client's model."""
    model, ex, init = setup
    for name in ("flora", "flexlora", "hetlora"):
        s = create(name, {})
        s.setup(1, 0, lora_alpha=ALPHA)
        start = s.client_state(init, 4)
        res = train(ex, start, 4, seed=1)
        want = ex.evaluate(0, res.state, 4)
        glob = s.aggregate([Update(res.state, res.num_samples, 4, "v")], init)
        assert state_rank(glob) == 8
        got = ex.evaluate(0, glob, 8)
        assert got.loss == pytest.approx(want.loss, abs=1e-4), name
        # and the next round's rank-2 client of FLoRA starts from exactly that model (fresh B = 0)
        if name == "flora":
            assert ex.evaluate(0, s.client_state(glob, 2), 2).loss == pytest.approx(want.loss, abs=1e-4)
    # HetLoRA: truncating the padded global back to 4 is the client's model too
    s = create("hetlora", {})
    s.setup(1, 0)
    res = train(ex, s.client_state(init, 4), 4, seed=2)
    glob = s.aggregate([Update(res.state, res.num_samples, 4, "v")], init)
    back = s.client_state(glob, 4)
    assert ex.evaluate(0, back, 4).loss == pytest.approx(ex.evaluate(0, res.state, 4).loss, abs=1e-4)
