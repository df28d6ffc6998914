"""The hand-over build of ``capture/buffers.py`` as of commit e3a82ee, before it was reworked:
the reference the current build must equal, table for table and byte for byte
(test_build_equal.py). Only what the rework changed is frozen here -- ``BookCols`` with running
offsets and the build itself; the containers it left alone are the product's. Do not edit."""

from __future__ import annotations

from itertools import chain

import numpy as np
import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture import buffers as _current
from ofi_cvd_harvest.capture.buffers import Span, Swapped

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


class RawBuffers(_current.RawBuffers):
    """The product's buffers, filling the old ``BookCols``."""

    def add_book_row(self, row: dict) -> None:
        key = (self.date_of(row["event_ts_ms"]), row["symbol"])
        cols = self.book.get(key)
        if cols is None:
            cols = self.book[key] = BookCols()
        cols.add(row)


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
