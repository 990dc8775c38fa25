"""`iovsim compare`: several strategies over several seeds, each (strategy, seed) one run in its own process.

Common random numbers come from the design: every random stream is derived from the one seed
and from what it serves (SUMO, channel, partition, init, per-vehicle training), never from a
shared global state, so within a seed changing the strategy changes nothing else. Across seeds,
iovsim.runs.stats gives means, intervals and paired differences against a baseline strategy.
"""
from __future__ import annotations

import logging
from pathlib import Path


def base_name(name: str) -> str:
    """The registered strategy of a comparison group: `homolora@r4` is HomoLoRA under the label `r4`,
    so one strategy can run in several settings side by side (`per_strategy: {homolora@r4: {rank: 4}}`).
    A user's `path/file.py:Class` keeps its name whole."""
    head, sep, label = name.rpartition("@")
    return head if sep and head and label and "/" not in label and ":" not in label else name


def strategy_params(cfg, name: str) -> dict:
    """Parameters of strategy group `name` in a comparison: `per_strategy[name]`, else those of its base
    strategy (`per_strategy[base]`, else `params` if it is the config's strategy)."""
    if name in cfg.strategy.per_strategy:
        return dict(cfg.strategy.per_strategy[name])
    base = base_name(name)
    if base != name:
        return strategy_params(cfg, base)
    return dict(cfg.strategy.params) if name == cfg.strategy.name else {}


MIN_COMPARE_TEST_SAMPLES = 1000
log = logging.getLogger("iovsim.compare")


def run_compare(config_path: Path, sets: dict, strategies: list[str], seeds: str | None = None,
                out_dir: Path | None = None, baseline: str | None = None, jobs: int = 1, threads: int | None = None,
                backend: str = "local", address: str | None = None, memory_bytes: int | None = None,
                progress=None) -> tuple[Path, list[dict]]:
    """Every (strategy, seed) run in `<out>/<strategy>/seed-<s>/`; compare.csv/.md, runs.csv, report.html.

    `seeds`: a count from the config's seed on, or a comma-separated list. Finished runs in out_dir
    are kept, interrupted ones resumed. Returns out_dir and one record per run (status, error, memory).
    """
    from iovsim.config import ConfigError, load_config
    from iovsim.runs.driver import run_groups
    from iovsim.strategies import create

    cfg = load_config(config_path, sets)
    for tc in cfg.fl.tasks:  # comparisons need a test set whose standard error is below the effects
        if tc.test_samples < MIN_COMPARE_TEST_SAMPLES:
            log.warning("%s: fl.tasks %s: %d test samples give a standard error up to %.1f points; comparisons "
                        "should use >= %d", config_path, tc.name, tc.test_samples, 50 / tc.test_samples ** 0.5,
                        MIN_COMPARE_TEST_SAMPLES)
    groups = []
    for name in strategies:  # fail before anything runs
        params = strategy_params(cfg, name)
        try:
            create(base_name(name), params, base_dir=cfg.base_dir)
        except ValueError as e:
            raise ConfigError("--strategies", name, str(e)) from None
        groups.append((name, {"strategy.name": base_name(name), "strategy.params": params}))
    return run_groups("compare", "strategy", config_path, cfg, sets, groups, seeds, out_dir, baseline, jobs=jobs,
                      threads=threads, backend=backend, address=address, memory_bytes=memory_bytes,
                      progress=progress)
