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

from .buffers import Batch, Span

Key = tuple[str, str, str]   # (stream, date, symbol)


class _Staged:
    """One partition's staged rows: spans of hand-over tables, in arrival order."""
    __slots__ = ("spans", "first_recv_ms", "trade_ids", "segment_paths")

    def __init__(self, first_recv_ms: int) -> None:
        self.spans: list[tuple[pa.Table, int, int]] = []
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
        st.trade_ids.extend(span.trade_ids)
        if segment_path is not None and segment_path not in st.segment_paths:
            st.segment_paths.append(segment_path)

    def __len__(self) -> int:
        return len(self._parts)

    def rows(self) -> int:
        return sum(n for st in self._parts.values() for _, _, n in st.spans)

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


GROUP_ROWS = 1 << 16   # rows gathered per take at rotation: bounds the copy held at once


def _batches(parts: dict[Key, _Staged]) -> Iterator[Batch]:
    """One batch per partition, in the order partitions first arrived; each batch's table is
    one chunk, gathered in C from the hand-over tables.

    Why gathered: slicing every hand-over table per partition and concatenating the slices
    (36,000 ``Table.slice`` calls a minute at 300 symbols, ~10 µs each) made 60-chunk tables,
    and Parquet writes a 60-chunk table ~1.6x slower than one chunk. Now a run of consecutive
    partitions of one stream (up to ``GROUP_ROWS`` rows) is one ``take`` over its hand-over
    tables, and each partition is a zero-copy slice of that (docs/performance.md §12). The rows
    and their order are unchanged; only the chunking (and so the Parquet pages) differ."""
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
        n = sum(r for _, _, r in parts[key].spans)
        if group and (key[0] != stream or rows + n > GROUP_ROWS):
            break
        group.append(key)
        rows += n
    return group


def _gathered(parts: dict[Key, _Staged], group: list[Key]) -> Iterator[Batch]:
    tables: dict[int, int] = {}       # id(hand-over table) -> its first row in ``chunks``
    chunks: list[pa.Table] = []
    base = 0
    for key in group:
        for t, _, _ in parts[key].spans:
            if id(t) not in tables:
                tables[id(t)] = base
                chunks.append(t)
                base += t.num_rows
    ranges = [(tables[id(t)] + off, n) for key in group for t, off, n in parts[key].spans]
    starts = np.fromiter((a for a, _ in ranges), np.int64, len(ranges))
    lens = np.fromiter((n for _, n in ranges), np.int64, len(ranges))
    # row indices of every range, in order: output row p of range k is starts[k] + p - first[k]
    first = np.cumsum(lens) - lens
    idx = np.repeat(starts - first, lens) + np.arange(int(lens.sum()), dtype=np.int64)
    gathered = (chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)).take(idx)
    del chunks, tables
    at = 0
    for key in group:   # popped one at a time: freed in small pieces, the loop keeps the GIL
        st = parts.pop(key)
        stream, date, sym = key
        n = sum(r for _, _, r in st.spans)
        batch = Batch(stream, date, sym, gathered.slice(at, n), st.first_recv_ms, st.trade_ids,
                      segment_paths=sorted(st.segment_paths))
        at += n
        del st
        yield batch
