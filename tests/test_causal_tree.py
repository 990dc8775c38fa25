"""Likelihood scoring in tree rows (one forward per example) against one row per label word (K forwards).

A hand-built tree row (layout, segment ids, position ids, mask, head positions and answer runs checked
entry by entry), then the real SmolLM2 with non-zero LoRA factors on tweets (3 label words) and BBC
news (5): per example and label, the summed log-probabilities of the tree row equal the K rows' to
1e-4, and so do accuracy and loss, in both executors, their evaluation and their probes."""
import numpy as np
import pytest
import torch

from iovsim.fl.batched import BatchedExecutor
from iovsim.fl.families import tree_rows
from iovsim.fl.families.causal_task import answer_index, head_positions
from iovsim.fl.train import LocalExecutor, TrainJob

from conftest import tweets_slice

PAD = 0


def test_a_hand_built_tree_row():
    # prompt 10 11 12, words [20] and [21 22]: prefix 10 11, branches (12 20) and (12 21 22), 2 pads
    enc, labels = tree_rows.pack([[10, 11, 12]], [[20], [21, 22]], 9, PAD)
    assert enc["input_ids"][0].tolist() == [10, 11, 12, 20, 12, 21, 22, PAD, PAD]
    assert enc["attention_mask"][0].tolist() == [1, 1, 2, 2, 3, 3, 3, 0, 0]
    assert enc["lengths"].tolist() == [7] == [tree_rows.width(3, [[20], [21, 22]])]
    assert labels[0].tolist() == [-100, -100, -100, 20, -100, 21, 22, -100, -100]
    segs = enc["attention_mask"]
    # each branch restarts right after the prefix: 12 at 2 as in the prompt, then 3, 4
    assert tree_rows.position_ids(segs)[0].tolist() == [0, 1, 2, 3, 2, 3, 4, 0, 0]
    ok = tree_rows.allowed(segs)[0, 0].int()
    want = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0, 0],     # 10
                         [1, 1, 0, 0, 0, 0, 0, 0, 0],     # 11
                         [1, 1, 1, 0, 0, 0, 0, 0, 0],     # 12 (branch 0)
                         [1, 1, 1, 1, 0, 0, 0, 0, 0],     # 20
                         [1, 1, 0, 0, 1, 0, 0, 0, 0],     # 12 (branch 1): not branch 0
                         [1, 1, 0, 0, 1, 1, 0, 0, 0],     # 21
                         [1, 1, 0, 0, 1, 1, 1, 0, 0],     # 22
                         [1, 1, 0, 0, 0, 0, 0, 1, 0],     # pad: the prefix and itself
                         [1, 1, 0, 0, 0, 0, 0, 0, 1]])
    assert torch.equal(ok, want)
    add, _ = tree_rows.attention(segs, "eager", torch.float32)
    assert add.dtype == torch.float32 and torch.equal(add[0, 0] == 0, want.bool())
    assert float(add.min()) == torch.finfo(torch.float32).min
    # the head runs where the next token is labelled: 12 -> 20, 12 -> 21, 21 -> 22; answers 0, 1, 1
    pos = head_positions(labels)
    assert pos[0].nonzero()[:, 0].tolist() == [2, 4, 5]
    assert answer_index(pos).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="does not fit"):
        tree_rows.pack([[10, 11, 12]], [[20], [21, 22]], 6, PAD)


def test_answer_index_counts_runs_per_row():
    pos = torch.tensor([[0, 1, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    assert answer_index(pos).tolist() == [0, 0, 1, 0, 0, 0, 0]


def bbc_slice(n_test: int):
    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import load_task

    return load_task(TaskConfig(name="bbc", dataset="bbc_news", max_samples=24, test_samples=n_test), seed=0)


def lora_state(model, rank: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = model.init_state(rank, 0, g)
    for key in state:  # B != 0: the adapter changes every layer's output
        if key.endswith("lora_B"):
            state[key] = torch.randn(state[key].shape, generator=g) * 0.02
    return state


def scored(executor, task, layout: str, state, rank: int):
    """(result, the per-example per-label log-prob sums) of an evaluation in the given layout."""
    task.choice_layout = layout
    seen, score_set = [], task.score_set
    task.score_set = lambda *a: seen.append(score_set(*a)) or seen[-1]
    try:
        res = executor.evaluate(0, state, rank, batch_size=4)
    finally:
        del task.score_set
        task.choice_layout = "tree"
    return res, seen[0].scores.logp


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tweets", "bbc"])
def test_tree_rows_score_as_one_row_per_label(smollm2, which):
    data = tweets_slice(n_train=12, n_test=5) if which == "tweets" else bbc_slice(5)
    task = smollm2.make_task(data, 64 if which == "tweets" else 96)
    k = len(task.words)
    assert k == (3 if which == "tweets" else 5) and len(task.test_labels) == 5
    if which == "bbc":
        assert max(len(w) for w in task.words) > 1   # a word of several tokens: runs of more than one
    tree, _ = task._choices("test", np.arange(5)), None
    assert tree.enc["input_ids"].shape[0] == 5 and tree.enc["input_ids"].shape[1] == task.tree_width
    state = lora_state(smollm2, 8, seed=1)
    for ex in (BatchedExecutor(smollm2, [task]), LocalExecutor(smollm2, [task])):
        (a, a_logp), (b, b_logp) = scored(ex, task, "rows", state, 8), scored(ex, task, "tree", state, 8)
        assert not np.isnan(a_logp).any() and not np.isnan(b_logp).any() and a_logp.shape == (5, k)
        np.testing.assert_allclose(b_logp, a_logp, rtol=1e-4)
        assert b.accuracy == a.accuracy and b.num_examples == a.num_examples == 5
        assert b.loss == pytest.approx(a.loss, rel=1e-4)
    base = scored(LocalExecutor(smollm2, [task]), task, "tree", smollm2.init_state(8, 0, torch.Generator()), 8)[1]
    assert np.abs(base - b_logp).max() > 1e-3   # the adapter changed the scores: its path is in the tree pass


@pytest.mark.slow
def test_tree_rows_without_dynamic_padding_and_in_the_eager_kernel(smollm2):
    data = tweets_slice(n_train=12, n_test=4)
    fixed = smollm2.make_task(data, 64, dynamic_padding=False)
    state = lora_state(smollm2, 4, seed=2)
    ex = LocalExecutor(smollm2, [fixed])
    a, a_logp = scored(ex, fixed, "rows", state, 4)
    b, b_logp = scored(ex, fixed, "tree", state, 4)
    np.testing.assert_allclose(b_logp, a_logp, rtol=1e-4)
    impl = smollm2.config._attn_implementation
    smollm2.config._attn_implementation = "eager"   # the additive float mask
    try:
        c, c_logp = scored(BatchedExecutor(smollm2, [fixed]), fixed, "tree", state, 4)
    finally:
        smollm2.config._attn_implementation = impl
    np.testing.assert_allclose(c_logp, a_logp, rtol=1e-4)
    assert a.accuracy == b.accuracy == c.accuracy


@pytest.mark.slow
def test_probes_of_several_jobs_in_one_pass_score_as_one_row_per_label(smollm2):
    """Probes: the jobs' rows pooled in passes, each job's LoRA on its own segment (batched)."""
    task = smollm2.make_task(tweets_slice(n_train=40, n_test=2), 64)
    jobs = [TrainJob(f"v{j}", 0, lora_state(smollm2, r, seed=10 + j), r, 0, 4, 1e-3, 1e-3,
                     np.arange(j * 20, j * 20 + 20), [7, j]) for j, r in enumerate((4, 8))]
    for make in (BatchedExecutor, LocalExecutor):
        got = {}
        for layout in ("rows", "tree"):
            task.choice_layout = layout
            got[layout] = make(smollm2, [task]).train(jobs)
        task.choice_layout = "tree"
        for a, b in zip(got["rows"], got["tree"]):
            assert b.loss_before == pytest.approx(a.loss_before, rel=1e-4)
            assert b.acc_after == a.acc_after


def test_the_decoder_decides_the_layout(smollm2):
    """SmolLM2 (llama) scores in tree rows; a decoder outside causal_lm.TREE_MODEL_TYPES gets one row per
    label word, with no change to the rest of the task."""
    from iovsim.fl.families.causal_lm import TREE_MODEL_TYPES

    assert smollm2.base.config.model_type in TREE_MODEL_TYPES and smollm2.choice_layout == "tree"
    data = tweets_slice(n_train=12, n_test=4)
    assert smollm2.make_task(data, 64).choice_layout == "tree"
    smollm2.choice_layout = "rows"          # what an architecture outside the set gets
    try:
        task = smollm2.make_task(data, 64)
    finally:
        smollm2.choice_layout = "tree"
    assert task.choice_layout == "rows"
    assert task._choices("test", np.arange(4)).enc["input_ids"].shape[0] == 4 * len(task.words)
