"""Frozen copy of ``capture/buffers.py`` as of commit e3a82ee (before the build was reworked):
the reference the current build must equal, table for table and byte for byte
(test_build_equal.py), and the "old" side of benchmarks/bench_build.py. Do not edit."""


from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from itertools import chain
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.protocol.plausible import MAX_TS_MS, MIN_TS_MS

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


class BookCols:
    """Scalar columns as lists; the four level columns flattened (values + offsets), so the
    buffer holds no per-row list objects (cheap for the GC over a long rotation) and drains
    straight into Arrow list arrays (``_book_table``)."""
    __slots__ = _SCALAR_BOOK_COLS + tuple(f"{n}_v" for n in _LIST_COLS) + tuple(
        f"{n}_o" for n in _LIST_COLS)

    def __init__(self) -> None:
        for s in self.__slots__:
            setattr(self, s, [])
        for n in _LIST_COLS:
            getattr(self, f"{n}_o").append(0)

    def __len__(self) -> int:
        return len(self.recv_ts_ms)  # type: ignore[attr-defined]

    def add(self, row: dict) -> None:
        # unrolled: the hot path, once per book row (a column left out fails table())
        self.recv_ts_ms.append(row["recv_ts_ms"])
        self.event_ts_ms.append(row["event_ts_ms"])
        self.transact_ts_ms.append(row["transact_ts_ms"])
        self.symbol.append(row["symbol"])
        self.first_update_id.append(row["first_update_id"])
        self.final_update_id.append(row["final_update_id"])
        self.prev_final_update_id.append(row["prev_final_update_id"])
        self.gap.append(row["gap"])
        self.conn_id.append(row["conn_id"])
        v = self.bid_px_v
        v.extend(row["bid_px"])
        self.bid_px_o.append(len(v))
        v = self.bid_qty_v
        v.extend(row["bid_qty"])
        self.bid_qty_o.append(len(v))
        v = self.ask_px_v
        v.extend(row["ask_px"])
        self.ask_px_o.append(len(v))
        v = self.ask_qty_v
        v.extend(row["ask_qty"])
        self.ask_qty_o.append(len(v))


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

    Each stream's partitions become one table built column by column straight from the
    Python lists (``np.fromiter`` over the chained lists: no merged copy, ~15 ns a value) --
    a dozen Arrow builds per second whether the universe has 2 symbols or 300. A span is
    sliced only when it is used: kept as a table, each partition's slice costs ~6 KB of Arrow
    metadata (a table, its chunked arrays and array data), at 300 symbols more than the rows
    themselves (docs/performance.md "Where a minute of staged rows went")."""
    out: list[Span] = []
    trades = [(k, c) for k, c in sw.trades.items() if len(c)]
    if trades:
        out += _spans("agg_trade", trades, _trade_table(trades))
    books = [(k, c) for k, c in sw.book.items() if len(c)]
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


_NP = {pa.int64(): np.int64, pa.float64(): np.float64, pa.bool_(): np.bool_}


def _column(lists: list[list], n: int, typ: pa.DataType) -> pa.Array:
    """The concatenation of ``lists`` (``n`` values in all) as one Arrow array of ``typ``."""
    if len(lists) == 1:
        return pa.array(lists[0], typ)
    dtype = _NP.get(typ)
    if dtype is None:
        return pa.array(list(chain.from_iterable(lists)), typ)
    return pa.array(np.fromiter(chain.from_iterable(lists), dtype, count=n))


def _symbols(parts: list, lengths: list[int]) -> pa.Array:
    """The partitions' symbol repeated per row (dictionary-decoded in C)."""
    idx = np.repeat(np.arange(len(parts), dtype=np.int32), lengths)
    names = pa.array([sym for (_, sym), _ in parts], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(idx), names).cast(pa.string())


def _trade_table(parts: list) -> pa.Table:
    lengths = [len(c) for _, c in parts]
    n = sum(lengths)
    cs = [c for _, c in parts]

    def col(name: str, typ: pa.DataType) -> pa.Array:
        return _column([getattr(c, name) for c in cs], n, typ)
    return pa.table({
        "recv_ts_ms": col("recv", pa.int64()),
        "event_ts_ms": col("event", pa.int64()),
        "trade_ts_ms": col("trade", pa.int64()),
        "symbol": _symbols(parts, lengths),
        "agg_trade_id": col("agg_id", pa.int64()),
        "price": col("price", pa.float64()),
        "qty": col("qty", pa.float64()),
        "first_trade_id": col("first", pa.int64()),
        "last_trade_id": col("last", pa.int64()),
        "is_buyer_maker": col("maker", pa.bool_()),
        "source": col("source", pa.string()),
        "conn_id": col("conn", pa.int64()),
    }, schema=schemas.AGG_TRADE)


def _book_table(parts: list) -> pa.Table:
    lengths = [len(c) for _, c in parts]
    n = sum(lengths)
    cs = [c for _, c in parts]
    cols: dict[str, pa.Array] = {}
    for name in schemas.BOOK.names:
        if name == "symbol":
            cols[name] = _symbols(parts, lengths)
        elif name in _LIST_COLS:
            vals = [getattr(c, f"{name}_v") for c in cs]
            nv = [len(v) for v in vals]
            offs = [getattr(c, f"{name}_o") for c in cs]
            # per-partition offsets start at 0: shift each by the values before it
            if len(cs) == 1:
                off = np.asarray(offs[0], dtype=np.int32)
            else:
                rest = np.fromiter(chain.from_iterable(o[1:] for o in offs), np.int32, count=n)
                bases = np.repeat(np.cumsum([0] + nv[:-1], dtype=np.int64), lengths)
                off = np.concatenate(([0], rest + bases)).astype(np.int32)
            cols[name] = pa.ListArray.from_arrays(pa.array(off),
                                                  _column(vals, sum(nv), pa.float64()))
        else:
            cols[name] = _column([getattr(c, name) for c in cs], n, schemas.BOOK.field(name).type)
    return pa.table(cols, schema=schemas.BOOK)


def _spans(stream: str, parts: list, table: pa.Table) -> list[Span]:
    """One span per partition, in ``table``'s row order."""
    out, off = [], 0
    for (date, sym), c in parts:
        n = len(c)
        recv = c.recv if stream == "agg_trade" else c.recv_ts_ms
        ids = c.agg_id if stream == "agg_trade" else []
        out.append(Span(stream, date, sym, table, off, n, min(recv), ids))
        off += n
    return out
