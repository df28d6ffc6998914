"""Live CVD scale monitor: ``cvd_scale_median`` and ``cvd_floor_hit_rate`` per symbol.

Why: the ``CvdFloorHitRateHigh`` alert must describe the numbers researchers will see in the
``cvd`` table, so this runs the very same code (:func:`ofi_cvd_harvest.signals.cvd.cvd_frame`,
i.e. the SPEC §5.1 engine) instead of a streaming look-alike. It is recomputed every few
seconds over a bounded ring buffer of recent trades per symbol: the last ``report_sec`` of
trades are reported, the ``warmup_sec`` before them warm the EW means (6 half-lives by default,
as the derivation does at midnight). Memory is bounded by ``max_rows`` per symbol; if a very
busy market overflows it, the warm-up is simply shorter. One refresh handles at most
``rows_per_refresh`` buffered rows, taking symbols round-robin, so its cost stays bounded with
hundreds of symbols (each symbol's gauges are then refreshed every few periods instead of every one).

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
from typing import Callable

import numpy as np
import polars as pl

from ..settings import Settings
from ..signals.cvd import cvd_frame
from . import metrics

DAY_MS = 86_400_000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CvdStats:
    """One symbol's trailing-window result (``rows`` = reported rows with a warm z)."""

    scale_median: float
    floor_hit_rate: float
    rows: int
    buffered: int


class _Ring:
    """Fixed-capacity ring of (event_ts_ms, qty, is_buyer_maker) in arrival order."""

    __slots__ = ("ts", "qty", "ibm", "n", "head")

    def __init__(self, capacity: int):
        self.ts = np.zeros(capacity, dtype=np.int64)
        self.qty = np.zeros(capacity, dtype=np.float64)
        self.ibm = np.zeros(capacity, dtype=np.bool_)
        self.n = 0      # rows held (≤ capacity)
        self.head = 0   # next write position

    def append(self, ts: int, qty: float, ibm: bool) -> None:
        i = self.head
        self.ts[i] = ts
        self.qty[i] = qty
        self.ibm[i] = ibm
        cap = len(self.ts)
        self.head = i + 1 if i + 1 < cap else 0
        if self.n < cap:
            self.n += 1

    def ordered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the held rows, oldest first."""
        if self.n < len(self.ts):
            sl = slice(0, self.n)
            return self.ts[sl].copy(), self.qty[sl].copy(), self.ibm[sl].copy()
        h = self.head
        return (np.concatenate((self.ts[h:], self.ts[:h])), np.concatenate((self.qty[h:], self.qty[:h])),
                np.concatenate((self.ibm[h:], self.ibm[:h])))


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
    cutoff = last - int(report_sec * 1000)
    recent = frame.filter((pl.col("t") > cutoff) & pl.col("z_raw").is_not_null())
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
                 clock: Callable[[], float] = time.monotonic):
        if report_sec <= 0 or max_rows < 2 or recompute_sec < 0:
            raise ValueError("LiveCvd: report_sec > 0, max_rows >= 2, recompute_sec >= 0")
        self.settings = settings
        self.report_sec = float(report_sec)
        self.warmup_sec = float(6 * settings.signals.half_life_sec if warmup_sec is None else warmup_sec)
        self.max_rows = int(max_rows)
        self.recompute_sec = float(recompute_sec)
        self.rows_per_refresh = int(rows_per_refresh)
        self._cursor = 0                 # round-robin position among symbols
        self.background = background
        self._clock = clock
        self._worker: threading.Thread | None = None
        self._rings: dict[str, _Ring] = {}
        self._lock = threading.Lock()
        self._last_compute: float | None = None
        self.stats: dict[str, CvdStats] = {}

    def add(self, symbol: str, event_ts_ms: int, qty: float, is_buyer_maker: bool) -> None:
        """Record one unique trade (call after dedup, in arrival order)."""
        with self._lock:
            ring = self._rings.get(symbol)
            if ring is None:
                ring = self._rings[symbol] = _Ring(self.max_rows)
            ring.append(event_ts_ms, qty, is_buyer_maker)

    def compute(self, symbols: list[str] | None = None) -> dict[str, CvdStats]:
        """Recompute ``symbols`` (default: every symbol) now (no gauge update)."""
        with self._lock:
            names = list(self._rings) if symbols is None else symbols
            snaps = {sym: self._rings[sym].ordered() for sym in names if sym in self._rings}
        out = {}
        horizon_ms = int((self.warmup_sec + self.report_sec) * 1000)
        for sym, (ts, qty, ibm) in snaps.items():
            if len(ts):  # drop rows older than warm-up + report window (by the engine clock)
                t = np.maximum.accumulate(ts)
                start = int(np.searchsorted(t, t[-1] - horizon_ms, side="right"))
                ts, qty, ibm = ts[start:], qty[start:], ibm[start:]
            out[sym] = window_stats(ts, qty, ibm, self.settings, self.report_sec)
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
        buffered rows (always at least one symbol)."""
        with self._lock:
            order = sorted(self._rings)
            sizes = {sym: self._rings[sym].n for sym in order}
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
