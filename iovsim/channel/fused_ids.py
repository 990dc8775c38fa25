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
    """(start, end) and FNV-1a hash of each of the `n` NUL-separated ids of `buf`; False (and nothing
    written) when `buf` does not hold n - 1 separators (an id holds one)."""
    seps = 0
    for i in range(buf.size):
        seps += buf[i] == 0
    if seps != max(n - 1, 0):
        return False
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
    return True


@jit
def _insert(buf, span, hsh, table, k):
    """Row k into this step's table (a repeated id: its slot now holds k); whether it was repeated."""
    mask = np.uint64(table.size - 1)
    h, i = hsh[k], hsh[k] & mask
    while table[i] >= 0:
        q = table[i]
        if hsh[q] == h and _same(buf, span[k, 0], span[k, 1], buf, span[q, 0], span[q, 1]):
            table[i] = k
            return True
        i = (i + np.uint64(1)) & mask
    table[i] = k
    return False


@jit
def _probe(buf, a0, a1, h, pbuf, pspan, phash, ptable):
    """Row of bytes buf[a0:a1] (hash h) in the previous step's table, -1 if absent."""
    mask = np.uint64(ptable.size - 1)
    i = h & mask
    while ptable[i] >= 0:
        p = ptable[i]
        if phash[p] == h and _same(buf, a0, a1, pbuf, pspan[p, 0], pspan[p, 1]):
            return p
        i = (i + np.uint64(1)) & mask
    return -1


@jit
def match_ids(buf, n, pbuf, pspan, phash, ptable, prepeat, span, hsh, table, prev):
    """Previous row of each id of `buf` (-1 if new) into `prev`, from the previous step's buffer `pbuf`,
    spans, hashes and table (`ptable`: hash slot -> row, -1 empty; a power of two in size) and whether
    an id was repeated in it (`prepeat`); fills this step's `span`, `hsh` and `table` and returns 1
    when an id repeats in this step (its last row is the one kept, as a dict would), else 0; -1 (and
    nothing done) when an id holds the separator. Without
    repeats each id is first tried against the row after the previous match (ids keep their order
    between steps: sequential reads of both buffers), and looked up in the table when that fails."""
    if not _split_hash(buf, n, span, hsh):
        return -1
    table[:] = -1
    repeat = False
    for k in range(n):
        repeat |= _insert(buf, span, hsh, table, k)
    pn, g = phash.size, 0
    for k in range(n):
        h, a0, a1 = hsh[k], span[k, 0], span[k, 1]
        if not prepeat and g < pn and phash[g] == h and _same(buf, a0, a1, pbuf, pspan[g, 0], pspan[g, 1]):
            r = g
        else:
            r = _probe(buf, a0, a1, h, pbuf, pspan, phash, ptable)
        prev[k] = r
        if r >= 0:
            g = r + 1
    return 1 if repeat else 0
