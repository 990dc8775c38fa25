"""Run a plan to its end on a backend, then write the statistics, the run table and the report.

Shared by `iovsim compare` (groups are strategies) and `iovsim sweep` (groups are grid points).
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from iovsim.runs.plan import RunSpec, describe_addition, identity, make_specs, record_plan
from iovsim.runs.process import execute, run_record

DEFAULT_TASK_MEMORY_BYTES = 2 * 2**30   # a tiny run peaks near 0.9 GiB; the paper config near 2 GiB


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads(jobs: int) -> int:
    """torch threads per run so that jobs x threads <= cores."""
    return max(1, available_cores() // max(1, jobs))


def gpu_fraction(fl_cfg, jobs: int, runs: int, backend: str) -> float:
    """Each run's share of the GPU, passed to the runs as `fl.gpu_memory_fraction`: 1/K where the local
    backend runs K > 1 runs at once on a GPU (`fl.device` cuda, or auto on a machine with one) and the
    config gives no share of its own; else 0, and nothing is passed (a CPU run's config stays as it was)."""
    if backend != "local" or fl_cfg.gpu_memory_fraction or fl_cfg.device == "cpu" or min(jobs, runs) <= 1:
        return 0.0
    from iovsim.fl.families.lora import pick_device  # resolves `auto` as the run will
    from iovsim.fl.gpu_share import runs_share

    if pick_device(fl_cfg.device).type != "cuda":
        return 0.0

    return runs_share(jobs, runs)


def run_groups(kind: str, group_label: str, config_path: Path, cfg, sets: dict, groups: list[tuple[str, dict]],
               seeds: str | None, out_dir: Path | None, baseline: str | None, *, jobs: int = 1,
               threads: int | None = None, backend: str = "local", address: str | None = None,
               memory_bytes: int | None = None, progress=None) -> tuple[Path, list[dict]]:
    """What compare and sweep share: check the baseline, default the folder to `<runs_dir>/<name>-<kind>`,
    and run every (group, seed) with `run_plan`. Returns the folder and one record per run."""
    from iovsim.runs.plan import PlanError, parse_seeds

    labels = [g for g, _ in groups]
    baseline = baseline or labels[0]
    if baseline not in labels:
        raise PlanError(f"--baseline {baseline}: expected one of {', '.join(labels)}")
    out_dir = Path(out_dir or cfg.output.runs_path() / f"{cfg.name}-{kind}")
    seed_list = parse_seeds(seeds, cfg.seed)
    records = run_plan(kind, group_label, config_path, sets, groups, seed_list, out_dir,
                       baseline=baseline, jobs=jobs, threads=threads, backend=backend, address=address,
                       memory_bytes=memory_bytes or DEFAULT_TASK_MEMORY_BYTES, report=cfg.output.report,
                       progress=progress, gpu_share=gpu_fraction(cfg.fl, jobs, len(groups) * len(seed_list), backend))
    return out_dir, records


def run_plan(kind: str, group_label: str, config_path: Path, sets: dict, groups: list[tuple[str, dict]],
             seeds: list[int], out_dir: Path, *, baseline: str | None = None, jobs: int = 1,
             threads: int | None = None, backend: str = "local", address: str | None = None,
             memory_bytes: int = DEFAULT_TASK_MEMORY_BYTES, report: bool = True, progress=None,
             gpu_share: float = 0.0) -> list[dict]:
    """Bring every (group, seed) run to its end and write `<kind>.csv/.md`, `runs.csv`, `report.html`;
    `gpu_share` > 0 is each run's `fl.gpu_memory_fraction` (`gpu_fraction`)."""
    out_dir = Path(out_dir)
    specs = make_specs(groups, seeds, out_dir)
    old_runs = record_plan(out_dir, identity(kind, config_path, sets), specs)
    added = describe_addition(out_dir, kind, group_label, old_runs, specs)
    if added and progress is not None:  # the folder now holds more than this command's tables show
        progress.message(added)
    threads = threads or default_threads(jobs)
    execute_one = partial(execute, config_path=Path(config_path).resolve(), sets=sets, threads=threads,
                          gpu_fraction=gpu_share)
    names = [g for g, _ in groups]
    done: dict[tuple, dict] = {}

    def on_record(rec: dict) -> None:
        done[(rec["group"], rec["seed"])] = rec
        if progress is not None:
            tail = f": {rec['error']}" if rec["error"] else ""
            progress.message(f"{group_label} {rec['group']} seed {rec['seed']}: {rec['status']}{tail} "
                             f"({len(done)}/{len(specs)})")
        # after every run, so that a long comparison keeps what it has
        _write(out_dir, kind, group_label, specs, done, names, baseline, seeds)

    if backend == "local":
        from iovsim.runs.local import run_local

        records = run_local(specs, execute_one, jobs, on_record)
    elif backend == "ray":
        from iovsim.runs.ray_backend import run_ray

        records = run_ray(specs, execute_one, threads, memory_bytes, address, on_record)
    else:
        raise ValueError(f"--backend {backend}: expected local or ray")
    table, csv_path = _write(out_dir, kind, group_label, specs, done, names, baseline, seeds)
    if report:
        try:
            from iovsim.runs.stats import round_bands
            from iovsim.viz.report import write_seeds_report

            write_seeds_report(out_dir, kind, group_label, table, records, round_bands(records), baseline)
        except Exception as e:  # noqa: BLE001 - a figure problem must not lose the tables
            if progress is not None:
                progress.message(f"{kind} report not written: {e}")
    return records


def _write(out_dir, kind, group_label, specs: list[RunSpec], done: dict, names, baseline, seeds):
    from iovsim.runs.stats import collect, summarize
    from iovsim.runs.table import write_tables

    records = [done.get((s.group, s.seed)) or run_record(s) for s in specs]
    table = summarize(collect(records), names, baseline)
    return table, write_tables(out_dir, kind, group_label, table, records, baseline, seeds)
