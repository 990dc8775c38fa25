"""Soak: many short rounds of a tiny experiment in one process; does memory or the fd count creep?

Real SUMO (libsumo) on a 4x4 grid made by netgenerate, the real model and real tweets, one task,
a few participants, one local step, a tiny test set: each round is short, so a leak per round
(an open file, a growing list, a tensor kept alive) shows over many rounds. RSS and the number of
open file descriptors are sampled every `--every` rounds (from the round event, without touching
the engine); growth is measured after `--warmup` rounds.

    nice -n 10 python tools/bench_soak.py [--rounds 1000] [--every 20] [--warmup 100]

Writes tools/results/soak.md and tools/results/soak.png.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROUTES = """<routes>
    <vType id="car" maxSpeed="15"/>
    <flow id="f0" type="car" begin="0" end="1e6" period="4" from="A0A1" to="C2C3"/>
    <flow id="f1" type="car" begin="0" end="1e6" period="5" from="C3C2" to="A1A0"/>
    <flow id="f2" type="car" begin="0" end="1e6" period="6" from="A0B0" to="B3C3"/>
</routes>
"""


def tiny_config(folder: Path, rounds: int) -> dict:
    from iovsim.mobility.scenario import sumo_binary

    subprocess.run([sumo_binary("netgenerate"), "--grid", "--grid.number", "4", "--grid.length", "200",
                    "-o", str(folder / "grid.net.xml")], check=True, capture_output=True)
    (folder / "routes.rou.xml").write_text(ROUTES)
    return {
        "name": "soak", "seed": 11,
        "mobility": {"net_file": str(folder / "grid.net.xml"), "route_files": [str(folder / "routes.rou.xml")],
                     "warmup_s": 10, "end_s": 1e7, "fl_vehicles": 6},
        "rsu": {"count": 3, "spacing_m": 200},
        "fl": {"rounds": rounds, "participants_per_round": 2, "local_steps": 1, "batch_size": 4, "lora_rank": 2,
               "lora_ranks": [2], "round_deadline_s": 10, "round_interval_s": 0, "samples_per_vehicle": 8,
               "min_samples_per_vehicle": 4, "eval_batch_size": 16,
               "tasks": [{"name": "tweets", "dataset": "tweet_sentiment", "max_samples": 200, "test_samples": 16,
                          "max_length": 24}]},
        "output": {"report": False, "checkpoint_every": 10},
    }


def make_sampler(every: int):
    from iovsim.viz.progress import Progress

    proc = psutil.Process()

    class Sampler(Progress):
        """A quiet Progress that samples RSS and open fds on every `every`-th round event."""

        def __init__(self):
            super().__init__(quiet=True)
            self.rows: list[tuple[int, float, int, float]] = []
            self.t0 = time.perf_counter()

        def event(self, kind, **data):
            super().event(kind, **data)
            r = data.get("round")
            if kind == "round" and (r == 1 or r % every == 0):
                self.rows.append((int(r), proc.memory_info().rss / 2**20, proc.num_fds(), time.perf_counter() - self.t0))

    return Sampler()


def figures(rows, warmup: int) -> dict:
    arr = np.asarray(rows, dtype=float)
    after = arr[arr[:, 0] >= warmup]
    base = float(np.median(after[:3, 1]))
    end = float(np.median(after[-3:, 1]))
    return {"rss_warm_mib": base, "rss_end_mib": end, "rss_growth_pct": 100 * (end - base) / base,
            "rss_peak_mib": float(arr[:, 1].max()), "fds_min": int(after[:, 2].min()), "fds_max": int(after[:, 2].max()),
            "fds_first": int(arr[0, 2]), "seconds": float(arr[-1, 3]), "rounds": int(arr[-1, 0])}


def plot(rows, warmup: int, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = np.asarray(rows, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(arr[:, 0], arr[:, 1], color="tab:blue")
    ax.set_xlabel("round")
    ax.set_ylabel("RSS [MiB]", color="tab:blue")
    ax.axvline(warmup, color="grey", ls=":", lw=1)
    ax2 = ax.twinx()
    ax2.step(arr[:, 0], arr[:, 2], color="tab:orange", where="post")
    ax2.set_ylabel("open file descriptors", color="tab:orange")
    ax2.set_ylim(0, max(arr[:, 2]) * 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "tools" / "results")
    args = p.parse_args(argv)

    from iovsim.config import config_from_dict
    from iovsim.experiment import Experiment

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg_dict = tiny_config(tmp, args.rounds)
        cfg_dict["fl"]["threads"] = args.threads
        cfg = config_from_dict(cfg_dict, base_dir=tmp)
        sampler = make_sampler(args.every)
        wall0 = time.perf_counter()
        Experiment(cfg, tmp / "run", progress=sampler).run()
        wall = time.perf_counter() - wall0
    f = figures(sampler.rows, args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(sampler.rows, args.warmup, args.out / "soak.png")
    load = os.getloadavg()
    table = "\n".join(f"| {r} | {rss:.1f} | {fds} | {t:.0f} |" for r, rss, fds, t in sampler.rows)
    (args.out / "soak.md").write_text(f"""# Soak: {f['rounds']} short rounds in one process

`nice -n 10 python tools/bench_soak.py --rounds {args.rounds} --every {args.every} --warmup {args.warmup}`
({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average at the end
{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; {wall / 60:.1f} min wall time).

Tiny config: libsumo on a 4x4 netgenerate grid with three flows, 6 federated vehicles, 3 RSUs,
2 participants a round, 1 local step of batch 4 at LoRA rank 2, one task (real tweets, 16 test
samples), a checkpoint every 10 rounds. RSS and open file descriptors sampled every {args.every} rounds.

| quantity | value |
| --- | --- |
| RSS after {args.warmup} rounds (warm) | {f['rss_warm_mib']:.1f} MiB |
| RSS at round {f['rounds']} | {f['rss_end_mib']:.1f} MiB |
| **RSS growth after warm-up** | **{f['rss_growth_pct']:+.2f} %** (target < 5 %) |
| peak RSS | {f['rss_peak_mib']:.1f} MiB |
| open file descriptors after warm-up | {f['fds_min']}..{f['fds_max']} (round 1: {f['fds_first']}) |

![RSS and open file descriptors per round](soak.png)

| round | RSS [MiB] | open fds | seconds |
| --- | --- | --- | --- |
{table}
""")
    print(f"{f['rounds']} rounds in {wall / 60:.1f} min: RSS {f['rss_warm_mib']:.1f} -> {f['rss_end_mib']:.1f} MiB "
          f"({f['rss_growth_pct']:+.2f} %), fds {f['fds_min']}..{f['fds_max']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
