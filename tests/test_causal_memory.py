"""The causal LM's memory: one copy of the frozen weights per process, never written; passes sized by
the activations they keep (tools/results/bench_memory.md measures the runs)."""
import numpy as np
import pytest
import torch

from iovsim.config import FlConfig
from iovsim.fl.executors import activation_bytes_per_token, make_executor
from iovsim.fl.families import causal_load

from conftest import tweets_slice

pytestmark = pytest.mark.slow


def weights(model) -> dict:
    return {n: p for n, p in model.named_parameters(remove_duplicate=False)}


def test_every_copy_shares_the_loaded_weights():
    # two fresh copies (the session's `smollm2` fixture may carry other tests' adapters by now)
    _, one = causal_load.load_causal("smollm2")
    _, other = causal_load.load_causal("smollm2")
    mine, theirs = weights(one), weights(other)
    assert mine.keys() == theirs.keys() and len(mine) == 273  # 272 tensors, the output layer tied to the embedding
    for name, p in mine.items():
        assert p.data_ptr() == theirs[name].data_ptr() and p is not theirs[name], name
    assert other.lm_head.weight is other.model.embed_tokens.weight  # still tied
    flags = [p.requires_grad for p in one.parameters()]
    other.requires_grad_(not flags[0])  # a copy's own Parameter objects: the other copy's flags stay
    assert [p.requires_grad for p in one.parameters()] == flags


def test_a_merged_delta_is_a_new_tensor_and_the_original_comes_back(smollm2):
    name = "model.layers.3.self_attn.v_proj"
    _, other = causal_load.load_causal("smollm2")
    shared = dict(other.named_modules())[name].weight
    before = shared.detach().clone()
    g = torch.Generator().manual_seed(1)
    state = smollm2.init_state(4, 0, g)
    state[f"{name}.delta"] = torch.randn(192, 576, generator=g) * 0.01
    smollm2.load(state, 4)                                   # the sequential executor merges the delta
    layer = smollm2.target_linears()[name]
    assert layer.weight.data_ptr() != shared.data_ptr()
    assert torch.equal(layer.weight.detach(), before + state[f"{name}.delta"])
    assert torch.equal(shared.detach(), before)              # the shared original is not written
    with smollm2.bare():
        assert layer.weight.data_ptr() == shared.data_ptr()  # the original itself is back


def test_passes_hold_about_one_job_of_the_llm_config(smollm2, real_model):
    minilm = real_model[0]
    task = smollm2.make_task(tweets_slice(n_train=8, n_test=2), 64)
    per_token = activation_bytes_per_token(smollm2, [task])
    assert per_token == 30 * 4 * (2 * 576 + (576 + 2 * 576 + 2 * 192) + (576 + 2 * 1536 + 1536) + 9)
    assert make_executor(FlConfig(threads=1), smollm2, [task]).max_tokens == 396
    minilm_task = minilm.make_task(tweets_slice(n_train=8, n_test=2), 64)
    assert make_executor(FlConfig(threads=1), minilm, [minilm_task]).max_tokens == 2048  # MiniLM: unchanged
    assert np.isfinite(per_token)
