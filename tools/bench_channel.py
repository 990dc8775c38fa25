"""Channel + association time per step as a share of SUMO's own step time, measured side by side.

SUMO (libsumo, in-process) runs a SUMO-shipped real map with its route files scaled until about
`--vehicles` vehicles are present; positions and speeds come from subscriptions. `--rsus` RSUs
stand on a grid over the network's boundary. After the warm-up, each of `--steps` steps times
`simulationStep()` (plus reading the subscriptions) and, separately, `Channel.step` on every
vehicle present plus the uplink and downlink rates of all of them at an equal bandwidth share.

With `--channels both` (the default) two channels follow the same SUMO positions in the same
process: the numpy reference (`Channel(..., fused=False)`) and the compiled loops (`fused=True`,
numba); they alternate which runs first after SUMO each step (the second finds warmer caches; it
gets fresh id strings, as libsumo gives them). Every step checks that both give the same serving
RSU for every vehicle, and at the end the same handover counts; the largest differences of RSRP and
SINR are reported (0 when the fused path is bit for bit the reference); exit status 1 when they
disagree. This gives the speed-up; the share of SUMO's step of one channel, as in a real run, comes
from `--channels fused` (or `reference`): two channels also pollute SUMO's caches. Both the wall
clock and the CPU time of the thread are reported (the latter leaves out what other processes take
from a loaded machine). Writes a markdown table to tools/results/bench_channel.md.

The rate functions run once, untimed, at the end of the warm-up (the first call loads their
compiled loops).

    .venv/bin/python tools/bench_channel.py                     # A10KW, scale 2.5, 1,000 vehicles, 50 RSUs, 200 steps
    .venv/bin/python tools/bench_channel.py --channels fused    # one channel: its share of SUMO's step
    .venv/bin/python tools/bench_channel.py --channels fused --fading rician --bler table   # with both options on
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
A10KW = "tools/game/A10KW/"


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default=A10KW + "osm.net.xml", help="network, relative to SUMO_HOME or absolute")
    ap.add_argument("--routes", default=",".join(A10KW + f"osm.{k}.rou.xml" for k in (
        "passenger", "passenger_mw", "passenger_mwb", "truck", "truck_mw", "truck_mwb")))
    ap.add_argument("--scale", type=float, default=2.5, help="SUMO --scale (demand multiplier)")
    ap.add_argument("--vehicles", type=int, default=1000, help="start timing once this many vehicles are present")
    ap.add_argument("--rsus", type=int, default=50)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--max-warmup-s", type=float, default=1800.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--channels", choices=("both", "fused", "reference"), default="both",
                    help="both side by side (speed-up and equality checks), or one alone (its share of SUMO's step)")
    ap.add_argument("--fading", choices=("none", "rayleigh", "rician"), default="none",
                    help="channel.fading; with fading on, the rates are the instantaneous ones (as the engine's transfers)")
    ap.add_argument("--bler", choices=("none", "table"), default="none", help="channel.bler")
    ap.add_argument("--out", default=str(ROOT / "tools" / "results" / "bench_channel.md"))
    return ap.parse_args(argv)


class Sumo:
    """libsumo on the scenario: `advance()` steps it and returns (ids, xy, speed) of the vehicles present."""

    def __init__(self, args):
        import sumo

        os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
        from iovsim.mobility.sumo import import_libsumo

        ls = import_libsumo()   # without libsumo's Arrow-version line on stdout

        self.ls, self.home = ls, Path(sumo.SUMO_HOME)
        self.net = Path(args.net) if os.path.isabs(args.net) else self.home / args.net
        self.routes = [str(Path(r) if os.path.isabs(r) else self.home / r) for r in args.routes.split(",") if r]
        ls.start(["sumo", "-n", str(self.net), "-r", ",".join(self.routes), "--scale", str(args.scale), "--seed",
                  str(args.seed), "--no-step-log", "true", "--no-warnings", "true", "--step-length", "1", "--begin", "0"])
        self.vp, self.vs = ls.constants.VAR_POSITION, ls.constants.VAR_SPEED

    def advance(self):
        ls = self.ls
        ls.simulationStep()
        for v in ls.simulation.getDepartedIDList():
            ls.vehicle.subscribe(v, (self.vp, self.vs))
        res = ls.vehicle.getAllSubscriptionResults()
        ids = list(res)
        xy = np.array([res[v][self.vp] for v in ids], dtype=float).reshape(-1, 2)
        sp = np.array([res[v][self.vs] for v in ids], dtype=float)
        return ids, xy, sp

    def rsu_grid(self, count):
        """`count` RSUs on an nx x ny grid over the network's boundary."""
        (x0, y0), (x1, y1) = self.ls.simulation.getNetBoundary()
        nx = int(np.ceil(np.sqrt(count * (x1 - x0) / max(y1 - y0, 1.0))))
        ny = int(np.ceil(count / nx))
        gx, gy = np.meshgrid(x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx, y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny)
        return np.c_[gx.ravel(), gy.ravel()][:count], (nx, ny)


def clocks():
    """(wall, CPU time of this thread): the CPU time leaves out what other processes take from a loaded machine."""
    return np.array([time.perf_counter(), time.thread_time()])


def channel_step(ch, t, ids, xy, sp):
    """One timed channel step with the rates of every vehicle at an equal share of its RSU's band."""
    t0 = clocks()
    link = ch.step(t, ids, xy, sp)
    t1 = clocks()
    all_rates(ch, link)
    return link, t1 - t0, clocks() - t1


def all_rates(ch, link):
    """Uplink and downlink rates of every vehicle of `link` at an equal share of its RSU's band."""
    n, s = link.num_vehicles, link.serving
    load = np.bincount(s[s >= 0], minlength=ch.num_rsus)
    bw = np.where(s >= 0, ch.rsu_bandwidth_hz[np.maximum(s, 0)] / np.maximum(load[np.maximum(s, 0)], 1), 0.0)
    idx, inst = np.arange(n), ch.fading is not None  # with fading, the rates a transfer drains at
    return (ch.uplink_rate_bps(link, idx, np.full(n, ch.default_tx_power_w), bw, instantaneous=inst),
            ch.downlink_rate_bps(link, idx, bw, instantaneous=inst))


class Compare:
    """Differences between the reference and the fused channel's LinkStates, step by step."""

    def __init__(self):
        self.serving_mismatch = 0
        self.max_diff = {"rsrp_dbm": 0.0, "uplink_sinr_db": 0.0, "downlink_sinr_db": 0.0}

    def add(self, a, b):
        self.serving_mismatch += int(np.count_nonzero(a.serving != b.serving))
        for name in self.max_diff:
            x, y = np.asarray(getattr(a, name), float), np.asarray(getattr(b, name), float)
            both = np.isfinite(x) & np.isfinite(y)
            self.serving_mismatch += int(np.count_nonzero(np.isfinite(x) != np.isfinite(y)))
            if both.any():
                self.max_diff[name] = max(self.max_diff[name], float(np.abs(x[both] - y[both]).max()))


def run(args):
    """Warm-up, then the timed steps; returns the timings and the channels."""
    from iovsim.channel import Channel
    from iovsim.channel import fused as fz
    from iovsim.channel.config import ChannelConfig

    if args.channels != "reference" and not fz.AVAILABLE:
        print("bench_channel: the fused channel needs numba (pip install numba; IOVSIM_NUMBA=0 turns it off); "
              "--channels reference times the numpy one", file=sys.stderr)
        raise SystemExit(2)
    sim = Sumo(args)
    rsu_xy, grid = sim.rsu_grid(args.rsus)
    cfg = ChannelConfig(fading=args.fading, bler=args.bler)
    kinds = ("reference", "fused") if args.channels == "both" else (args.channels,)
    chans = {k: Channel(cfg, rsu_xy, args.seed, fused=k == "fused") for k in kinds}
    t = 0.0
    ids, xy, sp = sim.advance()
    while len(ids) < args.vehicles and t < args.max_warmup_s:  # the channels follow, untimed
        ids, xy, sp = sim.advance()
        t = sim.ls.simulation.getTime()
        for ch in chans.values():
            ch.step(t, ids, xy, sp)
    for ch in chans.values():  # the rate functions' first call (loading their compiled loops), untimed
        all_rates(ch, ch.last)
    times = {"sumo": [], **{f"{k}_{p}": [] for k in chans for p in ("step", "rates")}}
    counts, cmp = [], Compare()
    order = list(chans)
    for i in range(args.steps):
        t0 = clocks()
        ids, xy, sp = sim.advance()
        times["sumo"].append(clocks() - t0)
        links = {}
        for j, k in enumerate(order if i % 2 == 0 else order[::-1]):
            # The second channel gets fresh id strings, as libsumo gives each step (a str caches its hash).
            own = ids if j == 0 else [v.encode().decode() for v in ids]
            links[k], ts, tr = channel_step(chans[k], sim.ls.simulation.getTime(), own, xy, sp)
            times[f"{k}_step"].append(ts)
            times[f"{k}_rates"].append(tr)
        if len(links) == 2:
            cmp.add(links["reference"], links["fused"])
        counts.append(len(ids))
    sim.ls.close()
    info = dict(sim=sim, grid=grid, warmup_s=t, counts=counts, numba=fz.AVAILABLE, last=links[kinds[-1]])
    return {k: 1e3 * np.asarray(v).reshape(-1, 2) for k, v in times.items()}, chans, cmp, info


def report(args, ms, chans, cmp, info):
    """The markdown tables; returns (text, whether the two channels agree)."""
    def stats(x):
        return " | ".join(f"{x[:, c].mean():.2f} / {np.median(x[:, c]):.2f} / {np.percentile(x[:, c], 90):.2f} ms"
                          for c in (0, 1))

    def ratio(a, b, f, bold=False):
        r = " | ".join(f"{100 * f(a[:, c]) / f(b[:, c]):.1f} %" for c in (0, 1))
        return "**" + r.replace(" | ", "** | **") + "**" if bold else r

    sumo, sim, counts = ms["sumo"], info["sim"], info["counts"]
    total = {k: ms[f"{k}_step"] + ms[f"{k}_rates"] for k in chans}
    net = sim.net.relative_to(sim.home) if sim.net.is_relative_to(sim.home) else sim.net
    timing = [("SUMO step: simulationStep + subscriptions (mean / median / p90)", stats(sumo))]
    for k in chans:
        timing += [(f"{k}: channel.step", stats(ms[f"{k}_step"])),
                   (f"{k}: uplink + downlink rates of all vehicles", stats(ms[f"{k}_rates"])),
                   (f"{k}: channel total", stats(total[k])),
                   (f"**{k}: channel / SUMO step, ratio of means**", ratio(total[k], sumo, np.mean, True)),
                   (f"{k}: channel / SUMO step, ratio of medians", ratio(total[k], sumo, np.median))]
    rows = [("scenario", f"{net}, {len(sim.routes)} route files, --scale {args.scale:g}"),
            ("vehicles present (mean / min / max)", f"{np.mean(counts):.0f} / {min(counts)} / {max(counts)}"),
            ("RSUs", f"{args.rsus} (grid {info['grid'][0]} x {info['grid'][1]} over the net boundary)"),
            ("timed steps", f"{args.steps} (after {info['warmup_s']:.0f} s of warm-up)")]
    rows += [(f"{k}: handovers / ping-pongs / RLF re-attachments",
              f"{ch.handover_count} / {ch.ping_pong_count} / {ch.rlf_count}") for k, ch in chans.items()]
    same = True
    if len(chans) == 2:
        ref, fus = chans["reference"], chans["fused"]
        counts_same = [(c.handover_count, c.ping_pong_count, c.rlf_count) for c in (ref, fus)]
        same = counts_same[0] == counts_same[1] and cmp.serving_mismatch == 0
        speed = " | ".join(f"{total['reference'][:, c].mean() / total['fused'][:, c].mean():.2f} x" for c in (0, 1))
        timing.append(("**reference / fused channel time, ratio of means**", speed))
        rows += [("serving RSU differs (vehicle-steps)", str(cmp.serving_mismatch)),
                 ("handover counts equal", "yes" if counts_same[0] == counts_same[1] else "**no**"),
                 ("max abs difference RSRP / uplink SINR / downlink SINR",
                  " / ".join(f"{v:.3g} dB" for v in cmp.max_diff.values()))]
    rows += [("connected share (last step)", f"{np.mean(info['last'].serving >= 0):.3f}"),
             ("load average at the end (1 / 5 / 15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
             ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}, numpy {np.__version__}, numba {numba_version() if info['numba'] else 'absent'}")]
    cmd = "python tools/bench_channel.py " + " ".join(args.argv)
    text = ["# Channel benchmark", "", f"Command: `{cmd.strip()}`", "", "| quantity | value |", "| --- | --- |"]
    text += [f"| {a} | {b} |" for a, b in rows]
    text += ["", "| timing | wall clock | CPU time of the thread |", "| --- | --- | --- |"]
    text += [f"| {a} | {b} |" for a, b in timing]
    extra = f"; fading {args.fading}, bler {args.bler}" if (args.fading, args.bler) != ("none", "none") else ""
    text += ["", "Channel defaults: UMi-Street Canyon at 5.9 GHz, stochastic LOS, shadowing, reuse 1 with interference,",
             f"A3 with hysteresis 0 dB / TTT 0 s{extra}. SUMO and the channels share one process and one core. The CPU time",
             "of the thread leaves out the time other processes take on a loaded machine (both sides).", ""]
    return "\n".join(text), same


def numba_version():
    import numba

    return numba.__version__


def main(argv=None):
    args = parse(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    ms, chans, cmp, info = run(args)
    text, same = report(args, ms, chans, cmp, info)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
