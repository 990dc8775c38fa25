"""`iovsim sweep`: every combination of config values (`--grid fl.lora_rank=4,8,16`) over several seeds,
on the same machinery as `compare` (own process and folder per run, resume, statistics, one table)."""
from __future__ import annotations

from pathlib import Path


def run_sweep(config_path: Path, sets: dict, grid_items: list[str], seeds: str | None = None,
              out_dir: Path | None = None, baseline: str | None = None, jobs: int = 1, threads: int | None = None,
              backend: str = "local", address: str | None = None, memory_bytes: int | None = None,
              progress=None) -> tuple[Path, list[dict]]:
    """Runs in `<out>/<field=value>/seed-<s>/`; sweep.csv/.md, runs.csv, report.html. Paired differences
    are against `baseline` (a point label such as `fl.lora_rank=4`), by default the first point."""
    from iovsim.config import load_config
    from iovsim.runs.driver import run_groups
    from iovsim.runs.plan import PlanError, grid_groups, parse_grid

    cfg = load_config(config_path, sets)
    grid = parse_grid(grid_items)
    if "seed" in grid:
        raise PlanError("--grid seed=...: seeds are given with --seeds")
    groups = grid_groups(grid)
    for _, over in groups:  # every point must be a valid config before anything runs
        load_config(config_path, {**sets, **over})
    return run_groups("sweep", "point", config_path, cfg, sets, groups, seeds, out_dir, baseline, jobs=jobs,
                      threads=threads, backend=backend, address=address, memory_bytes=memory_bytes,
                      progress=progress)
