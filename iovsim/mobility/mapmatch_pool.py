"""Map matching in worker processes: `trajectories import --workers N`, and the pool of net-holding
workers the fleet import (`traces_fleet`) runs its files in.

Each trip is matched on its own (`mapmatch.match_trip` reads nothing but the trip and the net), so
the trips are dealt out in chunks to N spawned processes, each of which reads the net once and the
matcher's index from `netindex_cache` (which the parent fills first). The matched trips come back in
their input order, so N workers write the routes one worker writes (tested). `spawn`, not `fork`:
no inherited threads or locks; as with any `spawn` pool, a script calling this needs a main guard.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from iovsim.mobility.mapmatch import count_matched, match_trip, match_trips
from iovsim.mobility.traces_clean import Trip
from iovsim.mobility.traces_report import ImportReport

WORKER: dict = {}
"""In a worker of `net_pool`: `net` (read once) and the state the pool was made with."""


def net_pool(workers: int, net, net_path: str | Path, cache_dir: str | Path | None = None,
             vclass: str = "passenger", **state) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each holding the net read from `net_path` and the matcher's
    index for `vclass` in `WORKER`, beside `state`. The index is filled into the cache here first
    (from `net`), so that the workers only read it."""
    from iovsim.mobility.netindex_cache import cached_index

    net_path = str(Path(net_path).resolve())
    cache = str(cache_dir) if cache_dir is not None else None
    cached_index(net, net_path, vclass, cache)
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(net_path, cache, vclass, state))


def _init_worker(net_path: str, cache_dir: str | None, vclass: str, state: dict) -> None:
    from iovsim.mobility.net import load_net
    from iovsim.mobility.netindex_cache import cached_index

    net = load_net(net_path)
    cached_index(net, net_path, vclass, cache_dir)
    WORKER.update(state, net=net)


def _match_chunk(trips: list[Trip]) -> list[Trip]:
    return [match_trip(t, WORKER["net"], **WORKER["kw"]) for t in trips]


def chunks(n_items: int, workers: int) -> list[range]:
    """Contiguous index ranges, ~4 per worker so that a slow chunk does not hold the others up."""
    size = max(1, -(-n_items // (4 * workers)))
    return [range(i, min(i + size, n_items)) for i in range(0, n_items, size)]


def match_trips_parallel(trips: list[Trip], net, net_path: str | Path, report: ImportReport | None = None, *,
                         workers: int = 2, cache_dir: str | Path | None = None, **kw) -> list[Trip]:
    """`mapmatch.match_trips` in `workers` processes: the same trips, matched, in the same order."""
    with net_pool(workers, net, net_path, cache_dir, kw.get("vclass", "passenger"), kw=kw) as pool:
        futures = [pool.submit(_match_chunk, [trips[i] for i in r]) for r in chunks(len(trips), workers)]
        matched = [t for f in futures for t in f.result()]
    trips[:] = matched   # callers hold the list: give them the matched trips in place, as match_trips does
    return count_matched(trips, report)


def match_in(workers: int, trips: list[Trip], net, net_path: str | Path, report: ImportReport | None = None,
             **kw) -> list[Trip]:
    """Match here (`workers` 1, or a single trip) or in `workers` processes: the same result either way."""
    if workers > 1 and len(trips) > 1:
        return match_trips_parallel(trips, net, net_path, report, workers=workers, **kw)
    return match_trips(trips, net, report, **kw)
