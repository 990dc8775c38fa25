"""FlexLoRA / UCB-DUAL server aggregation: dense SVD of sum_k w_k s_k B_k A_k vs the low-rank path.

The low-rank path (iovsim.fl.aggregate.flexlora_aggregate, default) takes the SVD from the stacked
client factors: QR of out x R and in x R (R = sum of the clients' ranks) and an SVD of the R x R
core. The dense path (`dense=True`, the reference) forms each out x in sum and takes its full SVD.
Both run interleaved in one process (dense, low-rank, low-rank, dense, ...), so load from other
processes hits them alike; the table gives the median of the reps, both times and their ratio, and
the largest relative difference of the aggregated products scale * B @ A between the paths.

    nice python tools/bench_aggregate.py [--reps 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import iovsim  # noqa: F401  (before torch: libgomp's wait policy as a run sets it, iovsim/__init__.py)
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ALPHA = 16.0
# name, [(out, in) per module of a layer], layers, client ranks, global (target) rank
WORKLOADS = [
    ("MiniLM (query/value 384x384, 6 layers)", [(384, 384), (384, 384)], 6, [4, 8, 16, 32] * 3, 32),
    ("LLM-like (576x576 + 576x1536, 30 layers)", [(576, 576), (576, 1536)], 30, [16] * 12, 16),
]


def updates_for(shapes, layers, ranks, seed=0):
    from iovsim.fl.aggregate import Update

    g = torch.Generator().manual_seed(seed)
    out = []
    for k, r in enumerate(ranks):
        s = {}
        for layer in range(layers):
            for j, (o, i) in enumerate(shapes):
                s[f"l{layer}.m{j}.lora_A"] = torch.randn(r, i, generator=g) * i ** -0.5
                s[f"l{layer}.m{j}.lora_B"] = torch.randn(o, r, generator=g) * 1e-2
        s["head.weight"] = torch.randn(3, shapes[0][1], generator=g)
        s["head.bias"] = torch.randn(3, generator=g)
        out.append(Update(s, float(50 + 10 * k), r))
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(name, shapes, layers, ranks, target, reps) -> dict:
    from iovsim.fl.aggregate import flexlora_aggregate, lora_modules, lora_product

    ups = updates_for(shapes, layers, ranks)

    def run(dense):
        return flexlora_aggregate(ups, target, ALPHA, torch.Generator().manual_seed(1), dense=dense)

    lo, de = run(False), run(True)  # warm-up, and the agreement check
    diff = max(float(torch.linalg.norm(lora_product(lo, m, ALPHA) - lora_product(de, m, ALPHA))
                     / torch.linalg.norm(lora_product(de, m, ALPHA))) for m in lora_modules(lo))
    t_de, t_lo = [], []
    for rep in range(reps):
        order = (True, False) if rep % 2 == 0 else (False, True)
        for dense in order:
            (t_de if dense else t_lo).append(timed(lambda: run(dense)))
    md, ml = statistics.median(t_de), statistics.median(t_lo)
    return {"name": name, "modules": layers * len(shapes), "ranks": ranks, "target": target,
            "dense_s": md, "lowrank_s": ml, "ratio": md / ml, "diff": diff, "reps": reps}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "tools" / "results" / "bench_aggregate.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    rows = [bench(*w, reps=args.reps) for w in WORKLOADS]
    load1 = os.getloadavg()
    lines = [
        "# FlexLoRA aggregation: dense SVD vs low-rank (stacked factors)",
        "",
        f"`nice python tools/bench_aggregate.py --reps {args.reps} --threads {args.threads}` (float32 adapters,"
        " float64 SVD, alpha 16, one call of `flexlora_aggregate` = every module of the model).",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch"
        f" {torch.__version__}, {args.threads} threads; load average (1, 5, 15 min) before"
        f" {', '.join(f'{x:.2f}' for x in load0)}, after {', '.join(f'{x:.2f}' for x in load1)}"
        " (shared machine: the two paths ran interleaved, so the ratio is what counts).",
        "",
        "| workload | modules | client ranks (sum) | target rank | dense s (median) | low-rank s (median) |"
        " dense / low-rank | max rel. diff of products |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ranks = sorted(set(r["ranks"]))
        lines.append(f"| {r['name']} | {r['modules']} | {len(r['ranks'])} clients, {ranks[0]}-{ranks[-1]}"
                     f" ({sum(r['ranks'])}) | {r['target']} | {r['dense_s']:.3f} | {r['lowrank_s']:.3f} |"
                     f" {r['ratio']:.1f}x | {r['diff']:.1e} |")
    lines.append("")
    lines.append(f"Median of {args.reps} reps per path.")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
