"""SUMO's step time with the real San Francisco fleet: exact replay (moveToXY of every cab, every step)
beside route replay (SUMO drives the map-matched routes), measured side by side in one run.

    python tools/bench_fleet_replay.py [--windows 2] [--start 2008-05-31T06:00] [--hours 1]
                                       [--warmup-s 300] [--steps 1200] [--workers 2]

The cabs of `--windows` consecutive windows (each `--hours` long, from `--start`) are imported from
the shared data (`tools/make_sf_fleet.py`, without SUMO's acceptance run) and laid over one clock
(each window's own: 0 s is its start), with ids `w<k>_...`. Two windows of the
busiest hours give about 400 cabs on the map at once (one gives about 200).

Two child processes run libsumo (one simulation per process, as iovsim runs it) on the same net:
`routes` loads the windows' route files; `exact` loads none and drives the replay files with
`mobility.replay.ExactReplay` (what `ReplaySession` does each step: `before_step` adds the cabs whose
track starts and moves every cab on the map with `vehicle.moveToXY`, then `simulationStep`, then
`after_step` removes the cabs whose track ended). The parent steps them in turn, one step each,
alternating which goes first, so both see the same machine over the same minutes; each child times
its own step (wall clock and the CPU time of its thread). The first `--warmup-s` steps fill the map
and are not timed. Writes tools/results/bench_fleet_replay.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from multiprocessing import Pipe, get_context
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2008-05-31T06:00", help="first window's start (UTC)")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--windows", type=int, default=2, help="consecutive windows laid over one clock")
    ap.add_argument("--warmup-s", type=int, default=300, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=1200, help="timed steps")
    ap.add_argument("--workers", type=int, default=2, help="import processes")
    ap.add_argument("--keep", default="", help="build the inputs in this folder and keep them")
    ap.add_argument("--out", default=str(ROOT / "tools" / "results" / "bench_fleet_replay.md"))
    return ap.parse_args(argv)


def build_inputs(args, work: Path) -> dict:
    """Import the windows; merge their routes and replay tracks onto the first window's clock."""
    import make_sf_fleet as mk

    from iovsim.mobility.fileio import open_text, write_xml
    from iovsim.mobility.replay import read_replay

    start = mk.parse_start(args.start)
    root = ElementTree.Element("routes")
    ElementTree.SubElement(root, "vType", id="trace_car", vClass="passenger")
    vehicles, tracks, import_s = [], [], []
    for k in range(args.windows):
        out = work / f"w{k}"
        if k == 0 and (ROOT / "sumo_scenarios" / "sf_fleet" / "sf.net.xml.gz").exists():
            out.mkdir(parents=True, exist_ok=True)   # the shipped net, so routes match it
            (out / "sf.net.xml.gz").write_bytes((ROOT / "sumo_scenarios" / "sf_fleet" / "sf.net.xml.gz").read_bytes())
        elif k > 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / "sf.net.xml.gz").write_bytes((work / "w0" / "sf.net.xml.gz").read_bytes())
        t = time.perf_counter()
        mk.make(out, start_unix_s=start + k * args.hours * 3600.0, hours=args.hours, workers=args.workers,
                validate=False)
        import_s.append(time.perf_counter() - t)
        with open_text(out / "routes.rou.xml.gz") as f:
            for v in ElementTree.parse(f).getroot().iter("vehicle"):
                v.set("id", f"w{k}_{v.get('id')}")
                vehicles.append((float(v.get("depart")), k, v))
        for tr in read_replay(out / "replay.jsonl.gz"):
            tracks.append({"vehicle_id": f"w{k}_{tr.vehicle_id}", "route": tr.route, "time_s": tr.time_s.tolist(),
                           "x_m": tr.x_m.tolist(), "y_m": tr.y_m.tolist()})
    for _, _, v in sorted(vehicles, key=lambda r: (r[0], r[1])):
        root.append(v)
    write_xml(work / "routes.rou.xml", root)
    with open(work / "replay.jsonl", "w") as f:
        for tr in sorted(tracks, key=lambda d: d["time_s"][0]):
            f.write(json.dumps(tr) + "\n")
    return {"net": str(work / "w0" / "sf.net.xml.gz"), "routes": str(work / "routes.rou.xml"),
            "replay": str(work / "replay.jsonl"), "import_s": import_s, "trips": len(vehicles)}


def child(mode: str, inputs: dict, conn):
    """One libsumo simulation; answers each 'step' with (wall s, thread CPU s, vehicles, before_step wall s,
    before_step thread CPU s)."""
    import sumo

    os.environ.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    from iovsim.mobility.sumo import import_libsumo

    ls = import_libsumo()   # without libsumo's Arrow-version line on stdout

    from iovsim.mobility.replay import ExactReplay

    cmd = ["sumo", "-n", inputs["net"], "--no-step-log", "true", "--no-warnings", "true", "--step-length", "1",
           "--begin", "0", "--ignore-route-errors", "true", "--seed", "1"]
    # as sumo_scenarios/sf_fleet.yaml and sf_fleet_exact.yaml run them
    cmd += ["-r", inputs["routes"], "--time-to-teleport", "300"] if mode == "routes" else ["--time-to-teleport", "-1"]
    try:
        ls.start(cmd)
        replay = ExactReplay(inputs["replay"]).attach(ls) if mode == "exact" else None
    except Exception as e:  # noqa: BLE001 - reported to the parent, which stops
        conn.send(("error", f"{mode}: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", mode))
    while conn.recv() == "step":
        w0, c0 = time.perf_counter(), time.thread_time()
        if replay is not None:
            replay.before_step()
        w1, c1 = time.perf_counter(), time.thread_time()
        ls.simulationStep()
        if replay is not None:
            replay.after_step()
        conn.send((time.perf_counter() - w0, time.thread_time() - c0, ls.vehicle.getIDCount(), w1 - w0, c1 - c0))
    ls.close()


def run(args, inputs: dict) -> dict:
    ctx = get_context("spawn")
    procs, pipes = {}, {}
    for mode in ("routes", "exact"):
        parent, kid = Pipe()
        procs[mode] = ctx.Process(target=child, args=(mode, inputs, kid))
        procs[mode].start()
        kid.close()   # the child's end: a child that dies makes recv raise EOFError here
        pipes[mode] = parent
    for mode in procs:
        status, text = pipes[mode].recv()
        if status == "error":
            raise SystemExit(f"bench_fleet_replay: {text}")
    samples = {m: [] for m in procs}
    for step in range(args.warmup_s + args.steps):
        order = ("routes", "exact") if step % 2 == 0 else ("exact", "routes")
        for mode in order:   # one after the other: never both at once
            pipes[mode].send("step")
            res = pipes[mode].recv()
            if step >= args.warmup_s:
                samples[mode].append(res)
    for mode in procs:
        pipes[mode].send("stop")
        procs[mode].join()
    return {m: np.asarray(v, dtype=float) for m, v in samples.items()}


def stats(a: np.ndarray) -> str:
    return f"{1e3 * a.mean():.2f} / {1e3 * np.median(a):.2f} / {1e3 * np.percentile(a, 90):.2f} ms"


def per_vehicle(a: np.ndarray, col: int) -> str:
    return f"{1e6 * (a[:, col] / np.maximum(a[:, 2], 1)).mean():.1f} us"


def ratio_per_vehicle(e: np.ndarray, r: np.ndarray, col: int) -> float:
    return float((e[:, col] / np.maximum(e[:, 2], 1)).mean() / (r[:, col] / np.maximum(r[:, 2], 1)).mean())


def report(args, inputs: dict, s: dict) -> str:
    r, e = s["routes"], s["exact"]
    rows = [("windows laid over one clock", f"{args.windows} x {args.hours:g} h from {args.start} UTC "
                                           f"({inputs['trips']} trips; import {', '.join(f'{x:.0f} s' for x in inputs['import_s'])})"),
            ("timed steps", f"{args.steps} of 1 s, after {args.warmup_s} untimed"),
            ("vehicles on the map, routes (mean / min / max)", f"{r[:, 2].mean():.0f} / {r[:, 2].min():.0f} / {r[:, 2].max():.0f}"),
            ("vehicles on the map, exact (mean / min / max)", f"{e[:, 2].mean():.0f} / {e[:, 2].min():.0f} / {e[:, 2].max():.0f}"),
            ("load average at the end (1 / 5 / 15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
            ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")]
    timing = [("routes: simulationStep", stats(r[:, 0]), stats(r[:, 1])),
              ("exact: before_step (inserts + moveToXY of every cab on the map)", stats(e[:, 3]), stats(e[:, 4])),
              ("exact: whole step (before_step + simulationStep + after_step)", stats(e[:, 0]), stats(e[:, 1])),
              ("exact: whole step per vehicle on the map", per_vehicle(e, 0), per_vehicle(e, 1)),
              ("routes: step per vehicle on the map", per_vehicle(r, 0), per_vehicle(r, 1)),
              ("**exact / routes, ratio of mean step times per vehicle**",
               f"**{ratio_per_vehicle(e, r, 0):.2f} x**", f"**{ratio_per_vehicle(e, r, 1):.2f} x**"),
              ("**exact / routes, ratio of mean step times**", f"**{e[:, 0].mean() / r[:, 0].mean():.2f} x**",
               f"**{e[:, 1].mean() / r[:, 1].mean():.2f} x**")]
    cmd = "python tools/bench_fleet_replay.py " + " ".join(args.argv)
    text = ["# Exact replay vs route replay at fleet scale (San Francisco, Cabspotting)", "",
            f"Command: `{cmd.strip()}`", "", "| quantity | value |", "| --- | --- |"]
    text += [f"| {a} | {b} |" for a, b in rows]
    text += ["", "| timing (mean / median / p90) | wall clock | CPU time of the thread |", "| --- | --- | --- |"]
    text += [f"| {a} | {b} | {c} |" for a, b, c in timing]
    text += ["", "Both simulations run libsumo in their own process on the same net, one step each in turn "
             "(alternating which goes first), so both see the same load. Exact replay's step includes iovsim's "
             "`ExactReplay` bookkeeping (interpolating each track, inserting and removing cabs). Route replay's "
             "vehicles follow SUMO's car-following model and traffic lights, so their count drifts from the "
             "replay's (trips end when SUMO's driver arrives, not when the GPS track ends); the ratio per vehicle "
             "allows for that. In exact replay SUMO's `moveToXY` (it looks for the lane nearest each position) is "
             "most of `before_step`; the rest is iovsim interpolating the tracks.", ""]
    return "\n".join(text)


def main(argv=None):
    args = parse(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="iovsim_bench_fleet_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        inputs = build_inputs(args, work)
        samples = run(args, inputs)
    text = report(args, inputs, samples)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
