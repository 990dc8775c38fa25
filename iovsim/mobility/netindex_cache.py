"""The map matcher's net index kept on disk: numpy arrays (.npz, no pickle), named by the net file's hash.

Building the index (`mapmatch_hmm.NetIndex.build`) walks every edge and connection of the net
through sumolib (about 1 s for San Francisco's 5,200 edges); every worker of a parallel import
would do it again. The arrays are stored once as `<cache_dir>/netindex-<sha256 of the net
file>-<vclass>-v<FORMAT>.npz` and read back with `allow_pickle=False`, so a cache file can hold
numbers and edge ids only: loading one runs no code from it. A changed net has another hash, so a
stale file is never read; a file that does not fit the net (edge ids it lacks, arrays missing or
of the wrong length) is rebuilt and rewritten.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from iovsim.mobility.mapmatch_hmm import NetIndex

FORMAT = 1


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/iovsim` (default ~/.cache/iovsim)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iovsim"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_path(net_path: str | Path, vclass: str, cache_dir: str | Path | None = None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"netindex-{file_sha256(net_path)}-{vclass}-v{FORMAT}.npz"


def cached_index(net, net_path: str | Path, vclass: str = "passenger",
                 cache_dir: str | Path | None = None) -> tuple[NetIndex, bool]:
    """The index of `net` (read from `net_path`) for `vclass`, from the cache when it is there, else
    built and stored. Returns (index, whether it came from the cache); the index is also the one
    `NetIndex.of(net, vclass)` returns from now on."""
    path = cache_path(net_path, vclass, cache_dir)
    index = _load(path, net)
    hit = index is not None
    if index is None:
        index = NetIndex.build(net, vclass)
        _save(path, index)
    return index.keep_on(net, vclass), hit


def _save(path: Path, index: NetIndex) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")   # workers may write at once: rename is atomic
    ids = np.array([e.getID() for e in index.edges], dtype=str)
    np.savez(tmp, edge_ids=ids, **index.arrays())
    os.replace(tmp, path)


def _load(path: Path, net) -> NetIndex | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in NetIndex.ARRAYS}
            ids = z["edge_ids"].tolist()
        edges = [net.getEdge(i) for i in ids]
    except (OSError, ValueError, KeyError):   # unreadable, not an index, or edges this net lacks
        return None
    n = len(edges)
    if not (len(arrays["length_m"]) == len(arrays["time_s"]) == n and len(arrays["succ_ptr"]) == n + 1):
        return None
    return NetIndex(edges, arrays)
