"""The staging area: rows handed over every ``segment_flush_sec`` that wait for the rotation
(owned by the capture's io thread; docs/capture.md "Files, rotation, durability").

Why not a list of per-partition Arrow slices: at 300 symbols a minute of hand-overs is ~36,000
partition slices, and each slice, kept as a ``pa.Table``, costs ~6 KB of Arrow metadata (the
table, its chunked arrays, array data) -- ~210 MB a minute against ~90 MB of rows, all of it
glibc heap freed at once at rotation (docs/performance.md "Where a minute of staged rows
went"). Here a partition keeps only (table, offset, rows) references into its stream's table
of each hand-over (one table per stream and second, shared by every symbol); at rotation each
run of partitions is gathered from them into one chunk (``_batches``): the same rows, in the
same order, as concatenating the slices.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .buffers import Batch, Span

Key = tuple[str, str, str]   # (stream, date, symbol)


class _Staged:
    """One partition's staged rows: spans of hand-over tables, in arrival order."""
    __slots__ = ("spans", "rows", "first_recv_ms", "trade_ids", "segment_paths")

    def __init__(self, first_recv_ms: int) -> None:
        self.spans: list[tuple[pa.Table, int, int]] = []
        self.rows = 0                 # the spans' rows, summed as they arrive
        self.first_recv_ms = first_recv_ms
        self.trade_ids: list[int] = []
        self.segment_paths: list[str] = []


class StagingArea:
    def __init__(self) -> None:
        self._parts: dict[Key, _Staged] = {}

    def add(self, span: Span, segment_path: str | None = None) -> None:
        key = (span.stream, span.date, span.symbol)
        st = self._parts.get(key)
        if st is None:
            st = self._parts[key] = _Staged(span.first_recv_ms)
        elif span.first_recv_ms < st.first_recv_ms:
            st.first_recv_ms = span.first_recv_ms
        st.spans.append((span.table, span.offset, span.rows))
        st.rows += span.rows
        st.trade_ids.extend(span.trade_ids)
        if segment_path is not None and segment_path not in st.segment_paths:
            st.segment_paths.append(segment_path)

    def __len__(self) -> int:
        return len(self._parts)

    def rows(self) -> int:
        return sum(st.rows for st in self._parts.values())

    def trade_ids(self) -> Iterator[tuple[str, list[int]]]:
        """(symbol, staged trade ids) per trade partition (for the checkpoint)."""
        for (stream, _, sym), st in self._parts.items():
            if stream == "agg_trade":
                yield sym, st.trade_ids

    def take(self) -> Iterator[Batch]:
        """Empty the area (now): one batch per partition, in the order partitions first
        arrived, each made only when the previous one has been taken. Each batch names the
        segment files its rows were appended to (shared with the other symbols of its stream
        and date; capture/segments.py)."""
        parts, self._parts = self._parts, {}
        return _batches(parts)


GROUP_ROWS = 1 << 14   # rows gathered at once at rotation: bounds the copies held (~7 MB of book)
_POOL = pa.system_memory_pool()   # glibc's heap, which trim_heap returns after each rotation


def _batches(parts: dict[Key, _Staged]) -> Iterator[Batch]:
    """One batch per partition, in the order partitions first arrived; each batch's table is
    one chunk, gathered in C from the hand-over tables.

    Why gathered: slicing every hand-over table per partition and concatenating the slices
    (36,000 ``Table.slice`` calls a minute at 300 symbols, ~10 µs each) made 60-chunk tables,
    and Parquet writes a 60-chunk table ~1.6x slower than one chunk. Now a run of consecutive
    partitions of one stream (up to ``GROUP_ROWS`` rows) is gathered with one ``take`` per
    hand-over table and one to put the rows in order, and each partition is a zero-copy slice
    of that (docs/performance.md §12). The rows and their order are unchanged; only the
    chunking (and so the Parquet pages) differ. Nothing takes from the concatenated minute:
    Arrow would first concatenate whole columns (+90 MB at 300 symbols, measured)."""
    keys = list(parts)
    i = 0
    while i < len(keys):
        group = _group(parts, keys, i)
        yield from _gathered(parts, group)
        i += len(group)


def _group(parts: dict[Key, _Staged], keys: list[Key], i: int) -> list[Key]:
    """Consecutive keys of one stream (so one schema) from ``i``, up to GROUP_ROWS rows."""
    stream, rows, group = keys[i][0], 0, []
    for key in keys[i:]:
        n = parts[key].rows
        if group and (key[0] != stream or rows + n > GROUP_ROWS):
            break
        group.append(key)
        rows += n
    return group


def _ranges(starts: list[int], lens: list[int]) -> np.ndarray:
    """The indices of every range [start, start + len), in order, as one array."""
    s = np.asarray(starts, np.int64)
    n = np.asarray(lens, np.int64)
    first = np.cumsum(n) - n          # where each range starts in the output
    return np.repeat(s - first, n) + np.arange(int(n.sum()), dtype=np.int64)


def _gathered(parts: dict[Key, _Staged], group: list[Key]) -> Iterator[Batch]:
    # per hand-over table, the ranges this group needs: (where they go, offset, rows)
    need: dict[int, tuple[pa.Table, list[int], list[int], list[int]]] = {}
    total = 0
    for key in group:
        for t, off, n in parts[key].spans:
            e = need.get(id(t))
            if e is None:
                e = need[id(t)] = (t, [], [], [])
            e[1].append(total)
            e[2].append(off)
            e[3].append(n)
            total += n
    pieces, dest = [], []
    for t, outs, offs, lens in need.values():
        pieces.append(pc.take(t, _ranges(offs, lens), memory_pool=_POOL))
        dest.append(_ranges(outs, lens))
    del need
    order = np.empty(total, np.int64)
    order[np.concatenate(dest)] = np.arange(total, dtype=np.int64)
    gathered = pc.take(pa.concat_tables(pieces), order, memory_pool=_POOL)
    del pieces, dest, order
    at = 0
    for key in group:   # popped one at a time: freed in small pieces, the loop keeps the GIL
        st = parts.pop(key)
        stream, date, sym = key
        n = st.rows
        batch = Batch(stream, date, sym, gathered.slice(at, n), st.first_recv_ms, st.trade_ids,
                      segment_paths=sorted(st.segment_paths))
        at += n
        del st
        yield batch
