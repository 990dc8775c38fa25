"""`iovsim run | check | compare | sweep | scenario | trajectories | gui | report`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import get_args

import yaml


class CliError(Exception):
    """Shown as one line, without a traceback."""


def _user_errors():
    from iovsim.config import ConfigError
    from iovsim.experiment import RunError
    from iovsim.fl.data import DataError
    from iovsim.mobility.scenario import ScenarioError

    return (ConfigError, RunError, DataError, ScenarioError, CliError, FileNotFoundError, ValueError)


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise CliError(f"--set {item}: expected FIELD=VALUE, e.g. --set fl.rounds=3")
        key, value = item.split("=", 1)
        if not key.strip():
            raise CliError(f"--set {item}: expected FIELD=VALUE with a field name, e.g. --set fl.rounds=3")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise CliError(f"--set {item}: the value is not valid YAML ({getattr(e, 'problem', None) or e})") from None
    return out


def _load(config: str | None, overrides: dict):
    from iovsim.config import load_config
    from iovsim.experiment import default_config_path

    path = Path(config) if config else default_config_path()
    return load_config(path, overrides)


def _out_to_config(cfg, out: str):
    """`--out DIR`: a command-line path, so relative to the working directory (not the config's folder)."""
    cfg.output.runs_dir, cfg.output.run_name = str(Path(out).parent.absolute()), Path(out).name


def _progress(args):
    from iovsim.viz.progress import Progress

    return Progress(quiet=args.quiet, json_mode=args.json)


def _report(run_dir: Path, progress):
    try:
        from iovsim.viz.report import write_report

        path = write_report(run_dir)
        progress.message(f"report: {path}")
    except Exception as e:  # noqa: BLE001 - a figure problem must not lose a finished run
        progress.message(f"report not written: {e}")


def _track_figures(exp, rounds: int, progress):
    """The report's figures into the configured trackers (artifacts / images), after the report made them."""
    pngs = sorted((exp.run_dir / "figures").glob("*.png"))
    if not exp.cfg.output.trackers or not pngs:
        return
    try:
        from iovsim.trackers import open_trackers

        with open_trackers(exp.cfg.output.trackers, exp.run_dir, exp.cfg.name) as trackers:
            trackers.log_figures(pngs, rounds)
    except Exception as e:  # noqa: BLE001 - a tracker problem must not lose a finished run
        progress.message(f"figures not sent to the trackers: {e}")


def cmd_run(args) -> int:
    from iovsim.experiment import Experiment, new_run_dir

    if args.resume:
        # a resumed run is its folder's config.yaml; anything else given would be silently dropped
        given = [name for name, value in (("CONFIG", args.config), ("--set", args.set), ("--out", args.out)) if value]
        if given:
            raise CliError(f"run --resume: continues RUN_DIR with its own config.yaml; CONFIG, --set and --out "
                           f"cannot be given with it (given: {', '.join(given)}; to run more rounds, start a new "
                           "run with --set fl.rounds=N)")
        exp = Experiment.resume(Path(args.resume), progress=_progress(args))
    else:
        cfg = _load(args.config, _parse_set(args.set))
        if args.out:
            _out_to_config(cfg, args.out)
        exp = Experiment(cfg, new_run_dir(cfg), progress=_progress(args))
    progress = exp.progress
    progress.message(f"run folder: {exp.run_dir}")
    summary = exp.run()
    if exp.cfg.output.report:
        _report(exp.run_dir, progress)
        _track_figures(exp, int(summary.get("rounds", 0)), progress)
    progress.event("summary", **summary)
    return 0


def cmd_check(args) -> int:
    """Load, validate and build an experiment (SUMO through the warm-up, RSUs, model, data, strategy); no training."""
    import tempfile

    from iovsim.experiment import Experiment

    cfg = _load(args.config, _parse_set(args.set))
    progress = _progress(args)
    if args.no_build:
        from iovsim.engine.build import create_strategy

        create_strategy(cfg)  # imports a user's file and checks the parameters: a second at most
        progress.message(f"{cfg.source_path}: ok (fields and strategy checked; model, data and SUMO not built)")
        return 0
    with tempfile.TemporaryDirectory(prefix="iovsim-check-") as scratch:  # SUMO's outputs, the logs: thrown away
        info = Experiment(cfg, Path(scratch) / "run", progress=progress).check()
    progress.message(f"{cfg.source_path}: ok: {info['rsus']} RSUs, tasks {', '.join(info['tasks'])} "
                     f"({', '.join(map(str, info['train_samples']))} training samples), strategy {info['strategy']}")
    progress.event("check", **info)
    return 0


def cmd_gui(args) -> int:
    from iovsim.experiment import Experiment, new_run_dir

    from iovsim.viz.gui_view import parse_view

    parse_view(args.view)  # a bad --view is one line before anything starts
    cfg = _load(args.config, _parse_set(args.set))
    progress = _progress(args)
    if args.out:
        _out_to_config(cfg, args.out)
    exp = Experiment(cfg, new_run_dir(cfg), progress=progress, gui=True,
                     screenshots_dir=Path(args.screenshots) if args.screenshots else None,
                     screenshot_handovers=args.handover_screenshots, gui_view=args.view)
    progress.message(f"run folder: {exp.run_dir}")
    summary = exp.run()
    if args.screenshots and args.gif:
        from iovsim.viz.gui import frames_to_gif

        frames = sorted(Path(args.screenshots).glob("round_*.png"))
        if frames:
            frames_to_gif(frames, Path(args.screenshots) / "rounds.gif")
    if exp.cfg.output.report:
        _report(exp.run_dir, progress)
        _track_figures(exp, int(summary.get("rounds", 0)), progress)
    return 0


def cmd_report(args) -> int:
    from iovsim.viz.report import write_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.csv").exists():
        raise CliError(f"{run_dir}: not a run folder (metrics.csv missing)")
    print(write_report(run_dir))
    return 0


def _runs_kwargs(args) -> dict:
    """Options shared by compare and sweep: seeds, baseline, pool size, backend."""
    if args.jobs < 1:
        raise CliError(f"--jobs {args.jobs}: expected an integer >= 1")
    if args.threads is not None and args.threads < 1:
        raise CliError(f"--threads {args.threads}: expected an integer >= 1")
    if args.address and args.backend != "ray":
        raise CliError("--address: only with --backend ray")
    return {"seeds": args.seeds, "out_dir": Path(args.out) if args.out else None, "baseline": args.baseline,
            "jobs": args.jobs, "threads": args.threads, "backend": args.backend, "address": args.address,
            "memory_bytes": int(args.memory_gb * 2**30) if args.memory_gb else None, "progress": _progress(args)}


def _finish_runs(out: Path, kind: str, records: list[dict]) -> int:
    print(out)
    failed = [r for r in records if r["status"] != "finished"]
    if failed:
        print(f"iovsim: {len(failed)} of {len(records)} runs failed ({out / (kind + '.md')}); "
              "run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args) -> int:
    from iovsim.compare import run_compare

    if args.list:
        from iovsim.strategies import names

        print("\n".join(names()))
        return 0
    if not args.config:
        raise CliError("compare: a CONFIG.yaml is needed (or --list)")
    names = [s.strip() for s in (args.strategies or "").split(",") if s.strip()]
    if not names:
        raise CliError("--strategies: expected a comma-separated list, e.g. homolora,hetlora,ucb_dual")
    out, records = run_compare(Path(args.config), _parse_set(args.set), names,
                               **_runs_kwargs(args))
    return _finish_runs(out, "compare", records)


def cmd_sweep(args) -> int:
    from iovsim.experiment import default_config_path
    from iovsim.runs.sweep import run_sweep

    if not args.grid:
        raise CliError("--grid: expected FIELD=V1,V2,..., e.g. --grid fl.lora_rank=4,8,16")
    out, records = run_sweep(Path(args.config) if args.config else default_config_path(), _parse_set(args.set),
                             args.grid, **_runs_kwargs(args))
    return _finish_runs(out, "sweep", records)


def cmd_scenario(args) -> int:
    from iovsim.mobility.osm import from_osm

    kwargs = {"seed": args.seed, "insertion_period_s": args.period, "begin_s": args.begin, "end_s": args.end,
              "fringe_factor": args.fringe_factor, "allow_fringe": args.allow_fringe,
              "min_distance_m": args.min_distance}
    if args.routes:
        kwargs["routes"] = [Path(r) for r in args.routes]
    for flag, key in (("rsu_placement", "rsu_placement"), ("rsu_count", "rsu_count"), ("rsu_spacing", "rsu_spacing_m"),
                      ("rsu_radius", "rsu_radius_m"), ("rsu_file", "rsu_file")):
        if getattr(args, flag) is not None:
            kwargs[key] = getattr(args, flag)
    path = from_osm(Path(args.osm), Path(args.out), **kwargs)
    print(path)
    return 0


def cmd_trajectories(args) -> int:
    from iovsim.mobility.trajectories import import_traces

    if args.workers < 1:
        raise CliError(f"--workers {args.workers}: expected an integer >= 1")
    report = import_traces([Path(p) for p in args.traces], Path(args.net), Path(args.out), fmt=args.format,
                           columns=args.columns, time_unit=args.time_unit, time_compression=args.compress,
                           begin_s=args.begin, departure_span_s=args.span, max_trips=args.max_trips,
                           max_speed_mps=args.max_speed, gap_s=args.gap, matcher=args.matcher, delta_m=args.delta,
                           validate=not args.no_validate, workers=args.workers)
    print(report.summary())
    return 0


def _common_options(sp, config: bool = True) -> None:
    if config:
        sp.add_argument("config", nargs="?", help="experiment YAML (default: sumo_scenarios/default.yaml)")
        sp.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field, e.g. fl.rounds=3")
        sp.add_argument("--out", help="run folder to create (default: runs/<name>-<time>)")
    sp.add_argument("--quiet", action="store_true", help="print nothing but errors")
    sp.add_argument("--json", action="store_true", help="print one JSON object per event instead of tables")


def _runs_options(sp, kind: str) -> None:
    sp.add_argument("--seeds", help="number of seeds from the config's seed on (3), or a list (1,2,3); default 1")
    sp.add_argument("--baseline", help=f"paired differences against this {kind} (default: the first)")
    sp.add_argument("--jobs", type=int, default=1, help="runs at once on this machine (default 1)")
    sp.add_argument("--threads", type=int, help="torch threads per run (default: cores // jobs)")
    sp.add_argument("--backend", choices=["local", "ray"], default="local",
                    help="local process pool, or Ray tasks (pip install 'iovsim[ray]')")
    sp.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    sp.add_argument("--memory-gb", type=float, help="memory a Ray task declares (default 2)")


def _add_experiment_commands(sub) -> None:
    """run, compare, sweep, gui, report."""
    common, runs_options = _common_options, _runs_options
    r = sub.add_parser("run", help="run an experiment (default config when none is given)")
    common(r)
    r.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    r.set_defaults(func=cmd_run)

    ch = sub.add_parser("check", help="load, validate and build an experiment (SUMO warm-up, RSUs, model, data, "
                        "strategy) without training; exit 2 and one line on bad input")
    ch.add_argument("config", nargs="?", help="experiment YAML (default: sumo_scenarios/default.yaml)")
    ch.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field, e.g. fl.rounds=3")
    ch.add_argument("--no-build", action="store_true", help="only load and validate the config and the strategy (no SUMO, model, data)")
    common(ch, config=False)
    ch.set_defaults(func=cmd_check)

    c = sub.add_parser("compare", help="several strategies over several seeds on common random numbers, "
                       "each run in its own process; statistics with intervals and paired differences")
    common(c)
    c.add_argument("--strategies", help="comma-separated strategy names")
    runs_options(c, "strategy")
    c.add_argument("--list", action="store_true", help="list the registered strategies")
    c.set_defaults(func=cmd_compare)

    sw = sub.add_parser("sweep", help="every combination of config values over several seeds, one table")
    common(sw)
    sw.add_argument("--grid", action="append", metavar="FIELD=V1,V2", help="values of a config field (repeatable)")
    runs_options(sw, "grid point (e.g. fl.lora_rank=4)")
    sw.set_defaults(func=cmd_sweep)

    g = sub.add_parser("gui", help="run an experiment in sumo-gui with RSUs, coverage and handovers drawn")
    common(g)
    g.add_argument("--screenshots", metavar="DIR", help="save a screenshot per round into DIR")
    g.add_argument("--handover-screenshots", action="store_true", help="also a screenshot at each handover")
    g.add_argument("--gif", action="store_true", help="make DIR/rounds.gif from the round screenshots")
    g.add_argument("--view", default="auto", help="what the view shows: auto (follow the busiest federated "
                   "vehicles, 700 m wide; auto:WIDTH_M), net (the whole net), X,Y,WIDTH_M, rsu:INDEX or vehicle:ID")
    g.set_defaults(func=cmd_gui)

    rep = sub.add_parser("report", help="write figures and report.html for a run folder")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)


def _add_data_commands(sub) -> None:
    """scenario from-osm, trajectories import."""
    from iovsim.mobility.config import RsuPlacement
    from iovsim.mobility.trajectories import MATCHERS, TIME_UNITS, TRACE_FORMATS

    sc = sub.add_parser("scenario", help="build scenarios")
    scs = sc.add_subparsers(dest="scenario_command", required=True)
    fo = scs.add_parser("from-osm", help="OSM map -> SUMO net, demand, RSUs and a scenario YAML")
    fo.add_argument("osm")
    fo.add_argument("--out", required=True, help="scenario folder to write")
    fo.add_argument("--period", type=float, default=2.0, help="randomTrips insertion period in seconds (default 2)")
    fo.add_argument("--end", type=float, default=3600.0, help="last departure time of the demand in seconds")
    fo.add_argument("--routes", nargs="*", help="your own route files instead of randomTrips")
    fo.add_argument("--rsu-placement", choices=get_args(RsuPlacement), help="RSU placement")
    fo.add_argument("--rsu-count", type=int, help="number of RSUs")
    fo.add_argument("--begin", type=float, default=0.0, help="first departure time of the demand in seconds")
    fo.add_argument("--fringe-factor", type=float, default=5.0, help="randomTrips: prefer trips from/to the map's edge")
    fo.add_argument("--allow-fringe", action="store_true",
                    help="randomTrips: trips may start and end on any edge (used anyway on a closed network)")
    fo.add_argument("--min-distance", type=float, default=None,
                    help="randomTrips: trips start and end at least this many metres apart (default 300, or a "
                         "quarter of the net's diagonal on a map too small for that)")
    fo.add_argument("--rsu-spacing", type=float, help="minimum RSU spacing in metres")
    fo.add_argument("--rsu-radius", type=float, help="coverage radius drawn and used for the coverage figure (m)")
    fo.add_argument("--rsu-file", help="CSV (lon,lat or x,y) or POI additional file, with --rsu-placement file")
    fo.add_argument("--seed", type=int, default=0)
    fo.set_defaults(func=cmd_scenario)

    tr = sub.add_parser("trajectories", help="GPS traces")
    trs = tr.add_subparsers(dest="traj_command", required=True)
    ti = trs.add_parser("import", help="clean, map-match and write SUMO routes (and an exact-replay file)")
    ti.add_argument("traces", nargs="+", help="trace files (CSV, Cabspotting .txt, FCD .xml)")
    ti.add_argument("--net", required=True, help="SUMO net to match onto")
    ti.add_argument("--out", required=True, help="folder to write")
    ti.add_argument("--format", default="auto", choices=TRACE_FORMATS)
    ti.add_argument("--columns", default="id,time,lat,lon", help="CSV columns for id,time,lat,lon")
    ti.add_argument("--compress", type=float, default=1.0, help="time compression factor (24 = a day into an hour)")
    ti.add_argument("--begin", type=float, default=0.0, help="first departure time in seconds")
    ti.add_argument("--max-speed", type=float, default=60.0,
                    help="no kept step is faster than this (m/s): outliers dropped, two interleaved GPS units told apart")
    ti.add_argument("--gap", type=float, default=180.0, help="split trips on gaps longer than this (s)")
    ti.add_argument("--time-unit", default="auto", choices=TIME_UNITS, help="CSV time column unit")
    ti.add_argument("--span", type=float, help="spread the departures over this many seconds (time compression)")
    ti.add_argument("--max-trips", type=int, help="import at most this many trips")
    ti.add_argument("--matcher", default="hmm", choices=MATCHERS,
                    help="map matcher: hmm (hidden Markov model, Newson & Krumm 2009; default) or sumolib (mapTrace)")
    ti.add_argument("--delta", type=float, default=50.0, help="map-matching search radius (m)")
    ti.add_argument("--no-validate", action="store_true", help="skip the SUMO run that checks the routes")
    ti.add_argument("--workers", type=int, default=1,
                    help="map-match in this many processes (default 1; the same routes whatever the number)")
    ti.set_defaults(func=cmd_trajectories)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iovsim", description="Federated LoRA fine-tuning in Internet-of-Vehicles networks, "
                                "co-simulated with SUMO.")
    sub = p.add_subparsers(dest="command", required=True)
    _add_experiment_commands(sub)
    _add_data_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as e:
        if os.environ.get("IOVSIM_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"iovsim: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iovsim: interrupted; the run folder keeps its last checkpoint (iovsim run --resume RUN_DIR)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
