"""Seeded synthetic USDT-M market: a :class:`~.source.MarketSource` for the simulator.

Model, per symbol, in 100 ms windows of simulated time (so the content never depends on how
often the server polls — only on the seed, the symbols and ``start_ms``):

* trade arrivals: discretised Hawkes process (intensity = base × slow activity factor +
  self-excitation that jumps with every trade and decays), so trades come in bursts;
* sizes: log-normal fitted to the real median/p99, capped, rounded to the lot step;
* side: P(taker buy) follows a fast mean-reverting "flow mood", so signed flow is persistent;
* book (:mod:`.book`): takers consume the best levels (a sweep splits into one aggTrade per
  price level, as on Binance), quote events cancel/improve the top biased by the same mood,
  background churn resizes ~30 levels per window — prices therefore move with signed flow;
* study markets (docs/research.md, :class:`StudyMode`): a planted signal of lead L replaces
  the mood by a planted "intent" process that biases the book's quote events now and the
  takers' side L seconds later (book imbalance leads trade direction and price by L s); the
  null market drops the mood
  (independent 50/50 sides and quote directions) and prints every trade at an independent
  random walk that the book follows, so nothing observable predicts the price (no bid–ask
  bounce, no queue depletion);
* ids: aggTrade ``a`` consecutive per symbol (``f``/``l`` fill ids), book update ids from one
  global counter; each depth event has ``U``..``u`` and ``pu`` = that symbol's previous ``u``.

Clock: ``server_time_ms = start_ms + speed × wall elapsed`` (at speed 1 it is the wall clock).
A window is generated once the clock enters it and its messages are released as the clock
passes their ``E``; trades are visible to REST once the clock passes their ``T``.
"""

from __future__ import annotations

import math
import time
import zlib
from collections import deque
from collections.abc import Collection
from typing import Any

import numpy as np
import orjson

from ..protocol.vocabulary import (AGG_TRADE, BOOK_SPEED, BOOK_TICKER, DIFF, PARTIAL,
                                   PARTIAL_LEVELS, agg_trade_stream, book_ticker_stream,
                                   diff_depth_stream, parse_stream, partial_depth_stream)
from .book import BandBook
from .pools import ArrayPool, ListPool, poisson
from .render import DepthRenderer
from .source import Message
from .symbols import SymbolSpec, fmt_fixed, spec_for
from .ticker import ticker_row
from .tradelog import TradeLog

WINDOW_MS = 100
BRANCHING = 0.7          # Hawkes branching ratio (share of trades triggered by earlier ones)
DECAY_PER_S = 2.0        # Hawkes excitation decay rate
ACTIVITY_TAU_S = 600.0   # slow activity factor (busy/calm stretches)
ACTIVITY_SD = 0.35
MOOD_TAU_S = 5.0         # flow mood (persistence of signed flow)
MAX_SYMBOL_WINDOWS_PER_POLL = 1000   # bounds one poll's CPU (keeps the event loop responsive)
PLANTED_TAU_S = 5.0      # time constant of the planted intent (as the mood's)
PLANTED_STRENGTH = 0.3   # max tilt of P(buy) and P(quote up) away from 0.5 (as the mood's)


class Wants:
    """Which payloads to build for one symbol (from the subscribed stream names)."""
    __slots__ = ("trade", "ticker", "diff", "partial")

    def __init__(self) -> None:
        self.trade = self.ticker = self.diff = False
        self.partial: tuple[int, ...] = ()


def parse_wants(streams: Collection[str]) -> dict[str, Wants]:
    out: dict[str, Wants] = {}
    for s in streams:
        sp = parse_stream(s)
        w = out.setdefault(sp.symbol, Wants())
        if sp.extra:
            continue
        if sp.kind == AGG_TRADE and sp.speed is None:
            w.trade = True
        elif sp.kind == BOOK_TICKER and sp.speed is None:
            w.ticker = True
        elif sp.kind == DIFF and sp.speed == BOOK_SPEED:
            w.diff = True
        elif (sp.kind == PARTIAL and sp.speed == BOOK_SPEED and sp.levels in PARTIAL_LEVELS
              and sp.levels not in w.partial):
            w.partial = w.partial + (sp.levels,)
    return out


_NO_WANTS = Wants()


class SymbolModel:
    """One symbol's generator: trades, book, ids and its ground-truth log."""

    def __init__(self, spec: SymbolSpec, seed: int, gid: list[int], depth_levels: int = 100,
                 study: "StudyMode | None" = None):
        self.spec = spec
        self.sym = spec.symbol
        # the names it publishes, built once by the vocabulary (not per message)
        self.trade_stream = agg_trade_stream(spec.symbol)
        self.ticker_stream = book_ticker_stream(spec.symbol)
        self.diff_stream = diff_depth_stream(spec.symbol)
        self.partial_streams = {lv: partial_depth_stream(spec.symbol, lv) for lv in PARTIAL_LEVELS}
        self.rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(spec.symbol.encode())])
        r = self.rng
        self.td, self.ld = spec.tick_decimals, spec.lot_decimals
        self.lot_median = spec.size_median / spec.lot_size
        self.lot_cap = max(1, int(round(spec.size_max / spec.lot_size)))
        self.log_median = math.log(self.lot_median)
        self.sigma = spec.size_sigma
        mid_tick = int(round(spec.price / spec.tick_size))
        self.book = BandBook(mid_tick, depth_levels, r, 150.0 * self.lot_median)
        first_id = int(r.integers(10**8, 3 * 10**9))
        self.log = TradeLog(spec, first_id, first_id * 3 + int(r.integers(0, 10**6)))
        self.next_fill = self.log.first_fill_id
        self.mu = spec.trade_rate * (1.0 - BRANCHING)
        dt = WINDOW_MS / 1000.0  # discretised: branching = alpha*dt/(1-exp(-decay*dt))
        self.alpha = BRANCHING * (1.0 - math.exp(-DECAY_PER_S * dt)) / dt
        self.excite = 0.0
        self.activity = 0.0
        self.mood = 0.0
        self.quote_rate = max(0.0, spec.book_ticker_rate - spec.trade_rate)
        self.gid = gid                      # shared global update id counter (1-element list)
        gid[0] += 1
        self.last_u = gid[0]
        self.last_top = self._top()
        self._px: dict[int, str] = {}   # tick -> price string (prices revisit the same ticks)
        self._qty: dict[int, str] = {}
        self.window = 0
        self.render = DepthRenderer(self.sym, self.td, self.ld)
        self._init_pools(spec.depth_changes)
        self.study = study.for_symbol(seed, spec.symbol) if study is not None else None

    def fpx(self, ticks: int) -> str:
        s = self._px.get(ticks)
        if s is None:
            if len(self._px) > 200_000:
                self._px.clear()
            s = self._px[ticks] = fmt_fixed(ticks, self.td)
        return s

    def fqty(self, lots: int) -> str:
        s = self._qty.get(lots)
        if s is None:
            if len(self._qty) > 200_000:
                self._qty.clear()
            s = self._qty[lots] = fmt_fixed(lots, self.ld)
        return s

    def _top(self) -> tuple[int, int, int, int]:
        b = self.book
        return (b.b + b.base, int(b.bid[b.b]), b.a + b.base, int(b.ask[b.a]))

    def _init_pools(self, churn_mean: float) -> None:
        r = self.rng
        lm, sg, cap, d = self.log_median, self.sigma, self.lot_cap, self.book.depth
        self.p_norm = ListPool(r.standard_normal)
        self.p_unif = ListPool(r.random)
        self.p_off = ListPool(lambda n: r.integers(1, WINDOW_MS + 1, n))
        self.p_lots = ListPool(lambda n: np.clip(np.rint(r.lognormal(lm, sg, n)), 1, cap)
                               .astype(np.int64))
        self.p_fills = ListPool(lambda n: r.geometric(0.6, n))
        self.p_lag = ListPool(lambda n: r.integers(0, 4, n))
        self.p_nchurn = ListPool(lambda n: r.poisson(churn_mean, n))
        book = self.book

        def churn_rows(n: int) -> np.ndarray:
            rows = np.empty((n, 3), np.int64)
            rows[:, 0] = np.minimum(r.geometric(0.08, n), d - 1)          # distance from best
            rows[:, 1] = r.random(n) < 0.5                                # bid side?
            new = book._sizes(n)
            new[(r.random(n) < 0.12) & (rows[:, 0] > 3)] = 0               # some levels vanish
            rows[:, 2] = new
            return rows
        self.p_churn = ArrayPool(churn_rows)

    def step(self, t0: int, w: Wants, out: list[Message]) -> None:
        """Generate window (t0, t0 + 100 ms]: append its messages to ``out`` (unsorted)."""
        unif = self.p_unif.next
        z1, z2 = self.p_norm.next(), self.p_norm.next()
        # slow activity and fast mood: exact OU updates
        self.activity = self.activity * _KA + _SA * z1
        self.mood = mood = self.mood * _KM + _SM * z2
        act = math.exp(self.activity - ACTIVITY_SD ** 2 / 2)
        lam = self.mu * act + self.excite
        n = poisson(min(lam, 5000.0) * _DT, unif(), self.rng)
        self.excite = self.excite * _DECAY + self.alpha * n
        tilt = 0.3 * math.tanh(mood)
        p_buy = 0.5 + tilt
        if self.study is not None:  # quotes follow tilt, takers p_buy (docs/research.md)
            tilt, p_buy = self.study.step(self.book)
        nq = poisson(self.quote_rate * act * _DT, unif(), self.rng)
        book = self.book
        book.recentre()
        if w.diff:
            old_bid = book.bid.copy()
            old_ask = book.ask.copy()
        gid = self.gid
        U = gid[0] + 1
        sym = self.sym
        fpx, fqty = self.fpx, self.fqty
        if n or nq:
            t_off = self.p_off.take(n + nq)
            order = sorted(range(n + nq), key=t_off.__getitem__)
            lots = self.p_lots.take(n)
            nfills = self.p_fills.take(n)
            lags = self.p_lag.take(n)
            add = self.log.add
            a = self.log.next_id
            fill = self.next_fill
            tend = t0 + WINDOW_MS
            last_e = t0
            for k in order:
                T = t0 + t_off[k]
                if k < n:
                    is_buy = unif() < p_buy
                    E = last_e = min(max(T + lags[k], last_e), tend)  # E never goes back
                    nf = nfills[k]
                    fills = book.take(is_buy, lots[k]) if self.study is None or self.study.lag \
                        else self.study.walk_fill(lots[k])
                    for px, q in fills:
                        f = fill
                        fill += nf
                        nf = 1
                        if w.trade:
                            qs = fqty(q)
                            d = {"e": "aggTrade", "E": E, "a": a, "s": sym, "p": fpx(px), "q": qs,
                                 "nq": qs, "f": f, "l": fill - 1, "T": T, "m": not is_buy}
                            out.append(Message(self.trade_stream, d, E, _dumps(d)))
                        add(T, E, px, q, fill - 1, not is_buy)
                        a += 1
                else:
                    book.quote(unif() < 0.5 + tilt, unif())
                    E = T
                gid[0] += 1
                if w.ticker:
                    top = (book.b + book.base, int(book.bid[book.b]), book.a + book.base,
                           int(book.ask[book.a]))
                    if top != self.last_top:
                        self.last_top = top
                        d = {"e": "bookTicker", "u": gid[0], "s": sym, "b": fpx(top[0]),
                             "B": fqty(top[1]), "a": fpx(top[2]), "A": fqty(top[3]),
                             "T": T, "E": E}
                        out.append(Message(self.ticker_stream, d, E, _dumps(d)))
            self.next_fill = fill
        if self.study is not None and not self.study.lag:   # null market: the book follows
            book.shift(self.study.walk - (book.base + (book.b + book.a) // 2))
        nc = self.p_nchurn.next()
        rows = self.p_churn.take(nc)
        self.window += 1
        book.churn(rows[:, 0], rows[:, 1].astype(bool), rows[:, 2], self.window % 8 == 0)
        gid[0] += 1
        E = t0 + WINDOW_MS
        T = E - 1 - (gid[0] & 1)
        top = (book.b + book.base, int(book.bid[book.b]), book.a + book.base, int(book.ask[book.a]))
        if top != self.last_top:  # background flow moved the top: bookTicker with the churn's id
            self.last_top = top
            if w.ticker:
                d = {"e": "bookTicker", "u": gid[0], "s": sym, "b": fpx(top[0]), "B": fqty(top[1]),
                     "a": fpx(top[2]), "A": fqty(top[3]), "T": T, "E": E}
                out.append(Message(self.ticker_stream, d, E, _dumps(d)))
        # every window changes the book (churn), so a depth event goes out every 100 ms
        u, pu = gid[0], self.last_u
        self.last_u = u
        rd = self.render
        if w.diff:
            bt, bq, at, aq = book.diff_raw(old_bid, old_ask)
            raw = rd.render(E, T, U, u, pu, rd.values(bt, bq), rd.values(at, aq))
            out.append(Message(self.diff_stream, None, E, raw))
        if w.partial:
            bt, bq, at, aq = book.top_raw(max(w.partial))
            bv, av = rd.values(bt, bq), rd.values(at, aq)
            k = rd.k
            for lv in w.partial:
                raw = rd.render(E, T, U, u, pu, bv[:lv * k], av[:lv * k])
                out.append(Message(self.partial_streams[lv], None, E, raw))


_DT = WINDOW_MS / 1000.0
_KA = math.exp(-_DT / ACTIVITY_TAU_S)
_SA = math.sqrt(1 - _KA * _KA) * ACTIVITY_SD
_KM = math.exp(-_DT / MOOD_TAU_S)
_SM = math.sqrt(1 - _KM * _KM)
_DECAY = math.exp(-DECAY_PER_S * _DT)
_KP = math.exp(-_DT / PLANTED_TAU_S)
_SP = math.sqrt(1 - _KP * _KP)
_dumps = orjson.dumps


class StudyMode:
    """The study markets' settings (``planted_sec`` > 0: planted signal; else the null market)."""

    def __init__(self, planted_sec: float | None = None, null_market: bool = False):
        if (planted_sec is None) == (not null_market):
            raise ValueError("a study market is either planted (seconds > 0) or null")
        if planted_sec is not None and not (0 < planted_sec <= 3600 and math.isfinite(planted_sec)):
            raise ValueError("planted signal lead must be in (0, 3600] seconds")
        self.planted_sec = planted_sec

    def for_symbol(self, seed: int, symbol: str) -> "_StudyState":
        return _StudyState(self.planted_sec, seed, symbol)


class _StudyState:
    """Per-symbol study state: the planted intent (an OU process of its own RNG, so the rest of
    the market draws the same numbers) and its last L seconds of values."""

    def __init__(self, planted_sec: float | None, seed: int, symbol: str):
        self.lag = 0 if planted_sec is None else max(1, int(round(planted_sec * 1000 / WINDOW_MS)))
        self.rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), 1])
        self.intent = 0.0
        self.past: deque[float] = deque([0.0] * self.lag)
        self.walk: int | None = None     # null market: the trade price (ticks), a random walk
        self._u: list[float] = []

    def walk_fill(self, lots: int) -> list[tuple[int, int]]:
        """Null market: one fill at the walk's price, which first steps −1/0/+1 tick with
        probabilities 0.2/0.6/0.2 — independent of the book, the side and the past."""
        if not self._u:
            self._u = self.rng.random(256).tolist()
        u = self._u.pop()
        self.walk += (u > 0.8) - (u < 0.2)
        return [(self.walk, lots)]

    def step(self, book: BandBook) -> tuple[float, float]:
        """(quote tilt now, P(taker buy)) for the next window."""
        if not self.lag:
            if self.walk is None:
                self.walk = book.base + (book.b + book.a) // 2
            return 0.0, 0.5
        self.intent = self.intent * _KP + _SP * float(self.rng.standard_normal())
        self.past.append(self.intent)
        lagged = self.past.popleft()
        return (PLANTED_STRENGTH * math.tanh(self.intent),
                0.5 + PLANTED_STRENGTH * math.tanh(lagged))


class SyntheticMarket:
    """The seeded synthetic market (see module docstring). Not thread-safe: the server calls
    it from one event loop."""

    def __init__(self, symbols: Collection[str], *, seed: int = 0, speed: float = 1.0,
                 start_ms: int | None = None, depth_levels: int = 100,
                 study: StudyMode | None = None):
        if speed <= 0 or not math.isfinite(speed):
            raise ValueError("speed must be a positive number")
        syms = tuple(dict.fromkeys(s.upper() for s in symbols))
        if not syms:
            raise ValueError("at least one symbol is needed")
        self.seed = seed
        self.speed = float(speed)
        self.start_ms = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._t0 = time.monotonic()
        self._gid = [10**12 + int(np.random.default_rng(seed & 0xFFFFFFFF).integers(0, 10**11))]
        self.models: dict[str, SymbolModel] = {
            s: SymbolModel(spec_for(s), seed, self._gid, depth_levels, study) for s in syms}
        self._symbols = syms
        self._next_window = 0
        self._pending: deque[Message] = deque()
        self._visible_ms = self.start_ms
        self._wants_key: Any = None
        self._wants: dict[str, Wants] = {}
        self.generated_until_ms = self.start_ms

    # --- MarketSource ----------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def server_time_ms(self) -> int:
        return self.start_ms + int(self.speed * (time.monotonic() - self._t0) * 1000.0)

    def poll(self, now_ms: int, streams: Collection[str]) -> list[Message]:
        if streams is not self._wants_key:
            self._wants = parse_wants(streams)
            self._wants_key = streams
        wants = self._wants
        budget = max(1, MAX_SYMBOL_WINDOWS_PER_POLL // len(self.models))
        while budget and self.start_ms + self._next_window * WINDOW_MS <= now_ms:
            t0 = self.start_ms + self._next_window * WINDOW_MS
            out: list[Message] = []
            for sym, model in self.models.items():
                model.step(t0, wants.get(sym, _NO_WANTS), out)
            out.sort(key=_ts)
            self._pending.extend(out)
            self._next_window += 1
            self.generated_until_ms = t0 + WINDOW_MS
            budget -= 1
        pending, due = self._pending, []
        while pending and pending[0].ts_ms <= now_ms:
            due.append(pending.popleft())
        self._visible_ms = min(now_ms, self.generated_until_ms)
        return due

    def agg_trades(self, symbol: str, from_id: int | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
        return self.models[symbol.upper()].log.query(self._visible_ms, from_id, start_ms, end_ms, limit)

    def depth_snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """The book as of the last *generated* depth event (up to one window ahead of the
        stream, as a real snapshot is ahead of the 100 ms-aggregated stream): its
        ``lastUpdateId`` is that event's ``u``, so the event satisfies
        ``U <= lastUpdateId <= u`` when it arrives."""
        m = self.models[symbol.upper()]
        bids, asks = m.book.levels(limit, m.td, m.ld)
        now = min(self.server_time_ms(), self.generated_until_ms)
        return {"lastUpdateId": m.last_u, "E": now, "T": now - 1, "bids": bids, "asks": asks}

    def exchange_info(self) -> dict[str, Any]:
        out = []
        for sym, m in self.models.items():
            s = m.spec
            out.append({
                "symbol": sym, "pair": sym, "contractType": "PERPETUAL", "status": "TRADING",
                "baseAsset": sym[:-4] if sym.endswith("USDT") else sym, "quoteAsset": "USDT",
                "marginAsset": "USDT", "pricePrecision": s.tick_decimals,
                "quantityPrecision": s.lot_decimals,
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": fmt_fixed(1, s.tick_decimals),
                     "minPrice": fmt_fixed(1, s.tick_decimals),
                     "maxPrice": fmt_fixed(10 ** (s.tick_decimals + 7), s.tick_decimals)},
                    {"filterType": "LOT_SIZE", "stepSize": fmt_fixed(1, s.lot_decimals),
                     "minQty": fmt_fixed(1, s.lot_decimals),
                     "maxQty": fmt_fixed(10 ** (s.lot_decimals + 6), s.lot_decimals)},
                ]})
        return {"timezone": "UTC", "serverTime": self.server_time_ms(), "rateLimits": [],
                "exchangeFilters": [], "assets": [], "symbols": out}

    def ticker_24hr(self, symbol: str) -> dict[str, Any]:
        """REST ticker/24hr: the model's expected day (sim/ticker.py), last trade so far."""
        m = self.models[symbol.upper()]
        last = m.log.query(self._visible_ms, limit=1)
        return ticker_row(m.spec, self.seed, self.server_time_ms(),
                          last[0]["p"] if last else None, last[0]["a"] if last else None)

    # --- ground truth ----------------------------------------------------------------------
    def ground_truth(self, symbol: str) -> list[dict[str, Any]]:
        """Every trade of ``symbol`` visible so far (numeric fields, id order)."""
        return self.models[symbol.upper()].log.records(self._visible_ms)

    def visible_trade_columns(self, symbol: str) -> tuple[dict[str, np.ndarray], SymbolSpec]:
        """Ground-truth columns of the trades visible so far, and the symbol's spec."""
        log = self.models[symbol.upper()].log
        T = log.columns()["T"]
        n = int(np.searchsorted(T, self._visible_ms, side="right"))
        return log.columns(0, n), log.spec

    def trade_columns(self, symbol: str) -> dict[str, np.ndarray]:
        """Raw ground-truth columns of ``symbol`` (all generated trades)."""
        return self.models[symbol.upper()].log.columns()


def _ts(m: Message) -> int:
    return m.ts_ms
