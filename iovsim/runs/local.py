"""A bounded pool on this machine: at most `jobs` runs at once, each in its own child process.

Threads only wait on their child (`os.wait4`); the work happens in the children, so the GIL is
not a bottleneck, and a failing run ends its own thread's task without touching the others.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable

from iovsim.runs.plan import RunSpec


def run_local(specs: list[RunSpec], execute_one: Callable[[RunSpec], dict], jobs: int,
              on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Run `execute_one(spec)` for every spec, `jobs` at a time; records in the order of `specs`."""
    records: dict[int, dict] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="iovsim-run") as pool:
        futures = {pool.submit(execute_one, s): i for i, s in enumerate(specs)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                rec = fut.result()
            except Exception as e:  # noqa: BLE001 - one run's trouble (a full disk, ...) must not stop the others
                rec = failed_record(specs[i], e)
            records[i] = rec
            if on_record is not None:
                on_record(rec)
    return [records[i] for i in range(len(specs))]


def failed_record(spec: RunSpec, exc: BaseException) -> dict:
    """The record of a run whose launcher itself failed (no child exit status to read)."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return {"group": spec.group, "seed": spec.seed, "run_dir": str(spec.run_dir), "status": "failed",
            "error": msg, "attempts": 0, "peak_rss_bytes": None, "wall_time_s": None}
