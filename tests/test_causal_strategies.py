"""Every registered strategy on a real causal LM: one round of real training and aggregation on SmolLM2's
peft-named targets (HetLoRA zero padding, FlexLoRA / UCB-DUAL SVD, FLoRA stacking), and one whole run of
the shipped LLM config, shrunk."""
from pathlib import Path

import numpy as np
import pytest
import torch

from iovsim.engine.aggregation import aggregate_task, vehicle_update
from iovsim.fl.aggregate import lora_modules
from iovsim.fl.batched import BatchedExecutor
from iovsim.fl.train import TrainJob
from iovsim.strategies import create, names
from iovsim.strategies.base import state_rank

from conftest import REPO, csv_rows, tweets_slice
from test_strategies import PARAMS
from test_strategies_train import ALPHA, effective_update, state_of

pytestmark = pytest.mark.slow
ROWS_PER_VEHICLE = 10


@pytest.fixture(scope="module")
def llm_round(smollm2):
    """SmolLM2 on 20 tweets as prompts of at most 40 tokens, the batched executor, a rank-8 start."""
    task = smollm2.make_task(tweets_slice(n_train=2 * ROWS_PER_VEHICLE, n_test=3), 40)
    return BatchedExecutor(smollm2, [task]), smollm2.init_state(8, 0, torch.Generator().manual_seed(0))


def one_round(strategy, ex, glob: dict) -> tuple[dict, list]:
    """configure -> client_state -> 2 steps of real training (batch 2) -> RSU then cloud aggregation."""
    st = state_of(0, n=2, max_participants=2)
    plan = strategy.configure(st)
    jobs = []
    for k, i in enumerate(plan.participants):
        opts = dict(plan.train_options[k]) if plan.train_options else {}
        rows = np.arange(ROWS_PER_VEHICLE * i, ROWS_PER_VEHICLE * (i + 1))
        jobs.append(TrainJob(st.vehicle_ids[i], 0, strategy.client_state(glob, int(plan.rank[k])), int(plan.rank[k]),
                             2, 2, 5e-3, 1e-2, rows, [0, int(i)], opts))
    results = ex.train(jobs)
    return aggregate_task(strategy, glob, {0: [vehicle_update(r) for r in results]}), results


@pytest.mark.parametrize("name", names())
def test_one_real_round_moves_the_causal_lm_adapter(llm_round, name):
    ex, init = llm_round
    s = create(name, PARAMS.get(name, {}))
    s.setup(1, 0, ALPHA)
    new, results = one_round(s, ex, init)
    assert len(results) == 2 and all(np.isfinite(r.loss_after) for r in results)
    assert lora_modules(new) == lora_modules(init) and len(lora_modules(new)) == 210  # the peft-named targets
    for m in lora_modules(init):
        assert float(torch.linalg.norm(effective_update(new, m))) > 1e-6, (name, m)
    r = state_rank(new)
    for key in [k for k in init if k.endswith(".lora_A")]:
        assert not torch.allclose(new[key], init[key][:r]), (name, key)
    for key in [k for k in init if k.endswith(".lora_B")]:
        if name == "flora":  # the stacked product is merged into `.delta`; B starts at zero again
            assert torch.count_nonzero(new[key]) == 0 and f"{key[:-len('.lora_B')]}.delta" in new
        else:
            assert torch.count_nonzero(new[key]) > 0, (name, key)


def test_the_shipped_llm_config_runs_a_round(smollm2, tmp_path):
    """sumo_scenarios/llm_default.yaml, shrunk to 2 vehicles, 1 round and tiny tasks: real SUMO, real SmolLM2."""
    from iovsim.config import load_config
    from iovsim.experiment import Experiment

    over = {"fl.rounds": 1, "mobility.fl_vehicles": 2, "fl.participants_per_round": 2, "fl.local_steps": 1,
            "fl.batch_size": 2, "fl.samples_per_vehicle": 10, "mobility.end_s": 600,
            "fl.tasks[0].max_samples": 30, "fl.tasks[0].test_samples": 10, "fl.tasks[0].max_length": 48,
            "fl.tasks[1].max_samples": 30, "fl.tasks[1].test_samples": 10, "fl.tasks[1].max_length": 64}
    cfg = load_config(REPO / "sumo_scenarios" / "llm_default.yaml", over)
    Experiment(cfg, tmp_path / "run", model=smollm2).run()
    rows = csv_rows(tmp_path / "run" / "metrics.csv")
    assert [r["task"] for r in rows] == ["tweet_sentiment", "bbc_news"]
    for r in rows:  # likelihood accuracy over 10 prompts: a multiple of 1/10
        assert float(r["accuracy"]) * 10 == pytest.approx(round(float(r["accuracy"]) * 10))
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "q_proj" in saved and "down_proj" in saved  # the family's default targets, recorded
    assert Path(tmp_path / "run" / "vehicles.csv").exists()
