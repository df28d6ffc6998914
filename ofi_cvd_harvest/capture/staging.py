"""The staging area: rows handed over every ``segment_flush_sec`` that wait for the rotation
(owned by the capture's io thread; docs/capture.md "Files, rotation, durability").

Why not a list of per-partition Arrow slices: at 300 symbols a minute of hand-overs is ~36,000
partition slices, and each slice, kept as a ``pa.Table``, costs ~6 KB of Arrow metadata (the
table, its chunked arrays, array data) -- ~210 MB a minute against ~90 MB of rows, all of it
glibc heap freed at once at rotation (docs/performance.md "Where a minute of staged rows
went"). Here a partition keeps only (table, offset, rows) references into its stream's table
of each hand-over (one table per stream and second, shared by every symbol); the slices are
made at rotation, one partition at a time, in the same chunks as before, so the files are the
same to the byte.
"""

from __future__ import annotations

from collections.abc import Iterator

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


def _batches(parts: dict[Key, _Staged]) -> Iterator[Batch]:
    # popped one key at a time, so the staged parts are freed in small pieces between which
    # the event loop can take the GIL: freed all at once, their deallocation held the GIL for
    # ~150 ms at 300 symbols (docs/performance.md)
    for key in list(parts):
        st = parts.pop(key)
        stream, date, sym = key
        slices = [t.slice(off, n) for t, off, n in st.spans]
        table = slices[0] if len(slices) == 1 else pa.concat_tables(slices)
        batch = Batch(stream, date, sym, table, st.first_recv_ms, st.trade_ids,
                      segment_paths=sorted(st.segment_paths))
        del st, slices, table
        yield batch
