"""Channel + association time per step as a share of SUMO's own step time, measured side by side.

SUMO (libsumo, in-process) runs a SUMO-shipped real map with its route files scaled until about
`--vehicles` vehicles are present; positions and speeds come from subscriptions. `--rsus` RSUs
stand on a grid over the network's boundary. After the warm-up, each of `--steps` steps times
`simulationStep()` (plus reading the subscriptions) and, separately, `Channel.step` on every
vehicle present plus the uplink and downlink rates of all of them at an equal bandwidth share.
Writes a markdown table to tools/results/bench_channel.md.

    .venv/bin/python tools/bench_channel.py            # A10KW, scale 2.5, 1,000 vehicles, 50 RSUs, 200 steps
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="tools/game/A10KW/osm.net.xml", help="network, relative to SUMO_HOME or absolute")
    ap.add_argument("--routes", default="tools/game/A10KW/osm.passenger.rou.xml,tools/game/A10KW/osm.passenger_mw.rou.xml,"
                    "tools/game/A10KW/osm.passenger_mwb.rou.xml,tools/game/A10KW/osm.truck.rou.xml,"
                    "tools/game/A10KW/osm.truck_mw.rou.xml,tools/game/A10KW/osm.truck_mwb.rou.xml")
    ap.add_argument("--scale", type=float, default=2.5, help="SUMO --scale (demand multiplier)")
    ap.add_argument("--vehicles", type=int, default=1000, help="start timing once this many vehicles are present")
    ap.add_argument("--rsus", type=int, default=50)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--max-warmup-s", type=float, default=1800.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(ROOT / "tools" / "results" / "bench_channel.md"))
    args = ap.parse_args(argv)

    import sumo

    os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    import libsumo as ls

    from iovsim.channel import Channel
    from iovsim.channel.config import ChannelConfig

    home = Path(sumo.SUMO_HOME)
    net = Path(args.net) if os.path.isabs(args.net) else home / args.net
    routes = [str(Path(r) if os.path.isabs(r) else home / r) for r in args.routes.split(",") if r]
    ls.start(["sumo", "-n", str(net), "-r", ",".join(routes), "--scale", str(args.scale), "--seed", str(args.seed),
              "--no-step-log", "true", "--no-warnings", "true", "--step-length", "1", "--begin", "0"])
    VP, VS = ls.constants.VAR_POSITION, ls.constants.VAR_SPEED

    def advance():
        ls.simulationStep()
        for v in ls.simulation.getDepartedIDList():
            ls.vehicle.subscribe(v, (VP, VS))
        res = ls.vehicle.getAllSubscriptionResults()
        ids = list(res)
        xy = np.array([res[v][VP] for v in ids], dtype=float).reshape(-1, 2)
        sp = np.array([res[v][VS] for v in ids], dtype=float)
        return ids, xy, sp

    (x0, y0), (x1, y1) = ls.simulation.getNetBoundary()
    nx = int(np.ceil(np.sqrt(args.rsus * (x1 - x0) / max(y1 - y0, 1.0))))
    ny = int(np.ceil(args.rsus / nx))
    gx, gy = np.meshgrid(x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx, y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny)
    rsu_xy = np.c_[gx.ravel(), gy.ravel()][: args.rsus]

    cfg = ChannelConfig()
    ch = Channel(cfg, rsu_xy, args.seed)

    # Warm-up until enough vehicles are present (the channel follows them, untimed).
    t = 0.0
    ids, xy, sp = advance()
    while len(ids) < args.vehicles and t < args.max_warmup_s:
        ids, xy, sp = advance()
        t = ls.simulation.getTime()
        ch.step(t, ids, xy, sp)
    p = ch.default_tx_power_w
    sumo_s, chan_s, step_s, rate_s, counts = [], [], [], [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        ids, xy, sp = advance()
        t1 = time.perf_counter()
        link = ch.step(ls.simulation.getTime(), ids, xy, sp)
        t2 = time.perf_counter()
        n = len(ids)
        s = link.serving
        load = np.bincount(s[s >= 0], minlength=ch.num_rsus)
        bw = np.where(s >= 0, ch.rsu_bandwidth_hz[np.maximum(s, 0)] / np.maximum(load[np.maximum(s, 0)], 1), 0.0)
        idx = np.arange(n)
        ch.uplink_rate_bps(link, idx, np.full(n, p), bw)
        ch.downlink_rate_bps(link, idx, bw)
        t3 = time.perf_counter()
        sumo_s.append(t1 - t0)
        step_s.append(t2 - t1)
        rate_s.append(t3 - t2)
        chan_s.append(t3 - t1)
        counts.append(n)
    ls.close()
    ratio = np.mean(chan_s) / np.mean(sumo_s)
    ratio_median = np.median(chan_s) / np.median(sumo_s)

    def stats(x):
        x = 1e3 * np.asarray(x)
        return f"{x.mean():.2f} / {np.median(x):.2f} / {np.percentile(x, 90):.2f} ms"

    cmd = "python tools/bench_channel.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = [
        ("scenario", f"{net.relative_to(home) if net.is_relative_to(home) else net}, {len(routes)} route files, --scale {args.scale:g}"),
        ("vehicles present (mean / min / max)", f"{np.mean(counts):.0f} / {min(counts)} / {max(counts)}"),
        ("RSUs", f"{ch.num_rsus} (grid {nx} x {ny} over the net boundary)"),
        ("timed steps", f"{args.steps} (after {t:.0f} s of warm-up)"),
        ("SUMO step: simulationStep + subscriptions (mean / median / p90)", stats(sumo_s)),
        ("channel.step (mean / median / p90)", stats(step_s)),
        ("uplink + downlink rates of all vehicles (mean / median / p90)", stats(rate_s)),
        ("channel total (mean / median / p90)", stats(chan_s)),
        ("**channel / SUMO step, ratio of means**", f"**{100 * ratio:.1f} %** (target < 10 %)"),
        ("channel / SUMO step, ratio of medians", f"{100 * ratio_median:.1f} %"),
        ("handovers / ping-pongs / RLF re-attachments", f"{ch.handover_count} / {ch.ping_pong_count} / {ch.rlf_count}"),
        ("connected share (last step)", f"{np.mean(link.serving >= 0):.3f}"),
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}"),
    ]
    text = ["# Channel benchmark", "", f"Command: `{cmd.strip()}`", "", "| quantity | value |", "| --- | --- |"]
    text += [f"| {a} | {b} |" for a, b in rows]
    text += ["", "Channel defaults: UMi-Street Canyon at 5.9 GHz, stochastic LOS, shadowing, reuse 1 with interference,",
             "A3 with hysteresis 0 dB / TTT 0 s. SUMO and the channel share one process and one core.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(text))
    print("\n".join(text))
    return ratio


if __name__ == "__main__":
    main()
