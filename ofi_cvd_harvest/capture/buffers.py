"""Columnar in-memory buffers for the raw tables, one per (stream, UTC date, symbol).

The hot path appends scalars to per-column lists (no per-row dicts, no Arrow per message);
:meth:`RawBuffers.drain` turns each partition's lists into one Arrow table of the exact
schema of :mod:`..schemas`, ready for one atomic Parquet file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pyarrow as pa

from .. import schemas

_DAY = 86_400_000


class DateCache:
    """UTC date string of an epoch-ms timestamp: one integer division and a dict lookup."""
    __slots__ = ("_days",)

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, ts_ms: int) -> str:
        day = ts_ms // _DAY
        date = self._days.get(day)
        if date is None:
            if len(self._days) > 64:
                self._days.clear()
            date = self._days[day] = dt.datetime.fromtimestamp(
                day * 86_400, tz=dt.timezone.utc).strftime("%Y-%m-%d")
        return date


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
    straight into Arrow list arrays."""
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
        for n in _SCALAR_BOOK_COLS:
            getattr(self, n).append(row[n])
        for n in _LIST_COLS:
            vals = getattr(self, f"{n}_v")
            vals.extend(row[n])
            getattr(self, f"{n}_o").append(len(vals))

    def table(self) -> pa.Table:
        cols = {}
        for n in schemas.BOOK.names:
            if n in _LIST_COLS:
                cols[n] = pa.ListArray.from_arrays(
                    pa.array(getattr(self, f"{n}_o"), pa.int32()),
                    pa.array(getattr(self, f"{n}_v"), pa.float64()))
            else:
                cols[n] = pa.array(getattr(self, n), schemas.BOOK.field(n).type)
        return pa.table(cols, schema=schemas.BOOK)


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


def build(sw: Swapped) -> list[Batch]:
    """Swapped columns -> one Arrow table (exact raw schema) per (stream, date, symbol)."""
    out: list[Batch] = []
    trades = [(k, c) for k, c in sw.trades.items() if len(c)]
    if len(trades) > 1:   # many symbols: one Arrow build per stream, sliced per partition
        out += _sliced("agg_trade", trades, _merged_trades(trades))
    for (date, sym), c in trades[:1] if len(trades) == 1 else ():
        out.append(Batch("agg_trade", date, sym, trade_table(sym, c), min(c.recv), c.agg_id))
    books = [(k, c) for k, c in sw.book.items() if len(c)]
    if len(books) > 1:
        out += _sliced("book", books, _merged_book(books).table())
    for (date, sym), c in books[:1] if len(books) == 1 else ():
        out.append(Batch("book", date, sym, c.table(), min(c.recv_ts_ms)))  # type: ignore
    for (date, sym), c in sw.ops.items():
        if len(c):
            t = pa.table({"recv_ts_ms": c.recv, "symbol": c.symbol, "event_type": c.event_type,
                          "meta_json": c.meta_json}, schema=schemas.OPS)
            out.append(Batch("ops", date, sym, t, min(c.recv)))
    return out


def _merged_trades(parts: list) -> pa.Table:
    """Every partition's trade columns in one table (a dozen ``pa.array`` calls in all instead
    of a dozen per partition: the per-second staging cost of a 300-symbol universe)."""
    m = TradeCols()
    symbols: list[str] = []
    for (_, sym), c in parts:
        for s in TradeCols.__slots__:
            getattr(m, s).extend(getattr(c, s))
        symbols.extend([sym] * len(c))
    return trade_table("", m, symbols)


def _merged_book(parts: list) -> BookCols:
    m = BookCols()
    for _, c in parts:
        for n in _SCALAR_BOOK_COLS:
            getattr(m, n).extend(getattr(c, n))
        for n in _LIST_COLS:
            vals = getattr(m, f"{n}_v")
            base = len(vals)
            getattr(m, f"{n}_o").extend([base + o for o in getattr(c, f"{n}_o")[1:]])
            vals.extend(getattr(c, f"{n}_v"))
    return m


def _sliced(stream: str, parts: list, table: pa.Table) -> list[Batch]:
    """One batch per partition: zero-copy slices of the merged ``table`` (same row order)."""
    out, off = [], 0
    for (date, sym), c in parts:
        n = len(c)
        recv = c.recv if stream == "agg_trade" else c.recv_ts_ms
        ids = c.agg_id if stream == "agg_trade" else []
        out.append(Batch(stream, date, sym, table.slice(off, n), min(recv), ids))
        off += n
    return out


def trade_table(symbol: str, c: TradeCols, symbols: list[str] | None = None) -> pa.Table:
    n = len(c)
    return pa.table({
        "recv_ts_ms": pa.array(c.recv, pa.int64()),
        "event_ts_ms": pa.array(c.event, pa.int64()),
        "trade_ts_ms": pa.array(c.trade, pa.int64()),
        "symbol": pa.array([symbol] * n if symbols is None else symbols, pa.string()),
        "agg_trade_id": pa.array(c.agg_id, pa.int64()),
        "price": pa.array(c.price, pa.float64()),
        "qty": pa.array(c.qty, pa.float64()),
        "first_trade_id": pa.array(c.first, pa.int64()),
        "last_trade_id": pa.array(c.last, pa.int64()),
        "is_buyer_maker": pa.array(c.maker, pa.bool_()),
        "source": pa.array(c.source, pa.string()),
        "conn_id": pa.array(c.conn, pa.int64()),
    }, schema=schemas.AGG_TRADE)
