"""The causal LM family on the real SmolLM2-135M-Instruct: shape, prompts, scoring by hand, both executors."""
import dataclasses

import numpy as np
import pytest
import torch

from iovsim.fl.batched import BatchedExecutor
from iovsim.fl.data import TaskData
from iovsim.fl.train import LocalExecutor, TrainJob

from conftest import tweets_slice

pytestmark = pytest.mark.slow
WORDS = ["negative", "neutral", "positive"]


def three_tweets() -> TaskData:
    """Three hand-picked examples, one per label; the third text is long enough to be cut at 48 tokens."""
    texts = ["I hate waiting two hours for a delayed flight.", "The flight leaves at 9am from gate 4.",
             "Great crew and a smooth landing, thank you! " + "Really lovely service all the way. " * 6]
    return TaskData("tw", WORDS, texts, np.array([0, 1, 2]), texts, np.array([0, 1, 2]), "hand", "tweet_sentiment")


def test_smollm2_is_the_gguf_llama_with_peft_targets(smollm2):
    m = smollm2
    c = m.config
    assert m.family == "causal_lm" and c.model_type == "llama" and m.base.dtype == torch.float32  # dequantized
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
            c.num_key_value_heads, c.vocab_size) == (576, 1536, 30, 9, 3, 49152)
    assert m.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert len(m.module_names) == 7 * 30 and not any("lm_head" in n for n in m.module_names)
    assert m.max_rank() == (192, "model.layers.0.self_attn.k_proj (576 x 192)")  # 3 KV heads x 64
    # one layer: q, o 576x576; k, v 576x192 (GQA); gate, up 576x1536; down 1536x576
    assert sorted(m.layer0_dims()) == sorted([(576, 576), (576, 192), (576, 192), (576, 576),
                                              (576, 1536), (576, 1536), (1536, 576)])
    state = m.init_state(16, 0, torch.Generator().manual_seed(0))
    n = sum(v.numel() for v in state.values())
    assert n == 30 * 16 * (1152 + 768 + 768 + 1152 + 2112 + 2112 + 2112) == 305_280 * 16  # 4.88M: 19.5 MB fp32
    assert set(state) == {f"{k}.lora_{ab}" for k in m.module_names for ab in "AB"}  # no head: the LM answers


def test_prompt_rows_train_on_the_answer_only_and_cut_the_text_alone(smollm2):
    tok = smollm2.tokenizer
    task = smollm2.make_task(three_tweets(), 48)
    assert task.dropped == (0, 0)
    for i, word in enumerate(WORDS):
        n = int(task.train["lengths"][i])
        ids, labels = task.train["input_ids"][i, :n], task.train_labels[i, :n]
        text = tok.decode(ids)
        assert text.startswith("<|im_start|>system\nClassify the sentiment of the tweet. Answer with one word: "
                               "negative, neutral or positive.<|im_end|>\n<|im_start|>user\n")
        assert text.endswith(f"<|im_end|>\n<|im_start|>assistant\n{word}<|im_end|>")
        assert tok.decode(labels[labels != -100]) == f"{word}<|im_end|>"   # the answer and its end, nothing else
        assert (labels[:n - 2] == -100).all() and n <= 48
    assert int(task.train["lengths"][2]) == 48 and "Really lovely" in tok.decode(task.train["input_ids"][2])
    # too short for the template and the answer: the examples are left out, never their answer cut
    tiny = smollm2.make_task(three_tweets(), 30)
    assert tiny.dropped == (3, 3) and len(tiny.data.train_text) == 0


def hand_choices(model, data: TaskData, task) -> tuple[float, float]:
    """Likelihood choice by hand: the HF model's own logits for prompt + each word, summed log-probs."""
    tok = model.tokenizer
    correct, losses = 0, []
    with model.bare() as base, torch.no_grad():
        for i, gold in enumerate(data.test_labels):
            n = int(task.test["lengths"][i])
            prompt = task.test["input_ids"][i, :n][task.test_labels[i, :n] == -100].tolist()
            sums = []
            for word in WORDS:
                w = tok(word, add_special_tokens=False)["input_ids"]
                logp = torch.log_softmax(base(torch.tensor([prompt + w])).logits[0].double(), -1)
                sums.append(sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(w)))
            correct += int(np.argmax(sums) == gold)
            losses.append(-(sums[gold] - float(torch.logsumexp(torch.tensor(sums), 0))))
    return correct / len(data.test_labels), float(np.mean(losses))


def test_likelihood_accuracy_is_the_label_word_chosen_by_hand(smollm2):
    data = three_tweets()
    task = smollm2.make_task(data, 48)
    state = smollm2.init_state(4, 3, torch.Generator().manual_seed(0))  # B = 0: the base model itself
    acc, loss = hand_choices(smollm2, data, task)
    for ex in (BatchedExecutor(smollm2, [task]), LocalExecutor(smollm2, [task])):
        got = ex.evaluate(0, state, 4, batch_size=4)
        assert got.num_examples == 3 and got.accuracy == acc and got.loss == pytest.approx(loss, rel=1e-4)


def test_generate_scoring_is_greedy_decoding_with_exact_match(smollm2):
    from iovsim.fl.families.causal_task import CausalTask

    data = tweets_slice(n_train=10, n_test=6)
    task = CausalTask(smollm2, data, 64, causal_eval="generate")
    state = smollm2.init_state(4, 3, torch.Generator().manual_seed(0))
    got = BatchedExecutor(smollm2, [task]).evaluate(0, state, 4, batch_size=8)
    tok, hits = smollm2.tokenizer, 0
    with smollm2.bare() as base, torch.no_grad():
        for i, gold in enumerate(task.data.test_labels):
            n = int(task.test["lengths"][i])
            prompt = task.test["input_ids"][i, :n][task.test_labels[i, :n] == -100]
            out = base.generate(prompt[None], attention_mask=torch.ones_like(prompt)[None], do_sample=False,
                                max_new_tokens=6, pad_token_id=tok.pad_token_id)
            said = tok.decode(out[0, len(prompt):])
            hits += int(said.startswith(WORDS[gold] + "<|im_end|>"))
    assert got.accuracy == hits / len(task.data.test_labels)


def jobs_for(model, n_rows=(12, 10)):
    g = torch.Generator().manual_seed(0)
    jobs = []
    for k, (rank, steps, n) in enumerate(zip((4, 8), (2, 1), n_rows)):
        init = model.init_state(rank, 3, g)
        for key in init:  # non-zero B so that A gets gradients from the first step
            if key.endswith("lora_B"):
                init[key] = torch.randn(init[key].shape, generator=g) * 0.01
        if k == 1:
            init["model.layers.3.self_attn.v_proj.delta"] = torch.randn(192, 576, generator=g) * 0.01
        jobs.append(TrainJob(f"v{k}", 0, init, rank, steps, 2, 2e-3, 1e-2, np.arange(k * 12, k * 12 + n), [5, k]))
    return jobs


def test_batched_equals_sequential_job_by_job(smollm2):
    """Same jobs, both executors: the same losses to rounding, the same update to rounding. Through 30 layers
    a few gradients near zero round to opposite signs, and Adam's first steps move such an element by
    ~lr either way: so the whole update is compared (relative norm), and its elements but for a few."""
    task = smollm2.make_task(tweets_slice(n_train=30, n_test=3), 40)
    jobs = jobs_for(smollm2)
    seq = LocalExecutor(smollm2, [task]).train(jobs)
    bat = BatchedExecutor(smollm2, [task]).train(jobs)
    for job, s, b in zip(jobs, seq, bat):
        assert b.state.keys() == s.state.keys() == job.state.keys() and b.rank == s.rank == job.rank
        keys = list(job.state)
        upd_s = torch.cat([(s.state[k] - job.state[k]).flatten() for k in keys])
        upd_b = torch.cat([(b.state[k] - job.state[k]).flatten() for k in keys])
        assert float(upd_s.norm()) > 0.1  # trained
        assert float((upd_b - upd_s).norm() / upd_s.norm()) < 1e-2, job.vehicle_id
        assert float(((upd_b - upd_s).abs() > 1e-4).float().mean()) < 1e-4, job.vehicle_id
        assert b.loss_before == pytest.approx(s.loss_before, rel=1e-5)
        assert b.loss_after == pytest.approx(s.loss_after, rel=1e-4)
        assert b.acc_after == s.acc_after


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_batched_causal_lm_on_cuda_fp32_and_bf16_is_close_to_cpu(smollm2):
    from iovsim.fl.families import load_model

    gpu = load_model("smollm2", [], 16.0, device="cuda")
    task = smollm2.make_task(tweets_slice(n_train=30, n_test=3), 40)
    jobs = jobs_for(smollm2)
    want = BatchedExecutor(smollm2, [task]).train(jobs)
    for precision, rel, cos in (("fp32", 1e-3, 0.99), ("bf16", 3e-2, 0.9)):
        got = BatchedExecutor(gpu, [task], precision=precision).train(jobs)
        for job, c, g in zip(jobs, want, got):
            assert g.loss_before == pytest.approx(c.loss_before, rel=rel)
            upd_c = torch.cat([(c.state[k] - job.state[k]).flatten() for k in job.state])
            upd_g = torch.cat([(g.state[k] - job.state[k]).flatten() for k in job.state])
            assert float(torch.nn.functional.cosine_similarity(upd_c, upd_g, dim=0)) > cos, precision


def test_the_cost_shape_charges_the_lm_head_where_the_family_runs_it(smollm2):
    """The LM head runs at the answer positions alone (a label word and its end token here) in the
    family's own pass, and the cost shape charges exactly those: 2 a row, not the 48 of the row."""
    from iovsim.costs import flops, memory

    task = smollm2.make_task(three_tweets(), 48)
    tok = smollm2.tokenizer
    assert [len(tok(w, add_special_tokens=False)["input_ids"]) for w in WORDS] == [1, 1, 1]
    batch, y = task.batch(task.train, task.train_labels, [0, 1, 2], "cpu")
    with torch.no_grad():
        out = smollm2.outputs(None, smollm2.features(batch), y)
    assert tuple(out.logits.shape) == (3 * 2, 49152)              # the family's logits: 6 positions
    shape = smollm2.shape(48, 3, 3, task=task)
    assert shape.lm_head_tokens == 2.0 and shape.lm_head_size == 49152
    assert flops.flops_per_step(shape, 8) - flops.flops_per_step(dataclasses.replace(shape, lm_head_size=0), 8) \
        == 3 * 2 * 4 * 576 * 49152
    assert memory.logits_bytes(shape) == 2 * 4 * 3 * 2 * 49152
    with pytest.raises(ValueError, match="needs its task"):
        smollm2.shape(48, 3, 3)
