"""Columnar in-memory buffers for the raw tables, one per (stream, UTC date, symbol).

The hot path appends scalars to per-column lists and packs the book's level values into a
byte buffer per column (no per-row objects, no Arrow per message); :func:`build` turns them
into Arrow tables of the exact schema of :mod:`..schemas` (one per partition, ready for one
atomic Parquet file).
"""

from __future__ import annotations

import datetime as dt
import struct
import time
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .. import schemas
from ..protocol.plausible import MAX_TS_MS, MIN_TS_MS

_DAY = 86_400_000


_FIRST_DAY, _LAST_DAY = MIN_TS_MS // _DAY, MAX_TS_MS // _DAY


class DateCache:
    """UTC date string of an epoch-ms timestamp: one integer division and a dict lookup.

    Never raises: the decoder rejects implausible times (protocol/plausible.py), but should
    one get here anyway (a bug), its row goes to today's partition -- where the DQ checks see
    it -- instead of ``date=1969-12-31`` or a ``ValueError`` that would end the capture."""
    __slots__ = ("_days",)

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, ts_ms: int) -> str:
        day = ts_ms // _DAY
        date = self._days.get(day)
        if date is None:
            if not _FIRST_DAY <= day <= _LAST_DAY:   # not cached: "today" moves
                return _date_of_day(int(time.time()) // 86_400)
            if len(self._days) > 64:
                self._days.clear()
            date = self._days[day] = _date_of_day(day)
        return date


def _date_of_day(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86_400, tz=dt.timezone.utc).strftime("%Y-%m-%d")


class TradeCols:
    __slots__ = ("recv", "event", "trade", "agg_id", "price", "qty", "first", "last", "maker",
                 "source", "conn")

    def __init__(self) -> None:
        for s in self.__slots__:
            setattr(self, s, [])

    def __len__(self) -> int:
        return len(self.agg_id)


_LIST_COLS = ("bid_px", "bid_qty", "ask_px", "ask_qty")
_SCALAR_BOOK_COLS = tuple(n for n in schemas.BOOK.names if n not in _LIST_COLS)


class _Packers(dict):
    """Level count -> ``struct`` packer of that many little-endian doubles (made once)."""
    def __missing__(self, n: int):
        pack = self[n] = struct.Struct(f"<{n}d").pack
        return pack


_PACK = _Packers()


class BookCols:
    """Scalar columns as lists; the four level columns as packed doubles (a ``bytearray``
    per column, + each row's level count), so the buffer holds no per-row objects (cheap
    for the GC over a long rotation) and drains straight into Arrow list arrays
    (``_book_table``).

    Why packed: 40 level values a row, 120,000 a second at 300 symbols. Kept as Python
    floats for a second, they were scattered over the heap by the time the hand-over build
    unboxed them -- ~125 ns a value in cache misses, the largest cost of the io thread.
    Packed here, while the row's floats are hot, they cost ~26 ns a value, and the build
    reads them with ``np.frombuffer`` (docs/performance.md §13)."""
    __slots__ = _SCALAR_BOOK_COLS + tuple(f"{n}_b" for n in _LIST_COLS) + tuple(
        f"{n}_n" for n in _LIST_COLS)

    def __init__(self) -> None:
        for s in _SCALAR_BOOK_COLS:
            setattr(self, s, [])
        for n in _LIST_COLS:
            setattr(self, f"{n}_b", bytearray())
            setattr(self, f"{n}_n", [])

    def __len__(self) -> int:
        return len(self.recv_ts_ms)  # type: ignore[attr-defined]

    def add(self, row: dict) -> None:
        # unrolled: the hot path, once per book row (a column left out fails table()).
        # The levels are packed first: a value struct refuses leaves the buffer untouched.
        bp, bq, ap, aq = row["bid_px"], row["bid_qty"], row["ask_px"], row["ask_qty"]
        pack = _PACK
        bp_b, bq_b = pack[len(bp)](*bp), pack[len(bq)](*bq)
        ap_b, aq_b = pack[len(ap)](*ap), pack[len(aq)](*aq)
        self.recv_ts_ms.append(row["recv_ts_ms"])
        self.event_ts_ms.append(row["event_ts_ms"])
        self.transact_ts_ms.append(row["transact_ts_ms"])
        self.symbol.append(row["symbol"])
        self.first_update_id.append(row["first_update_id"])
        self.final_update_id.append(row["final_update_id"])
        self.prev_final_update_id.append(row["prev_final_update_id"])
        self.gap.append(row["gap"])
        self.conn_id.append(row["conn_id"])
        self.bid_px_b += bp_b
        self.bid_px_n.append(len(bp))
        self.bid_qty_b += bq_b
        self.bid_qty_n.append(len(bq))
        self.ask_px_b += ap_b
        self.ask_px_n.append(len(ap))
        self.ask_qty_b += aq_b
        self.ask_qty_n.append(len(aq))


class OpsCols:
    __slots__ = ("recv", "symbol", "event_type", "meta_json")

    def __init__(self) -> None:
        for s in self.__slots__:
            setattr(self, s, [])

    def __len__(self) -> int:
        return len(self.recv)


@dataclass
class Batch:
    """A drained partition: one future file."""
    stream: str
    date: str
    symbol: str
    table: pa.Table
    first_recv_ms: int
    trade_ids: list[int] = field(default_factory=list)
    attempts: int = 0
    segment_paths: list[str] = field(default_factory=list)   # deleted once the file is durable

    @property
    def rows(self) -> int:
        return self.table.num_rows


class RawBuffers:
    def __init__(self) -> None:
        self.trades: dict[tuple[str, str], TradeCols] = {}
        self.book: dict[tuple[str, str], BookCols] = {}
        self.ops: dict[tuple[str, str], OpsCols] = {}
        self.date_of = DateCache()

    # -- appends (hot path) ---------------------------------------------------------------------
    def trade_cols(self, date: str, symbol: str) -> TradeCols:
        cols = self.trades.get((date, symbol))
        if cols is None:
            cols = self.trades[(date, symbol)] = TradeCols()
        return cols

    def add_trade(self, recv_ms: int, rec, source: str, conn_id: int) -> None:
        """Append one :class:`AggTrade` (partitioned by the UTC date of its event time)."""
        c = self.trade_cols(self.date_of(rec.event_ts_ms), rec.symbol)
        c.recv.append(recv_ms)
        c.event.append(rec.event_ts_ms)
        c.trade.append(rec.trade_ts_ms)
        c.agg_id.append(rec.agg_trade_id)
        c.price.append(rec.price)
        c.qty.append(rec.qty)
        c.first.append(rec.first_trade_id)
        c.last.append(rec.last_trade_id)
        c.maker.append(rec.is_buyer_maker)
        c.source.append(source)
        c.conn.append(conn_id)

    def add_book_row(self, row: dict) -> None:
        key = (self.date_of(row["event_ts_ms"]), row["symbol"])
        cols = self.book.get(key)
        if cols is None:
            cols = self.book[key] = BookCols()
        cols.add(row)

    def add_ops(self, recv_ms: int, partition_symbol: str, symbol_col: str, event_type: str,
                meta_json: str) -> None:
        key = (self.date_of(recv_ms), partition_symbol)
        cols = self.ops.get(key)
        if cols is None:
            cols = self.ops[key] = OpsCols()
        cols.recv.append(recv_ms)
        cols.symbol.append(symbol_col)
        cols.event_type.append(event_type)
        cols.meta_json.append(meta_json)

    # -- queries ------------------------------------------------------------------------------
    def pending_rows(self) -> int:
        return (sum(len(c) for c in self.trades.values()) + sum(len(c) for c in self.book.values())
                + sum(len(c) for c in self.ops.values()))

    def buffered_trade_ids(self, symbol: str) -> list[int]:
        out: list[int] = []
        for (_, sym), c in self.trades.items():
            if sym == symbol:
                out.extend(c.agg_id)
        return out

    # -- drain --------------------------------------------------------------------------------
    def swap(self) -> "Swapped":
        """Hand the filled columns over (O(1), on the event loop); the buffers start empty.
        :func:`build` turns them into Arrow tables, off the loop."""
        out = Swapped(self.trades, self.book, self.ops)
        self.trades, self.book, self.ops = {}, {}, {}
        return out

    def drain(self) -> list[Batch]:
        """Everything buffered as Arrow tables (buffers are emptied)."""
        return build(self.swap())


@dataclass
class Swapped:
    """Column buffers taken out of :class:`RawBuffers`; nobody appends to them any more."""
    trades: dict
    book: dict
    ops: dict

    def trade_ids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for (_, sym), c in self.trades.items():
            out.setdefault(sym, []).extend(c.agg_id)
        return out


class Span(NamedTuple):
    """One partition's rows inside a stream's table of a hand-over: rows ``offset`` to
    ``offset + rows`` of ``table`` (a view: no copy, no Arrow object of its own)."""
    stream: str
    date: str
    symbol: str
    table: pa.Table
    offset: int
    rows: int
    first_recv_ms: int
    trade_ids: list[int]

    def slice(self) -> pa.Table:
        return self.table.slice(self.offset, self.rows)


def build_spans(sw: Swapped) -> list[Span]:
    """Swapped columns -> one Arrow table (exact raw schema) per stream, and each (stream,
    date, symbol) partition's span of rows in it.

    Each stream's partitions become one table built column by column from the Python lists
    (the partitions' lists joined by pointer copies, then one conversion in C per column) --
    a dozen Arrow builds per second whether the universe has 2 symbols or 300. A span is
    sliced only when it is used: kept as a table, each partition's slice costs ~6 KB of Arrow
    metadata (a table, its chunked arrays and array data), at 300 symbols more than the rows
    themselves (docs/performance.md "Where a minute of staged rows went")."""
    out: list[Span] = []
    trades = [(k, c) for k, c in sw.trades.items() if c.agg_id]
    if trades:
        out += _spans("agg_trade", trades, _trade_table(trades))
    books = [(k, c) for k, c in sw.book.items() if c.recv_ts_ms]
    if books:
        out += _spans("book", books, _book_table(books))
    for (date, sym), c in sw.ops.items():
        if len(c):
            t = pa.table({"recv_ts_ms": c.recv, "symbol": c.symbol, "event_type": c.event_type,
                          "meta_json": c.meta_json}, schema=schemas.OPS)
            out.append(Span("ops", date, sym, t, 0, len(c), min(c.recv), []))
    return out


def build(sw: Swapped) -> list[Batch]:
    """Swapped columns -> one batch per (stream, date, symbol): zero-copy slices of the
    stream's table (:func:`build_spans`)."""
    return [Batch(s.stream, s.date, s.symbol, s.slice(), s.first_recv_ms, s.trade_ids)
            for s in build_spans(sw)]


def _flat(lists: list[list]) -> list:
    """The concatenation of ``lists``: pointer copies, no value is converted yet."""
    if len(lists) == 1:
        return lists[0]
    out: list = []
    for part in lists:
        out += part
    return out


def _column(lists: list[list], typ: pa.DataType) -> pa.Array:
    """The concatenation of ``lists`` as one Arrow array of ``typ``: one C conversion of the
    joined list (``np.fromiter`` over the chained lists cost ~2x more per value;
    benchmarks/bench_build.py; the book's level values are packed instead, :func:`_packed`).
    Numbers go through numpy (for int64 ~25 % cheaper than Arrow's conversion),
    so their buffers stay in glibc's heap, which the capture trims after each
    rotation, as before (docs/performance.md "Where a minute of staged rows went")."""
    dtype = _NP.get(typ)
    if dtype is None:
        return pa.array(_flat(lists), typ)
    return pa.array(np.array(_flat(lists), dtype))


_NP = {pa.int64(): np.int64, pa.float64(): np.float64}


def _packed(parts: list[bytearray]) -> pa.Array:
    """Packed doubles (:class:`BookCols`) -> one float64 array: one copy of the bytes, no
    per-value work; the memory stays in glibc's heap, as :func:`_column`'s."""
    buf = parts[0] if len(parts) == 1 else b"".join(parts)
    return pa.array(np.frombuffer(buf, "<f8"))


def _symbols(parts: list, lengths: list[int]) -> pa.Array:
    """The partitions' symbol repeated per row (dictionary-decoded in C)."""
    idx = np.repeat(np.arange(len(parts), dtype=np.int32), lengths)
    names = pa.array([sym for (_, sym), _ in parts], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(idx), names).cast(pa.string())


_TRADE_COLS = (("recv_ts_ms", "recv"), ("event_ts_ms", "event"), ("trade_ts_ms", "trade"),
               ("symbol", None), ("agg_trade_id", "agg_id"), ("price", "price"), ("qty", "qty"),
               ("first_trade_id", "first"), ("last_trade_id", "last"),
               ("is_buyer_maker", "maker"), ("source", "source"), ("conn_id", "conn"))
assert tuple(n for n, _ in _TRADE_COLS) == tuple(schemas.AGG_TRADE.names)


def _trade_table(parts: list) -> pa.Table:
    cs = [c for _, c in parts]
    lengths = [len(c.agg_id) for c in cs]
    cols = []
    for name, attr in _TRADE_COLS:
        if attr is None:
            cols.append(_symbols(parts, lengths))
        else:
            cols.append(_column(list(map(attrgetter(attr), cs)),
                                schemas.AGG_TRADE.field(name).type))
    return pa.Table.from_arrays(cols, schema=schemas.AGG_TRADE)


def _offsets(counts: list[int]) -> pa.Array:
    """Per-row level counts -> the int32 offsets of a list array (0, then the running sum)."""
    off = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, dtype=np.int32, out=off[1:])
    return pa.array(off)


def _book_table(parts: list) -> pa.Table:
    cs = [c for _, c in parts]
    lengths = [len(c.recv_ts_ms) for c in cs]
    cols = []
    seen: list[tuple[list, pa.Array]] = []   # (counts, offsets): bid px/qty share theirs
    for f in schemas.BOOK:
        name = f.name
        if name == "symbol":
            cols.append(_symbols(parts, lengths))
        elif name in _LIST_COLS:
            counts = _flat(list(map(attrgetter(f"{name}_n"), cs)))
            off = next((o for cn, o in seen if cn == counts), None)
            if off is None:
                off = _offsets(counts)
                seen.append((counts, off))
            vals = _packed(list(map(attrgetter(f"{name}_b"), cs)))
            cols.append(pa.ListArray.from_arrays(off, vals))
        else:
            cols.append(_column(list(map(attrgetter(name), cs)), f.type))
    return pa.Table.from_arrays(cols, schema=schemas.BOOK)


def _spans(stream: str, parts: list, table: pa.Table) -> list[Span]:
    """One span per partition, in ``table``'s row order; each one's first receipt time is the
    minimum of its rows' ``recv_ts_ms`` (one ``reduceat`` over the built column)."""
    lengths = [len(c) for _, c in parts]
    starts = np.zeros(len(parts), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    recv = table.column("recv_ts_ms").chunk(0).to_numpy()
    firsts = np.minimum.reduceat(recv, starts).tolist()
    trades = stream == "agg_trade"
    return [Span(stream, date, sym, table, off, n, first, c.agg_id if trades else [])
            for ((date, sym), c), off, n, first in zip(parts, starts.tolist(), lengths, firsts)]
