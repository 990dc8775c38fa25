"""The bandit's held-out probe and the test-set evaluation: the previous pass plan vs length passes.

Workload: the ucb_dual paper setting on MiniLM (sumo_scenarios/ucb_dual_paper.yaml): 4 tasks (tweets
and SST-2 at 40 tokens, BBC News and QNLI at 64), shards of the Dirichlet split (150 rows on
average), 12 jobs (3 per task) at ranks 4..32, 3 local steps of 16 rows, 1,000-row test sets scored
at eval_batch_size 256; the batched executor (the default), fp32, dynamic padding.

- before: the previous plan, kept here as a reference: each job's probe sorted by length, cut into
  pieces of 256 rows and packed into passes of <= max_tokens (a pass padded to its longest row);
  evaluation in chunks of eval_batch_size length-sorted rows; both under torch.no_grad.
- before + inference_mode: the same plan under torch.inference_mode (probe only: splits the gain).
- after: iovsim as it is (fl.train.length_passes: all jobs' probe rows pooled and cut by length, at
  most PAD_SLACK padding once a pass holds MIN_PASS_ROWS rows; torch.no_grad, as the trainer: inference_mode
  made parameters inference tensors that training later rejects).

The variants run interleaved in one process on the same slots and rows. On a shared machine other
processes come and go within seconds, so the tables give the best of the reps (the least disturbed
run; the usual estimate under such noise) and the median beside it, wall and process CPU time
(steadiest with --threads 1: a thread that loses its core to another process then does not hold
up a second one), their ratios, the padded tokens, the FLOPs torch counts (FlopCounterMode: the
machine-independent work) and how far the results differ. The probe's share of a round is
2 probe calls / (rest of the round + 2 probe calls), the rest measured on the same jobs.

    nice python tools/bench_probe.py [--reps 7] [--eval-reps 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from iovsim.fl.batched import BatchedExecutor, _Slot  # noqa: E402
from iovsim.fl.train import EvalResult  # noqa: E402

SEED, RANKS, STEPS, BATCH, EVAL_BATCH = 2508, [4, 8, 12, 16, 20, 24, 28, 32, 4, 16, 32, 8], 3, 16, 256
TASKS = [("tweet_sentiment", 40), ("bbc_news", 64), ("sst2", 40), ("qnli", 64)]


class Before(BatchedExecutor):
    """The pass plan before length_passes (copied from iovsim/fl/batched.py at b39d9ca), for comparison."""

    @torch.no_grad()
    def _probe_scores(self, jobs, slots, splits):
        pieces = []
        for k, (j, (_, _, probe)) in enumerate(zip(jobs, splits)):
            task = self.tasks[j.task]
            probe = probe[np.argsort(task.train["lengths"][torch.as_tensor(probe)].numpy(), kind="stable")]
            for s in range(0, len(probe), 256):
                rows = probe[s:s + 256]
                pieces.append((slots[k], task, task.train, task.train_labels, rows, task.width(task.train, rows), k))
        sums, correct = [0.0] * len(jobs), [0] * len(jobs)
        for group in self._passes(pieces):
            for p, (lg, y) in zip(group, self._run(group)):
                sums[p[6]] += float(F.cross_entropy(lg.float(), y, reduction="sum"))
                correct[p[6]] += int((lg.argmax(-1) == y).sum())
        return [(sums[k] / len(splits[k][2]), correct[k] / len(splits[k][2])) for k in range(len(jobs))]

    @torch.no_grad()
    def evaluate(self, task_index, state, rank, batch_size=64):
        task = self.tasks[task_index]
        slot = _Slot(self.model, state, rank, trainable=False)
        order, n = np.argsort(task.test["lengths"].numpy(), kind="stable"), len(task.test_labels)
        correct, loss_sum = 0, 0.0
        for s in range(0, n, batch_size):
            rows = order[s:s + batch_size]
            (lg, y), = self._run([(slot, task, task.test, task.test_labels, rows, task.width(task.test, rows), 0)])
            loss_sum += float(F.cross_entropy(lg.float(), y, reduction="sum"))
            correct += int((lg.argmax(-1) == y).sum())
        return EvalResult(correct / n, loss_sum / n, n)


class BeforeInference(Before):
    @torch.inference_mode()
    def _probe_scores(self, jobs, slots, splits):
        return Before._probe_scores.__wrapped__(self, jobs, slots, splits)


def setup():
    from iovsim.engine.fleet import dirichlet_task_shards
    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import load_task
    from iovsim.fl.model import AdapterModel
    from iovsim.fl.train import TokenizedTask, TrainJob

    cfgs = [TaskConfig(name=n, dataset=n, max_length=ml, test_samples=1000) for n, ml in TASKS]
    model = AdapterModel("minilm", ["query", "value"], 16.0)
    datas = [load_task(c, seed=SEED) for c in cfgs]
    tasks = [TokenizedTask(model, d, c.max_length) for d, c in zip(datas, cfgs)]
    shards = dirichlet_task_shards(cfgs, datas, SEED, 150, 16)
    g = torch.Generator().manual_seed(0)
    jobs = []
    for k, r in enumerate(RANKS):
        t = k % len(TASKS)
        state = model.init_state(r, int(datas[t].train_labels.max()) + 1, g)
        for key in state:  # a trained-looking adapter (B != 0), so that the LoRA path matters
            if key.endswith("lora_B"):
                state[key] = torch.randn(state[key].shape, generator=g) * 0.01
        jobs.append(TrainJob(f"v{k}", t, state, r, STEPS, BATCH, 1e-3, 1e-3, np.asarray(shards[t][k // len(TASKS)]),
                             [SEED, k]))
    return model, tasks, jobs


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def clocked(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


class TokenCount:
    """Tokens (rows x width) that go through the encoder, counted at BatchedExecutor._pooled."""

    def __init__(self):
        self.n, real = 0, BatchedExecutor._pooled

        def pooled(ex, slots, ids, masks):
            self.n += sum(t.numel() for t in ids)
            return real(ex, slots, ids, masks)

        BatchedExecutor._pooled = pooled


def main(argv=None) -> None:
    from iovsim.fl.train import split_probe

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--eval-reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "bench_probe.md"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()
    model, tasks, jobs = setup()
    count = TokenCount()
    exs = {"before": Before(model, tasks), "before + inference_mode": BeforeInference(model, tasks),
           "after": BatchedExecutor(model, tasks)}
    slots = [_Slot(model, j.state, j.rank, trainable=True) for j in jobs]
    splits = [split_probe(j) for j in jobs]
    probe = {name: [] for name in exs}
    scores, tokens = {}, {}
    flops = {name: count_flops(lambda: ex._probe_scores(jobs, slots, splits)) for name, ex in exs.items()}
    for rep in range(a.reps + 1):  # rep 0 warms up
        names = list(exs)[rep % 3:] + list(exs)[:rep % 3]
        for name in names:
            count.n = 0
            scores[name], wall, cpu = clocked(lambda: exs[name]._probe_scores(jobs, slots, splits))
            tokens[name] = count.n
            if rep:
                probe[name].append((wall, cpu))
        print(f"probe rep {rep}: " + ", ".join(f"{n} {probe[n][-1][0]:.2f}s" for n in names if rep), flush=True)
    rest = round_rest(exs["after"], jobs, a.eval_reps)
    evals = eval_rows(exs, jobs, tasks, a.eval_reps, count)
    write(a, load0, os.getloadavg(), jobs, splits, probe, scores, (tokens, flops), rest, evals)


def round_rest(ex, jobs, reps):
    """Wall and CPU time of a round's training without its two probe passes (median over reps)."""
    real, spent = ex._probe_scores, []

    def timed(*args):
        out, w, c = clocked(lambda: real(*args))
        spent.append((w, c))
        return out

    ex._probe_scores = timed
    out = []
    for rep in range(reps):
        spent.clear()
        _, w, c = clocked(lambda: ex.train(jobs))
        out.append((w - sum(s[0] for s in spent), c - sum(s[1] for s in spent)))
        print(f"round rep {rep}: {w:.1f}s, of which probe {sum(s[0] for s in spent):.1f}s", flush=True)
    ex._probe_scores = real
    return tuple(min(x[i] for x in out) for i in range(2))


def eval_rows(exs, jobs, tasks, reps, count):
    rows = []
    for t in range(len(tasks)):
        job = jobs[t]
        times, res, toks = {"before": [], "after": []}, {}, {}
        flops = {n: count_flops(lambda: exs[n].evaluate(t, job.state, job.rank, EVAL_BATCH)) for n in times}
        for rep in range(reps):
            for name in (["before", "after"] if rep % 2 == 0 else ["after", "before"]):
                count.n = 0
                res[name], w, c = clocked(lambda: exs[name].evaluate(t, job.state, job.rank, EVAL_BATCH))
                toks[name] = count.n
                times[name].append((w, c))
        print(f"eval task {t}: " + ", ".join(f"{n} {times[n][-1][0]:.1f}s" for n in times), flush=True)
        rows.append((TASKS[t][0], times, res, (toks, flops), int(tasks[t].test["lengths"].sum())))
    return rows


def med(xs, i):
    return statistics.median(x[i] for x in xs)


def best(xs, i):
    return min(x[i] for x in xs)


def write(a, load0, load1, jobs, splits, probe, scores, work, rest, evals):
    tokens, flops = work
    real = sum(int(np.asarray(s[2]).size) for s in splits)
    d_loss = max(abs(x[0] - y[0]) / abs(y[0]) for x, y in zip(scores["after"], scores["before"]))
    same_acc = all(x[1] == y[1] for x, y in zip(scores["after"], scores["before"]))
    b, f = probe["before"], probe["after"]
    lines = [
        "# Probe and evaluation passes: previous plan vs length passes (tools/bench_probe.py)", "",
        f"`nice python tools/bench_probe.py --reps {a.reps} --eval-reps {a.eval_reps} --threads {a.threads}`;"
        f" {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {a.threads} threads; load average"
        f" (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load0)}, after {', '.join(f'{x:.2f}' for x in load1)}"
        " (a shared machine: the variants ran interleaved; best of the reps, median in brackets).", "",
        f"Probe: {len(jobs)} jobs, {real} probe rows in all; one probe call (a round makes two); {a.reps} reps.", "",
        "| variant | encoder tokens (rows x width) | GFLOP | wall s | CPU s | before / variant (FLOP, wall, CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for name, xs in probe.items():
        lines.append(f"| {name} | {tokens[name]} | {flops[name] / 1e9:.1f} | {best(xs, 0):.2f} ({med(xs, 0):.2f}) |"
                     f" {best(xs, 1):.2f} ({med(xs, 1):.2f}) | {flops['before'] / flops[name]:.2f}x,"
                     f" {best(b, 0) / best(xs, 0):.2f}x, {best(b, 1) / best(xs, 1):.2f}x |")
    share = [2 * best(x, 1) / (rest[1] + 2 * best(x, 1)) for x in (b, f)]
    lines += ["", f"Results after vs before: largest relative difference of a job's probe loss {d_loss:.1e};"
              f" probe accuracies {'all equal' if same_acc else 'NOT all equal'}.", "",
              f"Share of a round (CPU time; the rest of the round, training steps and export: {rest[1]:.1f} s CPU,"
              f" {rest[0]:.1f} s wall, best of {a.eval_reps}): probe before {share[0]:.1%}, after {share[1]:.1%}"
              f" (round {rest[1] + 2 * best(b, 1):.1f} s -> {rest[1] + 2 * best(f, 1):.1f} s CPU).", "",
              f"Evaluation: 1,000-row test sets (SST-2: its 872-row dev set), batch {EVAL_BATCH}; {a.eval_reps} reps.", "",
              "| task | tokens before / after (real) | GFLOP before / after | wall s before / after | CPU s before / after |"
              " before / after (FLOP, wall, CPU) | accuracy before / after | loss rel. diff |",
              "|---|---|---|---|---|---|---|---|"]
    for name, times, res, (toks, fl), real_t in evals:
        tb, ta = times["before"], times["after"]
        lines.append(f"| {name} | {toks['before']} / {toks['after']} ({real_t}) | {fl['before'] / 1e9:.0f} /"
                     f" {fl['after'] / 1e9:.0f} | {best(tb, 0):.1f} / {best(ta, 0):.1f} |"
                     f" {best(tb, 1):.1f} / {best(ta, 1):.1f} | {fl['before'] / fl['after']:.2f}x,"
                     f" {best(tb, 0) / best(ta, 0):.2f}x,"
                     f" {best(tb, 1) / best(ta, 1):.2f}x | {res['before'].accuracy:.4f} / {res['after'].accuracy:.4f} |"
                     f" {abs(res['after'].loss - res['before'].loss) / res['before'].loss:.1e} |")
    text = "\n".join(lines) + "\n"
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
