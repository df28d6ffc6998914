"""Live CVD monitor: ``cvd_scale_median``, ``cvd_floor_hit_rate``, ``signal_events_total`` and
``signal_z`` per symbol, from the streaming engine run over every trade (docs/monitoring.md
"CVD scale metrics and live signal events").

Why streaming: recomputing the batch engine over trailing windows with polars took ≈ 37 % of
the capture's CPU at 300 symbols (issue 15). Each symbol now keeps the streaming form of the
very engine the ``cvd`` table uses (:mod:`ofi_cvd_harvest.signals.cvdstream`, whose parity with
the batch tables is tested row for row; docs/signals.md "Two forms, one engine"), so a symbol's
memory is a constant (the 200-value MAD window, ~30 buckets, a bounded stage):

* staging (issue 15): ``add`` appends the trade to its symbol's stage (~0.3 µs); the stage
  goes through the engine at ``stage_rows`` trades, at every ``compute``/``update_gauges``
  recompute and at ``flush`` — in numpy chunks (:mod:`.chunked`, the chunked form of the same
  engine, equal to the per-row path) when ≥ ``chunk_rows``, row by row otherwise. Counters and
  statistics therefore move at those points, at most ``recompute_sec`` after the trade.

* the reported window is the last ``report_sec`` of the symbol's engine clock, in
  ``bucket_sec`` buckets (the current bucket plus the ``report_sec / bucket_sec − 1`` before
  it). Each bucket counts its warm rows (non-null z), the rows where the floor set the scale,
  and a histogram of log2(scale) at 1/128 octave; running totals over the window's closed
  buckets are updated when a bucket closes and when one leaves (a row counts into its bucket
  only), so a refresh is O(bins), not O(rows).
* ``cvd_floor_hit_rate`` = floor rows / warm rows of the window: exactly the cvd table's share
  over the same rows. ``cvd_scale_median`` = the median read from the histogram: within
  0.28 % (half a bin) of the table's median over the same rows.
* events: the ``cvd_extreme`` (both directions) and divergence state machines of the events
  table (:mod:`ofi_cvd_harvest.signals.eventstream`) run on the same rows and count into
  ``signal_events_total{symbol,type}``; fed the trades in ``agg_trade_id`` order (no REST
  healing) they fire on the trades the events table holds — the live engine starts cold at the
  capture's start and never restarts, whereas each derived date is warmed from 1 h before
  midnight, so after the first hour the two agree up to that 1.6 % residual weight.
* ``signal_z{symbol,signal="cvd"}``: the last warm z, only for ``monitoring.live_z_symbols``
  (one series per symbol — kept out of the hundreds of symbols on purpose).

Everything runs in the caller's thread (``add`` from the capture loop; ``update_gauges``
processes the stages, then an O(symbols × bins) read); a lock makes the processing and reads
from other threads consistent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

from ..settings import Settings
from ..signals.cvdstream import DAY_MS, CvdStream  # noqa: F401 (DAY_MS re-exported)
from ..signals.eventstream import DivergenceMachine, ThresholdMachine
from . import metrics
from .chunked import chunk_into

log = logging.getLogger(__name__)
BINS_PER_OCTAVE = 128
_INF = math.inf
_NAN = math.nan
_MAX_TS = 1 << 62       # an event time the chunk form's int64 arrays hold
STAGE_ROWS = 4096       # a symbol's staged trades go through the engine at this many ...
CHUNK_ROWS = 256        # ... in numpy from this many (fewer: row by row; the measured crossover
MAX_CHUNK = 4096        # is ~220) in chunks of at most this many; docs/performance.md §7
FLUSH_SLICE_ROWS = 256  # the gauge tick's flush pauses for the loop after about this many
SIGNAL_TYPES = ("cvd_extreme", "divergence_bullish", "divergence_bearish")


@dataclass(frozen=True)
class CvdStats:
    """One symbol's window: ``rows`` = warm rows reported, ``trades`` = trades seen in all."""

    scale_median: float
    floor_hit_rate: float
    rows: int
    trades: int


def scale_bin(scale: float) -> int:
    return math.floor(math.log2(scale) * BINS_PER_OCTAVE)


def hist_median(hist: dict[int, int], n: int) -> float:
    """Median of ``n`` values binned by :func:`scale_bin` (bin centres; even n: the mean of
    the two middle ones)."""
    want = ((n - 1) // 2, n // 2)
    found: list[float] = []
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        while len(found) < 2 and want[len(found)] < seen:
            found.append(2.0 ** ((b + 0.5) / BINS_PER_OCTAVE))
        if len(found) == 2:
            break
    return (found[0] + found[1]) * 0.5


class _Symbol:
    """One symbol's engine, event machines and window counts."""

    __slots__ = ("cvd", "up", "down", "div", "key", "buckets", "cur", "rows", "hits", "hist",
                 "trades", "last_z", "fires", "gauges", "bt", "bq", "bm", "bp", "cache", "direct",
                 "mark")

    def __init__(self, s: Settings, counters: list):
        sig = s.signals
        self.cvd = CvdStream(sig)
        self.up = ThresholdMachine(sig.extreme_threshold, sig.extreme_rearm, sig.rearm_sec,
                                   sig.cooldown_sec, 1)
        self.down = ThresholdMachine(sig.extreme_threshold, sig.extreme_rearm, sig.rearm_sec,
                                     sig.cooldown_sec, -1)
        self.div = DivergenceMachine(sig)
        self.key: int | None = None                 # bucket of the engine clock
        self.buckets: deque[list] = deque()         # [key, warm rows, floor rows, {bin: count}]
        self.cur: list | None = None
        self.rows = 0
        self.hits = 0
        self.hist: dict[int, int] = {}
        self.trades = 0
        self.last_z: float | None = None
        self.fires = counters                       # counter children, SIGNAL_TYPES order
        self.gauges: tuple | None = None            # scale median, floor hit rate, z or None
        # staged trades, not yet through the engine (``add`` appends, ``_flush`` drains)
        self.bt: list[int] = []
        self.bq: list[float] = []
        self.bm: list[bool] = []
        self.bp: list[float] = []                   # NaN: no price
        self.cache: dict = {}                       # the chunk form's arrays (eventchunk)
        self.direct = True                          # quiet symbol: each trade through at once
        self.mark = 0                               # trades at the last gauge tick


class LiveCvd:
    """Per-symbol streaming CVD engine statistics exported as Prometheus metrics."""

    def __init__(self, settings: Settings, *, report_sec: float = 300.0, bucket_sec: float = 10.0,
                 recompute_sec: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 z_symbols: tuple[str, ...] | None = None, stage_rows: int = STAGE_ROWS,
                 chunk_rows: int = CHUNK_ROWS, quiet_rows: int | None = None):
        n = report_sec / bucket_sec if bucket_sec > 0 else 0
        if report_sec <= 0 or bucket_sec <= 0 or n != int(n) or recompute_sec < 0:
            raise ValueError("LiveCvd: report_sec > 0 and a whole number of bucket_sec > 0 "
                             "buckets, recompute_sec >= 0")
        self.settings = settings
        self.report_sec = float(report_sec)
        self.bucket_ms = int(bucket_sec * 1000)
        self.n_buckets = int(n)
        self.recompute_sec = float(recompute_sec)
        self.stage_rows = max(1, int(stage_rows))
        self.chunk_rows = max(2, int(chunk_rows))
        self.quiet_rows = max(1, int(settings.live_quiet_rows if quiet_rows is None
                                     else quiet_rows))
        self.z_symbols = frozenset(settings.live_z_symbols if z_symbols is None else z_symbols)
        self._clock = clock
        self._lock = threading.Lock()
        self._syms: dict[str, _Symbol] = {}
        self._last_compute: float | None = None
        self.stats: dict[str, CvdStats] = {}
        self.errors = 0
        self.chunked_rows = 0               # trades that went through the numpy form
        for sym in settings.symbols:                # series exist (at 0) from the start
            self._state(sym)

    def _state(self, symbol: str) -> _Symbol:
        st = self._syms.get(symbol)
        if st is None:
            counters = [metrics.signal_events_total.labels(symbol=symbol, type=t) for t in SIGNAL_TYPES]
            st = self._syms[symbol] = _Symbol(self.settings, counters)
        return st

    def _gauges(self, symbol: str) -> tuple:
        """``symbol``'s gauge series, made at its first figures (no series reads 0 before)."""
        st = self._state(symbol)
        if st.gauges is None:
            st.gauges = (metrics.GaugeSeries(metrics.cvd_scale_median, symbol),
                         metrics.GaugeSeries(metrics.cvd_floor_hit_rate, symbol),
                         # a z series only for the configured symbols: mind the cardinality
                         metrics.GaugeSeries(metrics.signal_z, symbol, "cvd")
                         if symbol in self.z_symbols else None)
        return st.gauges

    def _roll(self, st: _Symbol, key: int) -> None:
        """A new bucket: the current one joins the totals, buckets that left the window leave
        them (the totals cover the closed buckets of the window, so a row only counts into its
        bucket). Bucket objects are recycled (long-lived small objects made every 10 s per
        symbol would pin allocator arenas, see ``signals/zstream.RollingMad``)."""
        st.key = key
        buckets = st.buckets
        oldest = key - self.n_buckets
        hist = st.hist
        cur = st.cur
        if cur is not None:
            st.rows += cur[1]
            st.hits += cur[2]
            for b, c in cur[3].items():
                if c:
                    hist[b] = hist.get(b, 0) + c
        free = None
        while buckets and buckets[0][0] <= oldest:
            free = buckets.popleft()
            _, rows, hits, h = free
            st.rows -= rows
            st.hits -= hits
            for b, c in h.items():
                if not c:
                    continue
                left = hist[b] - c
                if left:
                    hist[b] = left
                else:
                    del hist[b]
        if free is None:
            free = [key, 0, 0, {}]
        else:
            free[0], free[1], free[2] = key, 0, 0
            h = free[3]
            if len(h) > 64:
                h.clear()
            else:
                for b in h:
                    h[b] = 0        # keep the keys (and the table): recycled, not reallocated
        buckets.append(free)
        st.cur = free

    def add(self, symbol: str, event_ts_ms: int, qty: float, is_buyer_maker: bool,
            price: float | None = None) -> None:
        """One unique trade (after dedup, in arrival order), staged: it goes through the engine
        when the symbol has ``stage_rows`` staged, or at the next ``compute``/``update_gauges``
        (docs/monitoring.md "CVD scale metrics and live signal events"). A quiet symbol — a
        new one, or one with fewer than ``chunk_rows`` trades between the last two gauge
        ticks — goes row by row, one symbol at a time, at ``quiet_rows`` staged (the setting
        ``monitoring.live_quiet_rows``, 16 by default) and at the tick (:meth:`tick`, in
        slices), until it has ``chunk_rows`` trades since the last tick; with ``quiet_rows``
        = 1 its trades go through at once (docs/performance.md §7 and §13: staged ~⅓ less
        CPU at 300 quiet symbols). Without ``price`` the divergence machines are not fed.
        A non-finite or negative quantity or event time is
        skipped (it would poison the symbol's state for good), and nothing raises into the
        capture.

        No lock here: the four appends are each atomic under the GIL and the price goes last,
        so a drain in another thread that takes ``len(bp)`` rows only sees complete trades."""
        try:
            if not (0.0 <= qty < _INF and type(event_ts_ms) is int and 0 <= event_ts_ms < _MAX_TS):
                return
            if price is None or not -_INF < price < _INF:
                price = _NAN
            st = self._syms.get(symbol) or self._state(symbol)
            if st.direct:
                limit = self.quiet_rows
                if limit == 1:
                    with self._lock:
                        self._row(st, event_ts_ms, qty, is_buyer_maker, price)
                        if st.trades - st.mark >= self.chunk_rows and st.cvd.engine is not None:
                            st.direct = False           # busy since the last tick: stage
                    return
            else:
                limit = self.stage_rows
            st.bt.append(event_ts_ms)
            st.bq.append(qty)
            st.bm.append(is_buyer_maker)
            bp = st.bp
            bp.append(price)
            if len(bp) >= limit:
                with self._lock:
                    self._flush(st)
                    if (st.direct and st.trades - st.mark >= self.chunk_rows
                            and st.cvd.engine is not None):
                        st.direct = False               # busy since the last tick
        except Exception:  # a monitoring failure must never reach the capture
            self._failed(symbol)

    def _failed(self, symbol: str) -> None:
        self.errors += 1
        if self.errors <= 3:
            log.exception("live CVD: trade(s) of %s skipped", symbol)

    def _flush(self, st: _Symbol) -> None:
        """Run the staged trades through the engine (lock held): large chunks in numpy, small
        ones (and a symbol's first ``floor_window`` rows, and a chunk crossing midnight) row by
        row. A trade that fails is counted in ``errors`` and dropped."""
        n = len(st.bp)
        if not n:
            return
        ts, qty, ibm, px = st.bt[:n], st.bq[:n], st.bm[:n], st.bp[:n]
        del st.bt[:n], st.bq[:n], st.bm[:n], st.bp[:n]
        i = 0
        eng = st.cvd.engine
        if n >= self.chunk_rows and eng is not None:
            i = min(n, eng.mad.w - len(eng.mad.ring))      # a cold engine: rows until warm
            self._rows(st, ts[:i], qty[:i], ibm[:i], px[:i])
            while n - i >= self.chunk_rows:
                j = n if n - i <= MAX_CHUNK + self.chunk_rows else i + MAX_CHUNK
                try:
                    if not chunk_into(self, st, ts[i:j], qty[i:j], ibm[i:j], px[i:j]):
                        break                               # e.g. midnight: per row below
                except Exception:
                    self._failed("(chunk)")
                    return
                self.chunked_rows += j - i
                i = j
        self._rows(st, ts[i:], qty[i:], ibm[i:], px[i:])

    def _rows(self, st: _Symbol, ts: list, qty: list, ibm: list, px: list) -> None:
        row = self._row
        for a, b, c, d in zip(ts, qty, ibm, px):
            try:
                row(st, a, b, c, d)
            except Exception:
                self._failed("(row)")

    def flush(self) -> None:
        """Run every symbol's staged trades through the engine now."""
        with self._lock:
            for st in self._syms.values():
                if st.bp:
                    self._flush(st)

    def _row(self, st: _Symbol, event_ts_ms: int, qty: float, is_buyer_maker: bool,
             price: float) -> None:
        """One trade through the per-row (streaming) form."""
        t, delta, _, _, z, scale, _, floor_used = st.cvd.update(event_ts_ms, qty, is_buyer_maker)
        st.trades += 1
        key = t // self.bucket_ms
        if key != st.key:
            self._roll(st, key)
        if z is not None:
            cur = st.cur
            b = math.floor(math.log2(scale) * BINS_PER_OCTAVE)    # scale_bin, inlined
            cur[1] += 1
            if floor_used:
                cur[2] += 1
            h = cur[3]
            h[b] = h.get(b, 0) + 1
            st.last_z = z
            if st.up.update(t, z):
                st.fires[0].inc()
            if st.down.update(t, z):
                st.fires[0].inc()
        if price == price:
            bull, bear = st.div.update(t, price, delta)
            if bull:
                st.fires[1].inc()
            if bear:
                st.fires[2].inc()

    def compute(self, symbols: list[str] | None = None, *,
                _tick: bool = False) -> dict[str, CvdStats]:
        """The window statistics of ``symbols`` (default: all) now, staged trades included (no
        gauge update; ``_tick``: the gauge tick, which also sets which symbols stage). A symbol
        without a warm row in its window has NaN statistics (no alert fires on NaN)."""
        out = {}
        with self._lock:
            for sym in (list(self._syms) if symbols is None else symbols):
                st = self._syms.get(sym)
                if st is None:
                    continue
                if st.bp:
                    self._flush(st)
                if _tick:       # fewer trades than a chunk since the last tick (or the
                    #               level mode, never chunked): no staging
                    st.direct = (st.trades - st.mark < self.chunk_rows
                                 or st.cvd.engine is None)
                    st.mark = st.trades
                cur = st.cur
                rows = st.rows + (cur[1] if cur else 0)
                if rows:
                    hist = st.hist
                    if cur[1]:                  # the current bucket is not in the totals
                        hist = dict(hist)
                        for b, c in cur[3].items():
                            if c:
                                hist[b] = hist.get(b, 0) + c
                    out[sym] = CvdStats(hist_median(hist, rows), (st.hits + cur[2]) / rows,
                                        rows, st.trades)
                else:
                    out[sym] = CvdStats(math.nan, math.nan, 0, st.trades)
        return out

    def _due(self, now: float) -> bool:
        return self._last_compute is None or now - self._last_compute >= self.recompute_sec

    def flush_steps(self, budget_rows: int = FLUSH_SLICE_ROWS) -> Iterator[None]:
        """Run every symbol's staged trades through the engine, a symbol at a time, pausing
        (``yield``) after each ~``budget_rows`` trades. Why: with ``quiet_rows`` staging, the
        gauge tick held up to ``quiet_rows - 1`` trades of every quiet symbol -- at 300
        symbols ~2,000 trades, 13-21 ms run at once, a stall of the capture's loop every
        10 s (docs/performance.md §7); in slices the loop reads frames in between."""
        done = 0
        for st in list(self._syms.values()):
            n = len(st.bp)
            if n:
                with self._lock:
                    self._flush(st)
                done += n
                if done >= budget_rows:
                    done = 0
                    yield

    async def tick(self) -> None:
        """The capture's gauge tick: the staged trades in slices between the loop's other
        work (:meth:`flush_steps`), then :meth:`update_gauges` (which flushes what arrived
        meanwhile). Not due: nothing (``update_gauges`` would return at once)."""
        if not self._due(self._clock()):
            return
        for _ in self.flush_steps():
            await asyncio.sleep(0)
        self.update_gauges(force=True)      # still due: the clock only moved on

    def update_gauges(self, force: bool = False) -> dict[str, CvdStats]:
        """Set the gauges of every symbol if ``recompute_sec`` has passed since the last time
        (or ``force``); returns the latest stats."""
        now = self._clock()
        if not (force or self._due(now)):
            return self.stats
        self._last_compute = now
        stats = self.compute(_tick=True)
        for sym, s in stats.items():
            gauges = self._gauges(sym)
            gauges[0].set(s.scale_median)
            gauges[1].set(s.floor_hit_rate)
        for sym in self.z_symbols:
            st = self._syms.get(sym)
            if st is not None and st.last_z is not None:
                self._gauges(sym)[2].set(st.last_z)
        self.stats = stats
        return stats

    def join(self, timeout: float | None = None) -> None:
        """Nothing runs in the background any more; kept for the capture's shutdown call."""
