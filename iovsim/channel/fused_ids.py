"""Compiled matching of vehicle ids between two steps (`rows.VehicleRows`): the ids of a step arrive as
one UTF-8 buffer with NUL separators; each is hashed (FNV-1a, 64 bit) and looked up in the previous
step's open-addressing table, a hit confirmed by comparing the bytes (so the match is exact)."""
from __future__ import annotations

import numpy as np

from iovsim.channel.fused import jit

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)


@jit
def _same(a, a0, a1, b, b0, b1):
    """Whether bytes a[a0:a1] equal b[b0:b1]."""
    if a1 - a0 != b1 - b0:
        return False
    for i in range(a1 - a0):
        if a[a0 + i] != b[b0 + i]:
            return False
    return True


@jit
def _split_hash(buf, n, span, hsh):
    """(start, end) and FNV-1a hash of each of the `n` NUL-separated ids of `buf`."""
    k, s, h = 0, 0, FNV_OFFSET
    for i in range(buf.size):
        c = buf[i]
        if c == 0:
            span[k, 0], span[k, 1], hsh[k] = s, i, h
            k, s, h = k + 1, i + 1, FNV_OFFSET
        else:
            h = (h ^ np.uint64(c)) * FNV_PRIME
    if n:
        span[k, 0], span[k, 1], hsh[k] = s, buf.size, h


@jit
def match_ids(buf, n, pbuf, pspan, phash, ptable, span, hsh, table, prev):
    """Previous row of each id of `buf` (-1 if new) into `prev`, from the previous step's buffer `pbuf`,
    spans, hashes and table (`ptable`: hash slot -> row, -1 empty; size a power of two); fills this
    step's `span`, `hsh` and `table` (all -1 on entry). A repeated id: its last row goes into `table`."""
    _split_hash(buf, n, span, hsh)
    pmask, mask = np.uint64(ptable.size - 1), np.uint64(table.size - 1)
    for k in range(n):
        h, a0, a1 = hsh[k], span[k, 0], span[k, 1]
        r = -1
        i = h & pmask
        while ptable[i] >= 0:
            p = ptable[i]
            if phash[p] == h and _same(buf, a0, a1, pbuf, pspan[p, 0], pspan[p, 1]):
                r = p
                break
            i = (i + np.uint64(1)) & pmask
        prev[k] = r
        i = h & mask
        while table[i] >= 0:
            q = table[i]
            if hsh[q] == h and _same(buf, a0, a1, buf, span[q, 0], span[q, 1]):
                break
            i = (i + np.uint64(1)) & mask
        table[i] = k
