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
    from iovsim.runs.driver import DEFAULT_TASK_MEMORY_BYTES, run_plan
    from iovsim.runs.plan import PlanError, grid_groups, parse_grid, parse_seeds

    cfg = load_config(config_path, sets)
    grid = parse_grid(grid_items)
    if "seed" in grid:
        raise PlanError("--grid seed=...: seeds are given with --seeds")
    groups = grid_groups(grid)
    for _, over in groups:  # every point must be a valid config before anything runs
        load_config(config_path, {**sets, **over})
    labels = [g for g, _ in groups]
    baseline = baseline or labels[0]
    if baseline not in labels:
        raise PlanError(f"--baseline {baseline}: expected one of the grid points ({', '.join(labels)})")
    out_dir = Path(out_dir or Path(cfg.output.runs_dir) / f"{cfg.name}-sweep")
    records = run_plan("sweep", "point", config_path, sets, groups, parse_seeds(seeds, cfg.seed), out_dir,
                       baseline=baseline, jobs=jobs, threads=threads, backend=backend, address=address,
                       memory_bytes=memory_bytes or DEFAULT_TASK_MEMORY_BYTES, report=cfg.output.report,
                       progress=progress)
    return out_dir, records
