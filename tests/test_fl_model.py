"""The real model: LoRA state round trips, merged deltas, local training, evaluation, determinism."""
import numpy as np
import pytest
import torch

from iovsim.fl.aggregate import fedavg
from iovsim.fl.config import TaskConfig
from iovsim.fl.data import load_task
from iovsim.fl.model import AdapterModel
from iovsim.fl.train import LocalExecutor, TokenizedTask, TrainJob
from iovsim.strategies.base import Update, fit_rank, state_rank


@pytest.fixture(scope="module")
def setup():
    model = AdapterModel("minilm", ["query", "value"], 16.0)
    data = load_task(TaskConfig(name="bbc", dataset="bbc_news", max_samples=300, test_samples=60), seed=0)
    ex = LocalExecutor(model, [TokenizedTask(model, data, 48)])
    init = model.init_state(4, data.num_classes, torch.Generator().manual_seed(0))
    return model, data, ex, init


def job(init, rows, seed, steps=4):
    return TrainJob("v", 0, init, 4, steps, 8, 2e-3, 1e-2, rows, seed)


def test_state_names_and_shapes(setup):
    model, data, ex, init = setup
    a = [k for k in init if k.endswith(".lora_A")]
    assert len(a) == 12 and "encoder.layer.0.attention.self.query.lora_A" in init
    assert init["encoder.layer.0.attention.self.query.lora_A"].shape == (4, 384)
    assert init["encoder.layer.0.attention.self.value.lora_B"].shape == (384, 4)
    assert init["head.weight"].shape == (5, 384)
    head, params = model.load(init, 4)
    out = model.export(4, head)
    assert out.keys() == init.keys() and all(torch.equal(out[k], init[k]) for k in init)


def test_training_lowers_local_loss_and_is_deterministic(setup):
    model, data, ex, init = setup
    rows = np.arange(0, 120)
    r1, r2 = ex.train([job(init, rows, [1, 2], steps=6), job(init, rows, [1, 2], steps=6)])
    assert r1.loss_after < r1.loss_before
    assert all(torch.equal(r1.state[k], r2.state[k]) for k in r1.state)
    moved = [k for k in init if not torch.equal(init[k], r1.state[k])]
    assert any(k.endswith("lora_B") for k in moved) and "head.weight" in moved


def test_fedavg_then_evaluate_beats_chance(setup):
    model, data, ex, init = setup
    state = init
    for rnd in range(3):
        res = ex.train([job(state, np.arange(k * 60, k * 60 + 60), [rnd, k], steps=5) for k in range(4)])
        state = fedavg([Update(r.state, r.num_samples, r.rank) for r in res]).state
    ev = ex.evaluate(0, state, state_rank(state))
    assert ev.num_examples >= 55 and ev.accuracy > 0.4  # chance is 0.2 on 5 topics


def test_delta_is_merged_and_removed(setup):
    model, data, ex, init = setup
    base = ex.evaluate(0, init, 4)
    with_delta = dict(init)
    with_delta["encoder.layer.0.attention.self.query.delta"] = torch.randn(384, 384) * 0.5
    changed = ex.evaluate(0, with_delta, 4)
    assert changed.loss != pytest.approx(base.loss, abs=1e-6)
    assert ex.evaluate(0, init, 4).loss == pytest.approx(base.loss, abs=1e-6)


def test_fit_rank_truncates_and_pads(setup):
    _, _, _, init = setup
    small = fit_rank(init, 2)
    assert state_rank(small) == 2
    big = fit_rank(small, 4)
    k = "encoder.layer.0.attention.self.query.lora_A"
    assert torch.equal(big[k][:2], init[k][:2]) and torch.count_nonzero(big[k][2:]) == 0
