"""Two versions of the compiled channel side by side on the same SUMO positions: the working tree's
`iovsim/channel` and the one of a git revision (before / after a change, measured in one run).

The revision's `iovsim/channel` is extracted with `git archive` into a temporary folder and imported
under another package name (its absolute imports rewritten), so both compile their own numba loops.
The scenario, warm-up and timing are `tools/bench_channel.py`'s: each timed step runs SUMO, then both
channels (`Channel.step` + the rates of every vehicle), alternating which goes first; it checks that
both give the same serving RSU, RSRP and SINR (a change meant to keep results) and reports each one's
CPU time per step, its share of SUMO's step and their ratio. Exit status 1 when they disagree.

    python tools/bench_channel_ab.py --rev f550ab3                  # working tree vs f550ab3
    python tools/bench_channel_ab.py --rev f550ab3 --fading rician --bler table
"""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_channel as bc  # noqa: E402

ROOT = bc.ROOT


def revision_channel(rev: str, folder: Path):
    """The `Channel` class of `iovsim/channel` at git revision `rev` (extracted under `folder`)."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    pkg = f"channel_{sha}"
    archive = subprocess.run(["git", "archive", sha, "iovsim/channel"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "iovsim" / "channel").rename(folder / pkg)
    for f in (folder / pkg).glob("*.py"):
        f.write_text(re.sub(r"\biovsim\.channel\b", pkg, f.read_text()))
    sys.path.insert(0, str(folder))
    return importlib.import_module(pkg).Channel, sha


def run(args, old_cls):
    from iovsim.channel import Channel
    from iovsim.channel.config import ChannelConfig

    sim = bc.Sumo(args)
    rsu_xy, _ = sim.rsu_grid(args.rsus)
    cfg = ChannelConfig(fading=args.fading, bler=args.bler)
    chans = {"revision": old_cls(cfg, rsu_xy, args.seed, fused=True),
             "working tree": Channel(cfg, rsu_xy, args.seed, fused=True)}
    ids, xy, sp = sim.advance()
    t = 0.0
    while len(ids) < args.vehicles and t < args.max_warmup_s:
        ids, xy, sp = sim.advance()
        t = sim.ls.simulation.getTime()
        for ch in chans.values():
            ch.step(t, ids, xy, sp)
    for ch in chans.values():
        bc.all_rates(ch, ch.last)
    cpu = {k: [] for k in chans}
    sumo, cmp = [], bc.Compare()
    order = list(chans)
    for i in range(args.steps):
        t0 = time.thread_time()
        ids, xy, sp = sim.advance()
        sumo.append(time.thread_time() - t0)
        links = {}
        for j, k in enumerate(order if i % 2 == 0 else order[::-1]):
            own = ids if j == 0 else [v.encode().decode() for v in ids]
            links[k], ts, tr = bc.channel_step(chans[k], sim.ls.simulation.getTime(), own, xy, sp)
            cpu[k].append(ts[1] + tr[1])
        cmp.add(links["revision"], links["working tree"])
    sim.ls.close()
    counts = [(c.handover_count, c.ping_pong_count, c.rlf_count) for c in chans.values()]
    return 1e3 * np.mean(sumo), {k: 1e3 * np.mean(v) for k, v in cpu.items()}, cmp, counts


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    rev = "HEAD"
    if "--rev" in argv:
        i = argv.index("--rev")
        rev = argv[i + 1]
        del argv[i:i + 2]
    if "--out" not in argv:
        argv += ["--out", str(ROOT / "tools" / "results" / "bench_channel_ab.md")]
    args = bc.parse(argv)
    with tempfile.TemporaryDirectory() as tmp:
        old_cls, sha = revision_channel(rev, Path(tmp))
        sumo, cpu, cmp, counts = run(args, old_cls)
    same = cmp.serving_mismatch == 0 and counts[0] == counts[1] and not any(cmp.max_diff.values())
    a, b = cpu["revision"], cpu["working tree"]
    line = (f"| {sha} | {args.fading} / {args.bler} | {sumo:.2f} | {a:.3f} ({100 * a / sumo:.1f} %) | "
            f"{b:.3f} ({100 * b / sumo:.1f} %) | **{b / a:.3f}** | {'yes' if same else '**no**'} | "
            f"{os.getloadavg()[0]:.2f} |")
    print("| revision | fading / bler | SUMO step, CPU ms | revision: channel CPU ms (share) | working tree: "
          "channel CPU ms (share) | working tree / revision | same results | load (1 min) |")
    print(line)
    with open(args.out, "a") as f:
        f.write(line + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
