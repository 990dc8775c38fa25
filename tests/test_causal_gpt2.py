"""GPT-2's Conv1D layers (weights stored in x out) under LoRA, through a local folder (safetensors only).

No pretrained GPT-2 is available offline, so the model here is a 2-layer GPT-2 with random weights,
saved to a folder with SmolLM2's tokenizer (its chat template removed, so the Alpaca layout is used):
it checks the mechanics (targets, dims, the transposed delta, both executors), not what it learns."""
import numpy as np
import pytest
import torch

from iovsim.fl.batched import BatchedExecutor
from iovsim.fl.families import detect_family, load_model
from iovsim.fl.train import LocalExecutor, TrainJob

from conftest import tweets_slice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gpt2_folder(smollm2, tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tok = smollm2.tokenizer
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=len(tok),
                               eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)).save_pretrained(folder)
    template, tok.chat_template = tok.chat_template, None
    try:
        tok.save_pretrained(folder)
    finally:
        tok.chat_template = template
    (folder / "pytorch_model.bin").write_bytes(b"not read: use_safetensors=True refuses pickle checkpoints")
    return folder


def test_gpt2_conv1d_targets_dims_and_both_executors(gpt2_folder, smollm2):
    assert detect_family(str(gpt2_folder)) == "causal_lm"
    m = load_model(str(gpt2_folder), [], 16.0)
    assert m.target_modules == ["c_attn", "c_proj", "c_fc"] and len(m.module_names) == 2 * 4  # c_proj: attn and mlp
    assert sorted(m.layer0_dims()) == sorted([(64, 192), (64, 64), (64, 256), (256, 64)])
    assert m.max_rank() == (64, "transformer.h.0.attn.c_attn (64 x 192)")
    task = m.make_task(tweets_slice(n_train=20, n_test=3), 48)
    text = m.tokenizer.decode(task.train["input_ids"][0, :int(task.train["lengths"][0])])
    assert text.startswith("### Instruction:\nClassify the sentiment of the tweet.") and "\n\n### Response:\n" in text
    g = torch.Generator().manual_seed(1)
    state = m.init_state(4, 0, g)
    for k in state:
        if k.endswith("lora_B"):
            state[k] = torch.randn(state[k].shape, generator=g) * 0.05
    state["transformer.h.1.mlp.c_fc.delta"] = torch.randn(256, 64, generator=g) * 0.05  # out x in
    job = TrainJob("v", 0, state, 4, 2, 4, 1e-3, 1e-3, np.arange(20), [3])
    s, b = LocalExecutor(m, [task]).train([job])[0], BatchedExecutor(m, [task]).train([job])[0]
    # the sequential executor merges the delta into the (transposed) Conv1D weight, the batched one adds
    # x delta^T in its hook: equal losses mean the transpose is right
    assert b.loss_before == pytest.approx(s.loss_before, rel=1e-5) and b.loss_after == pytest.approx(s.loss_after, rel=1e-4)
    for k in state:
        torch.testing.assert_close(b.state[k], s.state[k], atol=1e-5, rtol=1e-4)
    assert not torch.equal(b.state["transformer.h.0.attn.c_attn.lora_B"], state["transformer.h.0.attn.c_attn.lora_B"])
