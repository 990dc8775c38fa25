"""The batched executor against the sequential reference: same seeds, same results, job by job."""
import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from iovsim.fl.aggregate import fedavg  # noqa: E402
from iovsim.fl.batched import BatchedExecutor  # noqa: E402
from iovsim.fl.config import FlConfig, TaskConfig  # noqa: E402
from iovsim.fl.data import load_task  # noqa: E402
from iovsim.fl.executors import make_executor, native_bf16  # noqa: E402
from iovsim.fl.model import AdapterModel  # noqa: E402
from iovsim.fl.train import LocalExecutor, TokenizedTask, TrainJob, probe_size, split_probe  # noqa: E402
from iovsim.strategies.base import Update, state_rank  # noqa: E402

pytestmark = pytest.mark.slow
DELTA_KEY = "encoder.layer.1.attention.self.value.delta"


@pytest.fixture(scope="module")
def setup():
    try:
        model = AdapterModel("minilm", ["query", "value"], 16.0)
        tweets = load_task(TaskConfig(name="tw", dataset="tweet_sentiment", max_samples=300, test_samples=60), seed=0)
        bbc = load_task(TaskConfig(name="bbc", dataset="bbc_news", max_samples=200, test_samples=60), seed=0)
    except Exception as e:  # the offline model/data packages are not installed
        pytest.skip(f"model or data unavailable: {e}")
    tasks = [TokenizedTask(model, tweets, 32), TokenizedTask(model, bbc, 48)]
    return model, tasks


def mixed_jobs(model):
    """Two tasks (3 and 5 classes, 32 and 48 tokens), ranks 2/4/8, 0-4 steps, a pruning job, a merged delta."""
    g = torch.Generator().manual_seed(0)
    jobs = []
    for k, (task, rank, steps, n) in enumerate([(0, 4, 3, 60), (1, 8, 2, 40), (0, 2, 1, 30), (1, 4, 4, 50), (0, 8, 0, 40)]):
        init = model.init_state(rank, [3, 5][task], g)
        for key in init:  # non-zero B so that A gets gradients from the first step
            if key.endswith("lora_B"):
                init[key] = torch.randn(init[key].shape, generator=g) * 0.01
        if k == 3:
            init[DELTA_KEY] = torch.randn(384, 384, generator=g) * 0.01
        opts = {"prune_lambda": 0.1, "prune_keep": rank // 2} if k == 1 else {}
        jobs.append(TrainJob(f"v{k}", task, init, rank, steps, 8, 2e-3, 1e-2, np.arange(k * 30, k * 30 + n), [5, k], opts))
    return jobs


def test_batched_equals_sequential_job_by_job(setup):
    model, tasks = setup
    jobs = mixed_jobs(model)
    done = []
    seq = LocalExecutor(model, tasks).train(jobs)
    bat = BatchedExecutor(model, tasks).train(jobs, on_done=lambda j: done.append(j.vehicle_id))
    assert sorted(done) == sorted(j.vehicle_id for j in jobs)
    for job, s, b in zip(jobs, seq, bat):
        assert b.vehicle_id == job.vehicle_id and b.rank == s.rank == job.rank and b.num_samples == s.num_samples
        assert b.state.keys() == s.state.keys() and torch.equal(b.state.get(DELTA_KEY, torch.zeros(1)),
                                                                 s.state.get(DELTA_KEY, torch.zeros(1)))
        for key in s.state:
            assert b.state[key].shape == s.state[key].shape
            torch.testing.assert_close(b.state[key], s.state[key], atol=1e-4, rtol=1e-3, msg=f"{job.vehicle_id} {key}")
        assert b.loss_before == pytest.approx(s.loss_before, rel=1e-4)
        assert b.loss_after == pytest.approx(s.loss_after, rel=1e-4)
        # probe accuracy after training: a fraction of the probe rows, the same in both executors
        n_probe = len(split_probe(job)[2])
        assert 0.0 <= s.acc_after <= 1.0 and round(s.acc_after * n_probe, 9).is_integer()
        assert b.acc_after == s.acc_after, job.vehicle_id
        moved = max(float((b.state[k] - job.state[k]).abs().max()) for k in job.state)
        assert (moved > 1e-3) == (job.steps > 0), job.vehicle_id
    # no peft adapter was created by the batched executor: one base model whatever the jobs
    ex_model = AdapterModel("minilm", ["query", "value"], 16.0)
    BatchedExecutor(ex_model, tasks).train(mixed_jobs(ex_model)[:3])
    assert ex_model.peft is None


def test_fused_lora_add_equals_the_separate_add(setup):
    """The fp32 hook adds B (A x) * alpha / r inside its second matmul (baddbmm / addmm); the previous
    order (bmm, bmm, * scale, out + y) is the reference. Ranks 2/4/8 at alpha 16 (scales 8/4/2),
    unequal segments (addmm per segment), a delta job (the reference path itself), and equal
    segments (one baddbmm): the same trained states, probe scores and test scores."""
    model, tasks = setup
    g = torch.Generator().manual_seed(1)
    init = model.init_state(4, 3, g)
    init = {k: torch.randn(v.shape, generator=g) * 0.05 if k.endswith("lora_B") else v for k, v in init.items()}
    same_size = [TrainJob(f"e{k}", 0, init, 4, 2, 8, 2e-3, 1e-2, np.arange(k * 40, k * 40 + 40), [7, k])
                 for k in range(3)]
    for jobs in (mixed_jobs(model), same_size):
        fused = BatchedExecutor(model, tasks).train(jobs)
        apart = BatchedExecutor(model, tasks, fused_lora=False).train(jobs)
        for f, a in zip(fused, apart):
            for key in a.state:
                torch.testing.assert_close(f.state[key], a.state[key], atol=1e-6, rtol=1e-5, msg=f"{f.vehicle_id} {key}")
            assert (f.loss_before, f.loss_after) == pytest.approx((a.loss_before, a.loss_after), rel=1e-6)
            assert f.acc_after == a.acc_after
    fused = BatchedExecutor(model, tasks).evaluate(0, init, 4, 16)
    apart = BatchedExecutor(model, tasks, fused_lora=False).evaluate(0, init, 4, 16)
    assert fused.accuracy == apart.accuracy and fused.loss == pytest.approx(apart.loss, rel=1e-6)


def test_probe_is_held_out_deterministic_and_in_eval_mode(setup):
    model, tasks = setup
    job = mixed_jobs(model)[0]
    _, train_a, probe_a = split_probe(job)
    _, train_b, probe_b = split_probe(job)
    assert np.array_equal(probe_a, probe_b) and np.array_equal(train_a, train_b)
    assert len(np.intersect1d(train_a, probe_a)) == 0 and len(train_a) + len(probe_a) == len(job.indices)
    assert probe_size(150, 16) == 16 and probe_size(1000, 16) == 100 and probe_size(10, 16) == 5
    # loss_before = the eval-mode cross entropy of the start state on exactly those rows
    task = tasks[job.task]
    head, _ = model.load(job.state, job.rank)
    model.peft.eval()
    with torch.no_grad():
        x, y = task.batch(task.train, task.train_labels, probe_a, model.device)
        want = float(torch.nn.functional.cross_entropy(head(model.encode(x)), y))
    got = BatchedExecutor(model, tasks).train([job])[0]
    assert got.loss_before == pytest.approx(want, rel=1e-5)
    # acc_after = the eval-mode accuracy of the trained state on the same rows
    head, _ = model.load(got.state, got.rank)
    model.peft.eval()
    with torch.no_grad():
        acc = float((head(model.encode(x)).argmax(-1) == y).float().mean())
    assert got.acc_after == pytest.approx(acc, abs=1e-9)


def test_evaluate_agrees_with_sequential(setup):
    model, tasks = setup
    job = mixed_jobs(model)[3]  # carries a merged delta
    s = LocalExecutor(model, tasks).evaluate(1, job.state, job.rank, 16)
    b = BatchedExecutor(model, tasks).evaluate(1, job.state, job.rank, 16)
    assert b.num_examples == s.num_examples == len(tasks[1].test_labels)
    assert b.accuracy == s.accuracy and b.loss == pytest.approx(s.loss, rel=1e-5)


def test_tokenization_is_cached_per_process(setup):
    model, tasks = setup
    again = TokenizedTask(model, tasks[0].data, 32)
    assert again.train["input_ids"] is tasks[0].train["input_ids"]


def test_forward_only_passes_are_cut_by_length_and_score_like_row_by_row(setup, monkeypatch):
    """Probe and evaluation passes pad little (length_passes) and score as each row alone would."""
    model, tasks = setup
    tasks = [TokenizedTask(model, tasks[0].data, 64), tasks[1]]  # tweets: ~30 of 64 tokens on average
    task, job = tasks[0], mixed_jobs(model)[0]
    passes = []
    real_pooled = BatchedExecutor._pooled
    monkeypatch.setattr(BatchedExecutor, "_pooled", lambda self, slots, ids, masks: (
        passes.append(sum(t.numel() for t in ids)), real_pooled(self, slots, ids, masks))[1])
    ex = BatchedExecutor(model, tasks)
    got = ex.evaluate(0, job.state, job.rank, 64)
    real = int(task.test["lengths"].sum())
    # one chunk of the 60 length-sorted tweets (the previous plan) is 60 x the longest; the passes pad <= 15 %
    assert len(passes) > 1 and sum(passes) <= 1.15 * real < 0.8 * len(task.test_labels) * task.width(
        task.test, range(len(task.test_labels)))
    # the reference: every test row alone (no padding), through peft
    head, _ = model.load(job.state, job.rank)
    model.peft.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for r in range(len(task.test_labels)):
            x, y = task.batch(task.test, task.test_labels, [r], model.device)
            logits = head(model.encode(x))
            loss += float(torch.nn.functional.cross_entropy(logits, y))
            correct += int(logits.argmax(-1) == y)
    assert got.accuracy == correct / len(task.test_labels) and got.loss == pytest.approx(loss / len(task.test_labels), rel=1e-5)
    # the probe of several jobs of two tasks: pooled, cut by length, each job's rows scored once
    passes.clear()
    g = torch.Generator().manual_seed(1)
    jobs = [TrainJob(f"p{k}", t, model.init_state(r, [3, 5][t], g), r, 0, 8, 1e-3, 1e-3, np.arange(n), [7, k])
            for k, (t, r, n) in enumerate([(0, 4, 230), (0, 8, 180), (1, 2, 130)])]
    res = ex.train(jobs)
    probe_real = sum(int(tasks[j.task].train["lengths"][torch.as_tensor(split_probe(j)[2])].sum()) for j in jobs)
    n_probe = sum(len(split_probe(j)[2]) for j in jobs)
    # before and after: the same passes; the previous plan padded all 54 rows to the longest (64)
    assert sum(passes) == 2 * sum(passes[:len(passes) // 2])
    assert sum(passes[:len(passes) // 2]) <= 1.2 * probe_real < 0.8 * n_probe * 64
    for j, r in zip(jobs, res):
        assert r.loss_before == pytest.approx(r.loss_after, rel=1e-6)


def federate(ex, init, rounds=3):
    state = init
    for rnd in range(rounds):
        jobs = [TrainJob(f"v{k}", 1, state, 4, 4, 8, 2e-3, 1e-2, np.arange(k * 45, k * 45 + 45), [rnd, k])
                for k in range(4)]
        state = fedavg([Update(r.state, r.num_samples, r.rank) for r in ex.train(jobs)]).state
    return ex.evaluate(1, state, state_rank(state))


@pytest.mark.skipif(not native_bf16(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
                    reason="no native bf16 here (emulated bf16 matmuls are ~20x slower than fp32 on AVX2)")
def test_bf16_accuracy_within_noise_of_fp32(setup):
    model, tasks = setup
    init = model.init_state(4, 5, torch.Generator().manual_seed(3))
    fp32 = federate(BatchedExecutor(model, tasks, precision="fp32"), init)
    bf16 = federate(BatchedExecutor(model, tasks, precision="bf16"), init)
    se = np.sqrt(0.25 / fp32.num_examples)  # largest standard error of an accuracy on this test set
    assert fp32.accuracy > 0.4  # learned something (chance is 0.2 on 5 topics)
    assert abs(bf16.accuracy - fp32.accuracy) <= 2 * se
    assert bf16.loss != fp32.loss  # bf16 really ran


def test_bf16_step_keeps_fp32_adapters_close_to_fp32(setup):
    """Runs everywhere (tiny: 8 tokens, 2 rows): bf16 base, fp32 master adapters, result near fp32."""
    model, _ = setup
    short = [TokenizedTask(model, tasks_data, 8) for tasks_data in (setup[1][0].data,)]
    init = model.init_state(4, 3, torch.Generator().manual_seed(4))
    job = TrainJob("v", 0, init, 4, 1, 2, 1e-2, 1e-2, np.arange(0, 6), [9])
    f = BatchedExecutor(model, short, precision="fp32").train([job])[0]
    b = BatchedExecutor(model, short, precision="bf16").train([job])[0]
    assert all(v.dtype == torch.float32 for v in b.state.values())
    assert b.loss_before != f.loss_before and b.loss_before == pytest.approx(f.loss_before, rel=2e-2)
    # Adam's first step is ~lr * sign(grad): compare the update's direction, not elementwise values
    upd_f = torch.cat([(f.state[k] - init[k]).flatten() for k in init])
    upd_b = torch.cat([(b.state[k] - init[k]).flatten() for k in init])
    assert float(upd_b.norm()) > 1e-2
    assert float(torch.nn.functional.cosine_similarity(upd_f, upd_b, dim=0)) > 0.9


def test_make_executor_follows_config(setup):
    model, tasks = setup
    assert FlConfig().executor == "batched" and FlConfig().precision == "fp32"
    assert isinstance(make_executor(FlConfig(), model, tasks), BatchedExecutor)
    assert isinstance(make_executor(FlConfig(executor="sequential"), model, tasks), LocalExecutor)
    if not native_bf16(model.device):  # falls back rather than emulate
        with pytest.warns(UserWarning, match="no native bf16"):
            assert make_executor(FlConfig(precision="bf16"), model, tasks).precision == "fp32"
    from iovsim.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"fl.executor.*expected one of sequential, batched"):
        config_from_dict({"fl": {"executor": "spark"}})
    with pytest.raises(ConfigError, match=r"fl.precision.*expected one of fp32, bf16"):
        config_from_dict({"fl": {"precision": "fp16"}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_batched_on_cuda_equals_cpu(setup):
    _, tasks = setup
    gpu = AdapterModel("minilm", ["query", "value"], 16.0, device="cuda")
    cpu_model = AdapterModel("minilm", ["query", "value"], 16.0)
    jobs = mixed_jobs(cpu_model)
    want = BatchedExecutor(cpu_model, tasks).train(jobs)
    got = BatchedExecutor(gpu, tasks).train(jobs)
    for s, b in zip(want, got):
        for key in s.state:
            torch.testing.assert_close(b.state[key], s.state[key], atol=1e-3, rtol=1e-2)
        assert b.loss_after == pytest.approx(s.loss_after, rel=1e-3)


def test_jobs_train_in_groups_of_bounded_trainable_state(setup):
    """`max_trainable_bytes` cuts a round's jobs into groups trained one after another: every job's
    result is the one it gets in a single group (to rounding: its passes' company changes)."""
    from iovsim.fl.batched import job_groups

    model, tasks = setup
    jobs = mixed_jobs(model)
    # bytes by hand: 16 x (LoRA on query and value of 6 layers: 12 x rank x (384 + 384)) + the head (385 x classes)
    need = [16 * (12 * r * 768 + 385 * c) for r, c in [(4, 3), (8, 5), (2, 3), (4, 5), (8, 3)]]
    assert [len(g) for g in job_groups(jobs, float("inf"))] == [5]
    assert [len(g) for g in job_groups(jobs, need[0] + need[1])] == [2, 2, 1]   # v2 + v3 fit, v4 does not
    assert [len(g) for g in job_groups(jobs, 1)] == [1] * 5                     # a job larger than the bound: alone
    done = []
    whole = BatchedExecutor(model, tasks).train(jobs)
    split = BatchedExecutor(model, tasks, max_trainable_bytes=need[0] + need[1]).train(
        jobs, on_done=lambda j: done.append(j.vehicle_id))
    assert sorted(done) == sorted(j.vehicle_id for j in jobs)
    for a, b in zip(whole, split):
        assert a.vehicle_id == b.vehicle_id and a.state.keys() == b.state.keys()
        for key in a.state:
            torch.testing.assert_close(b.state[key], a.state[key], atol=1e-5, rtol=1e-4)
        assert b.loss_after == pytest.approx(a.loss_after, rel=1e-5)
