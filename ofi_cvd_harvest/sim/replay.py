"""Replay a market recording as a :class:`~.source.MarketSource` (``simulate --replay PATH``).

The simulator server is transport only, so replaying is "just" a source whose clock walks
through a recording (:mod:`.recordings` parses the formats) at its original pace times
``speed``. The capture cannot tell replay from live: the same stream names, payloads and REST
answers, taken from the recording:

* WebSocket: ``aggTrade`` (hftbacktest raw ``trade`` normalised, ``a = f = l = t``),
  ``bookTicker``, the diff stream under every diff-depth name (``@depth``, ``@depth@100ms``,
  ``@depth@0ms``…: a recorded ``@depth@0ms`` is served to a ``@depth@100ms`` subscriber), and
  partial depth ``@depth{5,10,20}@100ms`` built from the reconstructed book after each event.
* REST ``aggTrades``: the recording's trades already emitted (Binance semantics, via
  :meth:`agg_trades`). REST ``depth``: before the book of the symbol is synced (e.g. a client
  that asks before the first event), the recorded snapshot; afterwards a snapshot of the book
  reconstructed from the recording at the current replay position, ``lastUpdateId`` = the
  ``u`` of the last emitted event, so ``U <= lastUpdateId <= u`` holds for a client that
  buffered the stream as Binance documents.

Clock: a message is due at its recorded receive time shifted onto the exchange clock (by the
median ``E - recv`` of the recording, so ``server_time_ms`` reads like Binance's clock of that
day and daily partitions fall on the recorded dates). The replay starts ``start_delay_s``
(wall) after the first client subscribes -- a capture connecting a moment after the server
starts must not miss the first trades -- or at once with :meth:`start`.
"""

from __future__ import annotations

import math
import statistics
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson

from ..protocol import decode
from ..protocol.localbook import BookTop, LocalBook
from ..protocol.vocabulary import (AGG_TRADE, BOOK_SPEED, BOOK_TICKER, DIFF, DIFF_SPEEDS, PARTIAL,
                                   PARTIAL_LEVELS, parse_stream)
from . import recordings as rec_mod
from .recordings import (KIND_DEPTH, KIND_OTHER, KIND_SNAPSHOT, KIND_TICKER, KIND_TRADE,
                         Recorded, _dec)
from .rest import ErrorReply
from .source import Message
from .ticker import recorded_row



def _decimals(values: list[str]) -> int:
    """Decimals needed to write every value (``"63943.90"`` -> 1): the tick/lot grid."""
    d = 0
    for v in values:
        _, _, frac = v.partition(".")
        d = max(d, len(frac.rstrip("0")))
    return d


class _Wants:
    __slots__ = ("trade", "ticker", "diff", "partial", "other")

    def __init__(self) -> None:
        self.trade: str | None = None
        self.ticker: str | None = None
        self.diff: list[str] = []
        self.partial: list[tuple[int, str]] = []
        self.other = False


def _parse_wants(streams: Collection[str]) -> dict[str, _Wants]:
    out: dict[str, _Wants] = {}
    for s in streams:
        sp = parse_stream(s)
        w = out.setdefault(sp.symbol, _Wants())
        plain = not sp.extra
        if sp.kind == AGG_TRADE and sp.speed is None and plain:
            w.trade = s
        elif sp.kind == BOOK_TICKER and sp.speed is None and plain:
            w.ticker = s
        elif sp.kind == DIFF and sp.speed in DIFF_SPEEDS and plain:
            w.diff.append(s)
        elif sp.kind == PARTIAL and sp.speed == BOOK_SPEED and plain:
            if sp.levels in PARTIAL_LEVELS:
                w.partial.append((sp.levels, s))
        else:
            w.other = True
    return out


class ReplaySource:
    """A recording served as a market (see module docstring). Not thread-safe: the server
    calls it from one event loop."""

    def __init__(self, recs: list[Recorded], *, speed: float = 1.0, start_delay_s: float = 1.0,
                 autostart: bool = False, name: str = "") -> None:
        if speed <= 0 or not math.isfinite(speed):
            raise ValueError("speed must be a positive number")
        if not recs:
            raise rec_mod.RecordingError(f"{name or 'recording'}: no messages")
        self.name = name
        self.speed = float(speed)
        self.start_delay_s = float(start_delay_s)
        self._recs = recs
        self._symbols = rec_mod.symbols_of(recs)
        # receive clock -> exchange clock
        skew = [r.data["E"] - r.recv_ms for r in recs[:5000]
                if r.kind != KIND_SNAPSHOT and isinstance(r.data.get("E"), int)]
        self.offset_ms = statistics.median(skew) if skew else 0.0
        sched, last = [], -math.inf
        for r in recs:
            t = max(last, r.recv_ms + self.offset_ms)
            sched.append(int(t))
            last = t
        self._sched = sched
        self.first_ms = sched[0]
        self.last_ms = sched[-1]
        self._cursor = 0
        self._t0: float | None = None        # monotonic wall time at which first_ms is "now"
        if autostart:
            self.start()
        # per-symbol state
        self._books = {s: LocalBook(s, levels=max(PARTIAL_LEVELS), max_levels=1000)
                       for s in self._symbols}
        self._trades: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._trade_ids: dict[str, list[int]] = defaultdict(list)
        self._trade_T: dict[str, list[int]] = defaultdict(list)
        self._trade_E: dict[str, dict[int, int]] = defaultdict(dict)
        self._visible: dict[str, int] = defaultdict(int)    # trades (id order) visible
        self._max_emitted: dict[str, int] = {}
        self._recorded_snaps: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        prices: dict[str, list[str]] = defaultdict(list)
        qtys: dict[str, list[str]] = defaultdict(list)
        for i, r in enumerate(recs):
            if r.kind == KIND_TRADE:
                d = r.data
                self._trades[r.symbol].append(
                    {"a": d["a"], "p": d["p"], "q": d["q"], "f": d["f"], "l": d["l"],
                     "T": d["T"], "m": d["m"]})
                self._trade_E[r.symbol][d["a"]] = d["E"]
                if len(prices[r.symbol]) < 5000:
                    prices[r.symbol].append(d["p"])
                    qtys[r.symbol].append(d["q"])
            elif r.kind == KIND_SNAPSHOT:
                self._recorded_snaps[r.symbol].append((i, r.data))
            elif r.kind == KIND_TICKER and len(prices[r.symbol]) < 5000:
                prices[r.symbol] += [r.data["b"], r.data["a"]]
                qtys[r.symbol] += [r.data["B"], r.data["A"]]
        for s, ts in self._trades.items():
            ts.sort(key=lambda t: t["a"])
            self._trade_ids[s] = [t["a"] for t in ts]
            self._trade_T[s] = [t["T"] for t in ts]
        self._tick_dec = {s: _decimals(prices.get(s, [])) for s in self._symbols}
        self._lot_dec = {s: _decimals(qtys.get(s, [])) for s in self._symbols}
        self._wants_key: frozenset | None = None
        self._wants_id: Any = None
        self._wants: dict[str, _Wants] = {}
        self.emitted = 0
        self.sync_problems: list = []        # problems of the reconstruction (should stay empty)

    # --- clock --------------------------------------------------------------------------------
    def start(self, delay_s: float = 0.0) -> None:
        """Start the replay clock (``delay_s`` wall seconds from now); idempotent."""
        if self._t0 is None:
            self._t0 = time.monotonic() + delay_s

    @property
    def started(self) -> bool:
        return self._t0 is not None and time.monotonic() >= self._t0

    @property
    def finished(self) -> bool:
        """Every message of the recording has been emitted."""
        return self._cursor >= len(self._recs)

    @property
    def progress(self) -> float:
        return self._cursor / len(self._recs)

    @property
    def position(self) -> int:
        """Messages of the recording emitted so far (of :attr:`total`)."""
        return self._cursor

    @property
    def total(self) -> int:
        return len(self._recs)

    def server_time_ms(self) -> int:
        if self._t0 is None:
            return self.first_ms
        el = max(0.0, time.monotonic() - self._t0)
        return self.first_ms + int(self.speed * el * 1000.0)

    # --- MarketSource -------------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def poll(self, now_ms: int, streams: Collection[str]) -> list[Message]:
        if self._t0 is None:
            if streams:
                self.start(self.start_delay_s)
            return []
        if not self.started:
            return []
        if streams is not self._wants_id:
            key = streams if isinstance(streams, frozenset) else frozenset(streams)
            if key != self._wants_key:       # (a set mutated in place is caught too)
                self._wants = _parse_wants(key)
                self._wants_key = key
            self._wants_id = streams if isinstance(streams, frozenset) else None
        wants = self._wants
        out: list[Message] = []
        recs, sched = self._recs, self._sched
        i, n = self._cursor, len(recs)
        while i < n and sched[i] <= now_ms:
            self._emit(recs[i], i, sched[i], wants.get(recs[i].symbol), out)
            i += 1
        self._cursor = i
        self.emitted += len(out)
        return out

    def _emit(self, r: Recorded, i: int, ts: int, w: _Wants | None, out: list[Message]) -> None:
        kind, sym = r.kind, r.symbol
        if kind == KIND_TRADE:
            a = r.data["a"]
            if a > self._max_emitted.get(sym, -1):
                self._max_emitted[sym] = a
                self._visible[sym] = bisect_right(self._trade_ids[sym], a)
            if w is not None and w.trade:
                out.append(Message(w.trade, r.data, ts, r.raw))
        elif kind == KIND_DEPTH:
            rows = self._books[sym].feed(decode.depth_update(r.data))
            if w is not None:
                for s in w.diff:
                    out.append(Message(s, r.data, ts, r.raw))
            self._rows_out(rows, w, ts, out)
        elif kind == KIND_TICKER:
            if w is not None and w.ticker:
                out.append(Message(w.ticker, r.data, ts, r.raw))
        elif kind == KIND_SNAPSHOT:
            rows = self._books[sym].apply_snapshot(decode.depth_snapshot(r.data))
            self._rows_out(rows, w, ts, out)
        elif kind == KIND_OTHER and w is not None and w.other and r.stream:
            out.append(Message(r.stream, r.data, ts, r.raw))

    def _rows_out(self, rows: list, w: _Wants | None, ts: int, out: list[Message]) -> None:
        """Partial-depth messages for the reconstruction's new rows; problems are noted."""
        for o in rows:
            if not isinstance(o, BookTop):
                self.sync_problems.append(o)
            elif w is not None:
                for n, s in w.partial:
                    out.append(Message(s, self._partial(o, n), ts))

    def _partial(self, row: BookTop, n: int) -> dict[str, Any]:
        rec = row.rec
        return {"e": "depthUpdate", "E": rec.event_ts_ms, "T": rec.transact_ts_ms,
                "s": rec.symbol, "U": rec.first_update_id, "u": rec.final_update_id,
                "pu": rec.prev_final_update_id,
                "b": [[_dec(p), _dec(q)] for p, q in zip(row.bid_px[:n], row.bid_qty[:n])],
                "a": [[_dec(p), _dec(q)] for p, q in zip(row.ask_px[:n], row.ask_qty[:n])]}

    def agg_trades(self, symbol: str, from_id: int | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        symbol = symbol.upper()
        if symbol not in self._symbols:
            raise KeyError(symbol)
        trades = self._trades.get(symbol, [])
        vis = self._visible[symbol]
        ids, T = self._trade_ids.get(symbol, []), self._trade_T.get(symbol, [])
        if from_id is not None:
            lo = bisect_left(ids, from_id, 0, vis)
            hi = min(vis, lo + limit)
            if end_ms is not None:
                hi = min(hi, bisect_right(T, end_ms, 0, vis))
        elif start_ms is not None or end_ms is not None:
            lo = bisect_left(T, start_ms, 0, vis) if start_ms is not None else 0
            hi = bisect_right(T, end_ms, 0, vis) if end_ms is not None else vis
            hi = min(hi, lo + limit)
        else:
            hi = vis
            lo = max(0, hi - limit)
        return [dict(t) for t in trades[lo:hi]] if hi > lo else []

    def depth_snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        symbol = symbol.upper()
        if symbol not in self._symbols:
            raise KeyError(symbol)
        snap = self._books[symbol].snapshot(limit)
        if snap is not None:
            return {"lastUpdateId": snap.last_update_id, "E": snap.event_ts_ms,
                    "T": snap.transact_ts_ms,
                    "bids": [[_dec(p), _dec(q)] for p, q in snap.bids],
                    "asks": [[_dec(p), _dec(q)] for p, q in snap.asks]}
        recorded = self._recorded_snaps.get(symbol)
        if not recorded:
            # the recording holds no snapshot to sync from: an honest "try later", never a
            # made-up book (a client retries; its diff book stays unsynced)
            raise ErrorReply(503, -1008, f"Replay has no depth snapshot for {symbol} (the "
                            "recording holds none); diff-depth sync is not possible")
        # the recorded snapshot at or after the replay position (else the last one)
        data = next((d for i, d in recorded if i >= self._cursor), recorded[-1][1])
        return {"lastUpdateId": data["lastUpdateId"], "E": data.get("E", 0),
                "T": data.get("T", 0), "bids": data["bids"][:limit], "asks": data["asks"][:limit]}

    def exchange_info(self) -> dict[str, Any]:
        out = []
        for sym in self._symbols:
            td, ld = self._tick_dec[sym], self._lot_dec[sym]
            tick = _dec(10.0 ** -td) if td else "1"
            lot = _dec(10.0 ** -ld) if ld else "1"
            out.append({
                "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "status": "TRADING",
                "baseAsset": sym[:-4] if sym.endswith("USDT") else sym, "quoteAsset": "USDT",
                "marginAsset": "USDT", "pricePrecision": td, "quantityPrecision": ld,
                "filters": [{"filterType": "PRICE_FILTER", "tickSize": tick, "minPrice": tick,
                             "maxPrice": "10000000"},
                            {"filterType": "LOT_SIZE", "stepSize": lot, "minQty": lot,
                             "maxQty": "10000000"}]})
        return {"timezone": "UTC", "serverTime": self.server_time_ms(), "rateLimits": [],
                "exchangeFilters": [], "assets": [], "symbols": out}

    def ticker_24hr(self, symbol: str) -> dict[str, Any]:
        """REST ticker/24hr: the statistics of the recording's trades (sim/ticker.py)."""
        return recorded_row(symbol, self._trades.get(symbol, []), self.server_time_ms())

    # --- ground truth ---------------------------------------------------------------------
    def ground_truth(self, symbol: str, *, all_trades: bool = False) -> list[dict[str, Any]]:
        """Trades of ``symbol`` emitted so far (or the whole recording), numeric fields, id
        order -- the same shape as the synthetic market's ground truth."""
        symbol = symbol.upper()
        trades = self._trades.get(symbol, [])
        n = len(trades) if all_trades else self._visible[symbol]
        E = self._trade_E[symbol]
        return [{"agg_trade_id": t["a"], "event_ts_ms": E[t["a"]], "trade_ts_ms": t["T"],
                 "symbol": symbol,
                 "price": float(t["p"]), "qty": float(t["q"]), "first_trade_id": t["f"],
                 "last_trade_id": t["l"], "is_buyer_maker": t["m"]} for t in trades[:n]]


def open_replay(path: str | Path, speed: float = 1.0, **kwargs: Any) -> ReplaySource:
    """A :class:`ReplaySource` over the recording(s) at ``path`` (file, directory, glob, or a
    comma-separated list; see :func:`.recordings.load`). ``kwargs``: ``start_delay_s``,
    ``autostart``."""
    recs = rec_mod.load(path)
    return ReplaySource(recs, speed=speed, name=str(path), **kwargs)


def dumps_message(m: Message) -> bytes:
    """The combined-stream envelope of ``m`` (handy for tests and tools)."""
    data = m.raw if m.raw is not None else orjson.dumps(m.data)
    return b'{"stream":"' + m.stream.encode() + b'","data":' + data + b"}"
