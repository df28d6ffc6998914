"""Trade-gap healing through REST ``aggTrades`` (SPEC §7, issue 6 item 2).

The :class:`~ofi_cvd_harvest.protocol.tradegaps.TradeIdTracker` of each symbol knows which
ids are missing (id jumps, reconnect windows, the downtime since the checkpoint). A gap is
given ``grace_ms`` for late out-of-order deliveries; what is still missing then is announced
(``gap_detected``) and fetched with ``fromId`` pages of ≤ 1000, paced by the REST client.
Recovered rows go to ``sink`` (written with ``source = "rest"``). A gap that keeps failing
is reported as ``gap_unhealed`` after ``max_attempts`` consecutive REST failures and still
retried slowly, and stays in the checkpoint, so it is never silently lost.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..monitoring import metrics
from ..protocol.decode import DecodeError
from ..protocol.records import AggTrade
from ..protocol.tradegaps import Gap, TradeIdTracker
from ..exchange.rest import RestClient, RestError
from .ops import OpsRecorder

Sink = Callable[[AggTrade, int], None]    # (trade, recv_ms)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class GapRecord:
    symbol: str
    start: int
    end: int
    opened_ms: int
    reason: str
    announced: bool = False
    rest_rows: int = 0
    failures: int = 0
    unhealed_reported: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class Healer:
    def __init__(self, rest: RestClient, trackers: dict[str, TradeIdTracker], sink: Sink,
                 ops: OpsRecorder, log: logging.Logger, *, grace_ms: int = 1000,
                 max_attempts: int = 6, backoff_max_ms: int = 60_000,
                 slow_retry_ms: int = 300_000):
        self.rest = rest
        self.trackers = trackers
        self.sink = sink
        self.ops = ops
        self.log = log
        self.grace_ms = grace_ms
        self.max_attempts = max_attempts
        self.backoff_max_ms = backoff_max_ms
        self.slow_retry_ms = slow_retry_ms
        self.records: list[GapRecord] = []
        self.healed_rows: dict[str, int] = {}
        self.gaps_detected: dict[str, int] = {}
        self.gaps_healed: dict[str, int] = {}
        self.gaps_unhealed: dict[str, int] = {}
        self.out_of_order: dict[str, int] = {}
        self._consecutive_failures = 0
        self._next_pass_ms = 0
        self._wake = asyncio.Event()

    # -- bookkeeping --------------------------------------------------------------------------
    def opened(self, symbol: str, gap: Gap, reason: str = "id_jump") -> None:
        self.records.append(GapRecord(symbol, gap.start, gap.end, gap.opened_ms or _now_ms(),
                                      reason))
        self._wake.set()

    def restore(self, symbol: str, gaps: list[list[int]], reason: str = "checkpoint") -> None:
        now = _now_ms()
        for a, b in gaps:
            self.records.append(GapRecord(symbol, a, b, now - self.grace_ms, reason))
        self._wake.set()

    def _missing_segments(self, rec: GapRecord) -> list[tuple[int, int]]:
        out = []
        for g in self.trackers[rec.symbol].gaps:
            if g.end >= rec.start and g.start <= rec.end:
                out.append((max(g.start, rec.start), min(g.end, rec.end)))
        return out

    def open_gaps(self, symbol: str | None = None) -> int:
        return sum(1 for r in self.records if symbol is None or r.symbol == symbol)

    def _bump(self, d: dict[str, int], sym: str, n: int = 1) -> None:
        d[sym] = d.get(sym, 0) + n

    def _update_open_gauge(self) -> None:
        per: dict[str, int] = {s: 0 for s in self.trackers}
        for r in self.records:
            if r.announced:
                per[r.symbol] = per.get(r.symbol, 0) + 1
        for s, n in per.items():
            metrics.trade_gaps_open.labels(s).set(n)

    # -- healing ------------------------------------------------------------------------------
    async def heal_due(self, now_ms: int | None = None, force: bool = False) -> None:
        """One pass over the gaps whose grace has expired (``force``: all of them, ignoring
        back-off; used once at shutdown so the last seconds' gaps are healed before the files
        close). A REST failure ends the pass: the exchange is likely down for every gap, so all
        wait for one jittered back-off instead of hammering it one gap after another."""
        now_ms = _now_ms() if now_ms is None else now_ms
        due = [r for r in self.records if force or now_ms >= r.opened_ms + self.grace_ms]
        for rec in due:
            if not rec.announced:
                self._announce(rec)
        if not force and now_ms < self._next_pass_ms:
            self._update_open_gauge()
            return
        for rec in due:
            if rec in self.records and not await self._heal(rec):
                break
        self._update_open_gauge()

    def _announce(self, rec: GapRecord) -> None:
        sym = rec.symbol
        segs = self._missing_segments(rec)
        if not segs:  # filled by late (out-of-order) WebSocket deliveries
            self._bump(self.out_of_order, sym)
            self.records.remove(rec)
            return
        rec.announced = True
        missing = sum(b - a + 1 for a, b in segs)
        self._bump(self.gaps_detected, sym)
        metrics.trade_gaps_detected_total.labels(sym).inc()
        self.ops.emit("gap_detected", {"start": rec.start, "end": rec.end, "size": rec.size,
                                       "missing": missing, "reason": rec.reason}, symbol=sym)
        self.log.info("%s: trade gap %d..%d (%d missing, %s), healing via REST", sym,
                      rec.start, rec.end, missing, rec.reason)

    async def _heal(self, rec: GapRecord) -> bool:
        """Fetch what ``rec`` still misses; False if REST failed (the pass should stop)."""
        sym = rec.symbol
        tracker = self.trackers[sym]
        try:
            while True:
                segs = self._missing_segments(rec)
                if not segs:
                    break
                a, b = segs[0]
                # a full page (same request weight): it also fills the small gaps that follow
                trades = await self.rest.agg_trades(sym, from_id=a, limit=1000)
                recv_ms = _now_ms()
                if trades and trades[0].agg_trade_id > a:
                    self._absent(rec, tracker, a, min(b, trades[0].agg_trade_id - 1))
                filled = []
                last = tracker.last_id if tracker.last_id is not None else b
                for t in trades:
                    i = t.agg_trade_id
                    if i > last:
                        break   # not owed yet: the stream delivers it (or reveals its gap)
                    if tracker.fill(i):
                        self.sink(t, recv_ms)
                        filled.append(i)
                if filled:
                    self._credit(sym, filled)
                if tracker.is_missing(a):
                    raise RestError(f"REST aggTrades has no id {a} (returned {len(trades)} rows)")
        except (RestError, DecodeError, OSError) as exc:
            self._failed(rec, exc)
            return False
        self._consecutive_failures = 0
        self.records.remove(rec)
        self._bump(self.gaps_healed, sym)
        metrics.trade_gaps_healed_total.labels(sym).inc()
        self.ops.emit("gap_healed", {"start": rec.start, "end": rec.end, "size": rec.size,
                                     "rest_rows": rec.rest_rows, "reason": rec.reason,
                                     "attempts": rec.failures + 1,
                                     "duration_ms": _now_ms() - rec.opened_ms}, symbol=sym)
        if rec.unhealed_reported:
            self.log.info("%s: trade gap %d..%d healed after all", sym, rec.start, rec.end)
        return True

    def _credit(self, sym: str, filled: list[int]) -> None:
        """Count healed rows (ascending ids) against every gap record they belong to."""
        self._bump(self.healed_rows, sym, len(filled))
        metrics.healed_trades_total.labels(sym).inc(len(filled))
        for r in self.records:
            if r.symbol == sym and r.end >= filled[0] and r.start <= filled[-1]:
                r.rest_rows += (bisect.bisect_right(filled, r.end)
                                - bisect.bisect_left(filled, r.start))

    def _absent(self, rec: GapRecord, tracker: TradeIdTracker, a: int, b: int) -> None:
        """The exchange's history (``fromId`` answers ids >= fromId) skips [a, b]: those ids
        are not trades (e.g. a checkpoint from another id sequence). Recorded, not owed."""
        n = tracker.fill_range(a, b)
        self.ops.emit("gap_ids_absent", {"start": a, "end": b, "ids": n}, symbol=rec.symbol)
        self.log.warning("%s: ids %d..%d do not exist at the exchange; not owed", rec.symbol, a, b)

    def _failed(self, rec: GapRecord, exc: BaseException) -> None:
        rec.failures += 1
        self._consecutive_failures += 1
        n = self._consecutive_failures
        delay = min(self.backoff_max_ms, 1000 * 2 ** (n - 1))
        if n >= self.max_attempts:
            delay = max(delay, self.slow_retry_ms)
            for r in self.records:   # REST keeps failing: every announced gap is unhealed
                if r.announced and not r.unhealed_reported:
                    self._report_unhealed(r, exc)
        else:
            self.log.warning("%s: healing gap %d..%d failed (%s), retry in %.1fs", rec.symbol,
                             rec.start, rec.end, exc, delay / 1000)
        self._next_pass_ms = _now_ms() + delay

    def _report_unhealed(self, rec: GapRecord, exc: BaseException) -> None:
        sym = rec.symbol
        rec.unhealed_reported = True
        self._bump(self.gaps_unhealed, sym)
        left = sum(y - x + 1 for x, y in self._missing_segments(rec))
        self.ops.emit("gap_unhealed", {"start": rec.start, "end": rec.end, "missing": left,
                                       "attempts": self._consecutive_failures,
                                       "error": str(exc)[:200]}, symbol=sym)
        self.log.error("%s: trade gap %d..%d NOT healed after %d attempts (%d ids missing): %s; "
                       "retrying every %ds, kept in the checkpoint", sym, rec.start, rec.end,
                       self._consecutive_failures, left, exc, self.slow_retry_ms // 1000)

    async def run(self, stop: asyncio.Event, tick: float = 0.25) -> None:
        while not stop.is_set():
            self._wake.clear()
            if self.records:
                await self.heal_due()
            try:
                await asyncio.wait_for(self._wake.wait(), tick)
            except asyncio.TimeoutError:
                pass
