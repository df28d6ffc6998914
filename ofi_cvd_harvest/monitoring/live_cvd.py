"""Live CVD scale monitor: ``cvd_scale_median`` and ``cvd_floor_hit_rate`` per symbol.

Why: the ``CvdFloorHitRateHigh`` alert must describe the numbers researchers will see in the
``cvd`` table, so this runs the very same code (:func:`ofi_cvd_harvest.signals.cvd.cvd_frame`,
i.e. the SPEC §5.1 engine) instead of a streaming look-alike. It is recomputed every few
seconds over a bounded window of recent trades per symbol: the last ``report_sec`` of trades
are reported, the ``warmup_sec`` before them warm the EW means (6 half-lives by default, as the
derivation does at midnight). One refresh handles at most ``rows_per_refresh`` held rows, taking
symbols round-robin, so its cost stays bounded with hundreds of symbols (each symbol's gauges
are then refreshed every few periods instead of every one).

Memory is bounded by design and proportional to the trades actually held:

* ``add`` appends one tuple to a single staging list (no lock, no numpy scalar stores: a list
  append is atomic under the GIL). The staging list is drained by the refresh thread (before
  and during each refresh), and by ``add`` itself if it ever reaches ``stage_rows`` rows
  (nobody refreshing), so it never holds more than ``stage_rows`` trades.
* Drained rows go to per-symbol growable numpy columns (int64 time, float64 qty, bool side:
  17 bytes a trade) that are trimmed on every drain to the horizon -- rows whose engine clock
  (running max of the event time) is within ``warmup_sec + report_sec`` of the newest -- and
  to at most ``max_rows`` rows (oldest dropped; if a very busy market overflows it, the warm-up
  is simply shorter). A column is sized 1.25x the rows it holds when it grows and is
  reallocated smaller once above 2x (256 rows minimum): a quiet symbol gives its memory back
  after a burst.
* A refresh copies and computes one symbol at a time, so the transient polars frames are those
  of a single symbol's window, not of the whole batch.

Usage from the capture loop::

    live = LiveCvd(settings)
    live.add(symbol, event_ts_ms, qty, is_buyer_maker)   # per unique aggTrade, cheap
    live.update_gauges()                                 # call often; recomputes every 10 s

A recomputation is CPU work (a few hundred ms for an hour of BTCUSDT, mostly the rolling MAD),
so by default ``update_gauges`` hands it to a background thread and returns at once: the capture
loop never stalls (a stall would show up as receipt latency). ``add`` is thread-safe.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable

import numpy as np
import polars as pl

from ..settings import Settings
from ..signals.cvd import cvd_frame
from . import metrics

DAY_MS = 86_400_000
log = logging.getLogger(__name__)
_MIN_CAPACITY = 256
_NO_CLOCK = np.iinfo(np.int64).min
_SYM, _TS, _QTY, _IBM = (itemgetter(i) for i in range(4))   # fields of a staged row


@dataclass(frozen=True)
class CvdStats:
    """One symbol's trailing-window result (``rows`` = reported rows with a warm z)."""

    scale_median: float
    floor_hit_rate: float
    rows: int
    buffered: int


def _clock_prefix(ts: np.ndarray, pre: int, cutoff: int) -> int:
    """How many leading rows have an engine clock (running max of ``ts``, starting from
    ``pre``) at or before ``cutoff``. Scans a growing prefix: usually only a few rows go."""
    if pre > cutoff:
        return 0
    n = len(ts)
    m = 256
    while True:
        t = np.maximum.accumulate(ts[:m])
        if t[0] < pre:
            np.maximum(t, pre, out=t)
        if t[-1] > cutoff or m >= n:
            return int(np.searchsorted(t, cutoff, side="right"))
        m *= 4


class _Series:
    """One symbol's held trades, oldest first: rows ``head .. head + n`` of three growable
    numpy columns. ``clock`` is the engine clock (running max of event time) at the last row
    dropped or held; ``pre`` the clock just before the first held row."""

    __slots__ = ("ts", "qty", "ibm", "head", "n", "pre", "clock")

    def __init__(self) -> None:
        self.ts = np.empty(_MIN_CAPACITY, dtype=np.int64)
        self.qty = np.empty(_MIN_CAPACITY, dtype=np.float64)
        self.ibm = np.empty(_MIN_CAPACITY, dtype=np.bool_)
        self.head = 0
        self.n = 0
        self.pre = _NO_CLOCK
        self.clock = _NO_CLOCK

    def view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sl = slice(self.head, self.head + self.n)
        return self.ts[sl], self.qty[sl], self.ibm[sl]

    def extend(self, ts: np.ndarray, qty: np.ndarray, ibm: np.ndarray, horizon_ms: int,
               max_rows: int) -> None:
        """Append rows (arrival order), then drop the oldest held rows whose engine clock is at
        or before ``newest clock - horizon_ms`` and any beyond ``max_rows``."""
        k = len(ts)
        if k == 0:
            return
        t_new = np.maximum.accumulate(ts)
        if t_new[0] < self.clock:
            np.maximum(t_new, self.clock, out=t_new)
        clock = int(t_new[-1])
        cutoff = clock - horizon_ms
        held_ts = self.ts[self.head:self.head + self.n]
        drop_old = _clock_prefix(held_ts, self.pre, cutoff) if self.n else 0
        drop_new = int(np.searchsorted(t_new, cutoff, side="right")) if drop_old == self.n else 0
        excess = (self.n - drop_old) + (k - drop_new) - max_rows
        if excess > 0:                      # the hard row cap: oldest first
            extra_old = min(excess, self.n - drop_old)
            drop_old += extra_old
            drop_new += excess - extra_old
        # the clock just before the first row kept
        if drop_new:
            pre = int(t_new[drop_new - 1])
        elif drop_old:
            pre = int(max(self.pre, held_ts[:drop_old].max()))
        else:
            pre = self.pre
        keep_old = self.n - drop_old
        ts, qty, ibm = ts[drop_new:], qty[drop_new:], ibm[drop_new:]
        k = len(ts)
        need = keep_old + k
        start = self.head + drop_old
        cap = len(self.ts)
        too_big = cap > max(_MIN_CAPACITY, 2 * need)
        if start + need > cap or too_big:
            # move the kept rows to the front: of the same columns if that leaves 1/8 free
            # (a move then costs at most 8 row copies per row appended), else of new ones
            # sized 1.25x
            if too_big or need + need // 8 > cap:
                new_cap = max(_MIN_CAPACITY, need + need // 4)
                nts = np.empty(new_cap, dtype=np.int64)
                nqty = np.empty(new_cap, dtype=np.float64)
                nibm = np.empty(new_cap, dtype=np.bool_)
            else:
                nts, nqty, nibm = self.ts, self.qty, self.ibm
            end = start + keep_old
            nts[:keep_old] = self.ts[start:end]
            nqty[:keep_old] = self.qty[start:end]
            nibm[:keep_old] = self.ibm[start:end]
            self.ts, self.qty, self.ibm = nts, nqty, nibm
            start = 0
        end = start + keep_old
        self.ts[end:end + k] = ts
        self.qty[end:end + k] = qty
        self.ibm[end:end + k] = ibm
        self.head, self.n, self.pre, self.clock = start, need, pre, clock


def window_stats(ts: np.ndarray, qty: np.ndarray, ibm: np.ndarray, settings: Settings,
                 report_sec: float) -> CvdStats:
    """Scale median and floor-hit share over the last ``report_sec`` of a trade window, with the
    cvd table's own computation over the whole window (earlier rows only warm it up)."""
    n = len(ts)
    if n == 0:
        return CvdStats(math.nan, math.nan, 0, 0)
    trades = pl.DataFrame({"event_ts_ms": ts, "qty": qty, "is_buyer_maker": ibm}).with_columns(
        pl.col("event_ts_ms").cum_max().alias("t"))  # engine clock, exactly as prices.py builds it
    last = int(trades["t"][-1])
    day_start = last - last % DAY_MS  # session of the newest trade (matters for Z_MODE=level)
    frame = cvd_frame(trades, day_start, settings.signals)
    del trades
    cutoff = last - int(report_sec * 1000)
    recent = frame.filter((pl.col("t") > cutoff) & pl.col("z_raw").is_not_null())
    del frame
    if recent.height == 0:
        return CvdStats(math.nan, math.nan, 0, n)
    return CvdStats(float(recent["scale"].median()), float(recent["floor_used"].cast(pl.Float64).mean()),
                    recent.height, n)


class LiveCvd:
    """Per-symbol trailing CVD z-engine statistics exported as Prometheus gauges."""

    def __init__(self, settings: Settings, *, report_sec: float = 300.0,
                 warmup_sec: float | None = None, max_rows: int = 200_000,
                 recompute_sec: float = 10.0, background: bool = True,
                 rows_per_refresh: int = 1_000_000,
                 clock: Callable[[], float] = time.monotonic,
                 stage_rows: int = 65_536):
        if report_sec <= 0 or max_rows < 2 or recompute_sec < 0 or stage_rows < 1:
            raise ValueError("LiveCvd: report_sec > 0, max_rows >= 2, recompute_sec >= 0, "
                             "stage_rows >= 1")
        self.settings = settings
        self.report_sec = float(report_sec)
        self.warmup_sec = float(6 * settings.signals.half_life_sec if warmup_sec is None else warmup_sec)
        self.max_rows = int(max_rows)
        self.recompute_sec = float(recompute_sec)
        self.rows_per_refresh = int(rows_per_refresh)
        self.stage_rows = int(stage_rows)
        self._horizon_ms = int((self.warmup_sec + self.report_sec) * 1000)
        self._cursor = 0                 # round-robin position among symbols
        self.background = background
        self._clock = clock
        self._worker: threading.Thread | None = None
        # (symbol, event_ts_ms, qty, is_buyer_maker) in arrival order, not yet drained. Only
        # ever appended to (add) and cut from the front under ``_lock`` (_drain): never rebound.
        self._pending: list[tuple[str, int, float, bool]] = []
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()    # drains and reads of ``_series``; ``add`` never takes it
        self._last_compute: float | None = None
        self.stats: dict[str, CvdStats] = {}

    def add(self, symbol: str, event_ts_ms: int, qty: float, is_buyer_maker: bool) -> None:
        """Record one unique trade (call after dedup, in arrival order)."""
        pending = self._pending
        pending.append((symbol, event_ts_ms, qty, is_buyer_maker))
        if len(pending) >= self.stage_rows:   # nobody is draining: keep the staging bounded
            try:
                self._drain()
            except Exception:  # a monitoring failure must never reach the capture
                log.exception("live CVD: staged trades dropped")

    def _drain(self) -> None:
        """Move the staged rows into the per-symbol columns (trimmed to the horizon/cap)."""
        with self._lock:
            pending = self._pending
            k = len(pending)
            if not k:
                return
            rows = pending[:k]
            del pending[:k]              # appends made meanwhile stay (they are after row k)
            names = sorted(set(map(_SYM, rows)))
            codes = {sym: i for i, sym in enumerate(names)}
            code = np.fromiter(map(codes.__getitem__, map(_SYM, rows)), dtype=np.int32, count=k)
            ts_a = np.fromiter(map(_TS, rows), dtype=np.int64, count=k)
            qty_a = np.fromiter(map(_QTY, rows), dtype=np.float64, count=k)
            ibm_a = np.fromiter(map(_IBM, rows), dtype=np.bool_, count=k)
            del rows
            if len(names) > 1:           # group by symbol, arrival order kept within each
                order = np.argsort(code, kind="stable")
                ts_a, qty_a, ibm_a = ts_a[order], qty_a[order], ibm_a[order]
                bounds = np.searchsorted(code[order], np.arange(len(names) + 1))
            else:
                bounds = np.array([0, k])
            for i, sym in enumerate(names):
                a, b = int(bounds[i]), int(bounds[i + 1])
                series = self._series.get(sym)
                if series is None:
                    series = self._series[sym] = _Series()
                series.extend(ts_a[a:b], qty_a[a:b], ibm_a[a:b], self._horizon_ms, self.max_rows)

    def rows_held(self, symbol: str | None = None) -> int:
        """Trades held for ``symbol`` (default: all symbols), staged ones included."""
        with self._lock:
            if symbol is None:
                return sum(s.n for s in self._series.values()) + len(self._pending)
            series = self._series.get(symbol)
            staged = sum(1 for r in self._pending[:] if r[0] == symbol)
            return (series.n if series is not None else 0) + staged

    def bytes_held(self) -> int:
        """Bytes of the per-symbol columns (allocated capacity; staging not included)."""
        with self._lock:
            return sum(s.ts.nbytes + s.qty.nbytes + s.ibm.nbytes for s in self._series.values())

    def _snapshot(self, sym: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        with self._lock:
            series = self._series.get(sym)
            if series is None:
                return None
            ts, qty, ibm = series.view()
            return ts.copy(), qty.copy(), ibm.copy()

    def compute(self, symbols: list[str] | None = None) -> dict[str, CvdStats]:
        """Recompute ``symbols`` (default: every symbol) now (no gauge update)."""
        self._drain()
        if symbols is None:
            with self._lock:
                symbols = list(self._series)
        out = {}
        horizon_ms = self._horizon_ms
        for sym in symbols:
            if len(self._pending) >= 4096:   # a long refresh: keep the staging small
                self._drain()
            snap = self._snapshot(sym)
            if snap is None:
                continue
            ts, qty, ibm = snap
            if len(ts):  # rows older than warm-up + report window (by the window's engine clock)
                t = np.maximum.accumulate(ts)
                start = int(np.searchsorted(t, t[-1] - horizon_ms, side="right"))
                if start:
                    ts, qty, ibm = ts[start:], qty[start:], ibm[start:]
            out[sym] = window_stats(ts, qty, ibm, self.settings, self.report_sec)
            del ts, qty, ibm, snap
        return out

    def update_gauges(self, force: bool = False, block: bool | None = None) -> dict[str, CvdStats]:
        """Recompute and set ``cvd_scale_median`` / ``cvd_floor_hit_rate`` per symbol if
        ``recompute_sec`` has passed since the last start (or ``force``); returns the latest
        finished stats. ``block`` (default: not ``background``) computes in the caller's thread;
        otherwise a background thread does it, one at a time. A symbol still warming up (no
        reportable row) exports NaN, on which no alert fires."""
        block = not self.background if block is None else block
        now = self._clock()
        due = force or self._last_compute is None or now - self._last_compute >= self.recompute_sec
        if not due or (self._worker is not None and self._worker.is_alive() and not block):
            return self.stats
        self._last_compute = now
        if block:
            self.join()
            self._refresh()
        else:
            self._worker = threading.Thread(target=self._refresh_logged, name="live-cvd", daemon=True)
            self._worker.start()
        return self.stats

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background recomputation in flight (tests, shutdown)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def _refresh_logged(self) -> None:
        try:
            self._refresh()
        except Exception:  # a monitoring failure must never reach the capture
            log.exception("live CVD recomputation failed; gauges keep their last values")

    def next_batch(self) -> list[str]:
        """The symbols the next refresh recomputes: round-robin, within ``rows_per_refresh``
        held rows (always at least one symbol)."""
        self._drain()
        with self._lock:
            order = sorted(self._series)
            sizes = {sym: self._series[sym].n for sym in order}
        if not order:
            return []
        start = self._cursor % len(order)
        batch: list[str] = []
        rows = 0
        for sym in order[start:] + order[:start]:
            if batch and rows + sizes[sym] > self.rows_per_refresh:
                break
            batch.append(sym)
            rows += sizes[sym]
        self._cursor = start + len(batch)
        return batch

    def _refresh(self) -> None:
        stats = self.compute(self.next_batch())
        for sym, st in stats.items():
            metrics.cvd_scale_median.labels(symbol=sym).set(st.scale_median)
            metrics.cvd_floor_hit_rate.labels(symbol=sym).set(st.floor_hit_rate)
        self.stats = {**self.stats, **stats}
