"""The same runs as Ray tasks: each task starts the same `iovsim run` child as the local pool, so a
run's files are byte-identical to the local backend's for the same seed and thread count.

Each task declares what one run needs (`num_cpus` = its torch threads, `memory` = its expected peak)
so Ray packs them onto nodes. The config file and the output folder must be at the same path on
every node (a shared filesystem), and iovsim must be importable there.
"""
from __future__ import annotations

from typing import Callable

from iovsim.runs.local import failed_record
from iovsim.runs.plan import PlanError, RunSpec


def import_ray():
    try:
        import ray
    except ImportError:
        raise PlanError("--backend ray needs Ray: pip install 'iovsim[ray]'") from None
    return ray


def run_ray(specs: list[RunSpec], execute_one: Callable[[RunSpec], dict], num_cpus: int, memory_bytes: int,
            address: str | None = None, on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Submit every run as one Ray task; records in the order of `specs`. Uses a running Ray session
    if there is one, else connects to `address` (or starts a local instance) and shuts it down after."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=num_cpus, memory=int(memory_bytes), max_retries=0)(_call)
        pending = {task.remote(execute_one, s): i for i, s in enumerate(specs)}
        records: dict[int, dict] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            try:
                rec = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - a lost worker or node fails one run, not the others
                rec = failed_record(specs[i], e)
            records[i] = rec
            if on_record is not None:
                on_record(rec)
        return [records[i] for i in range(len(specs))]
    finally:
        if started:
            ray.shutdown()


def _call(execute_one, spec):
    return execute_one(spec)
