"""Trade-gap healing through REST ``aggTrades`` (docs/capture.md "Trade gaps and healing",
"Healing at scale").

What is owed is each symbol's :class:`~ofi_cvd_harvest.protocol.tradegaps.TradeIdTracker`
(merged id ranges, O(log n) updates); :mod:`.owed` announces new gaps coalesced and orders the
symbols. A gap gets ``grace_ms`` for late deliveries (a redundant connection or a reordered
frame may still bring it); then each healing *pass* announces per symbol what is newly owed
(one ``gap_detected`` row), serves every symbol owing due ids one ``fromId`` page of 1,000
(oldest debt first, round robin: fair under the REST budget, and a page fills every small hole
it spans) and reports per symbol what the pass healed (one ``gap_healed`` row). Recovered rows
go to ``sink`` (written with ``source = "rest"``). After ``max_attempts`` consecutive REST
failures the debt is reported (``gap_unhealed``, once per symbol) and retried slowly; it stays
in the checkpoint, so it is never silently lost. Every loop awaits REST or yields, so a stop
is honoured within one request however large the debt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from ..monitoring import metrics
from ..protocol.decode import DecodeError
from ..protocol.records import AggTrade
from ..protocol.tradegaps import Gap, TradeIdTracker
from ..exchange.rest import RestClient, RestError
from .ops import OpsRecorder
from .owed import PAGE, Debt, main_reason

Sink = Callable[[AggTrade, int], None]    # (trade, recv_ms)


def _now_ms() -> int:
    return int(time.time() * 1000)


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
        self.debt = Debt(trackers)
        self.healed_rows: dict[str, int] = {}
        self.gaps_detected: dict[str, int] = {}
        self.gaps_healed: dict[str, int] = {}
        self.gaps_unhealed: dict[str, int] = {}
        self.out_of_order: dict[str, int] = {}
        self.passes = 0
        self._unhealed: set[str] = set()       # symbols whose debt was reported unhealed
        self._consecutive_failures = 0
        self._next_pass_ms = 0
        self._next_gauges = 0.0
        self._gauges: dict[str, tuple] = {}    # symbol -> its two metrics.GaugeSeries
        self._wake = asyncio.Event()

    # -- bookkeeping --------------------------------------------------------------------------
    def opened(self, symbol: str, gap: Gap, reason: str = "id_jump") -> None:
        self.debt.opened(symbol, gap.start, gap.end, gap.opened_ms or _now_ms(), reason)
        self._wake.set()

    def restore(self, symbol: str, gaps: list[list[int]], reason: str = "checkpoint") -> None:
        """Owed ranges from the checkpoint (already in the tracker): due at once."""
        then = _now_ms() - self.grace_ms
        for a, b in gaps:
            self.debt.opened(symbol, a, b, then, reason)
        self._wake.set()

    def owed(self, symbol: str | None = None) -> int:
        """Trade ids owed (of one symbol, or of all)."""
        if symbol is not None:
            return self.trackers[symbol].owed.total
        return sum(t.owed.total for t in self.trackers.values())

    def open_gaps(self, symbol: str | None = None) -> int:
        """Owed id ranges (of one symbol, or of all)."""
        if symbol is not None:
            return len(self.trackers[symbol].owed)
        return sum(len(t.owed) for t in self.trackers.values())

    @property
    def busy(self) -> bool:
        return bool(self.debt.pending_new()) or any(t.owed for t in self.trackers.values())

    def _bump(self, d: dict[str, int], sym: str, n: int = 1) -> None:
        d[sym] = d.get(sym, 0) + n

    def update_gauges(self) -> None:
        """Once a second; each symbol's two gauges are :class:`metrics.GaugeSeries` (looked up
        once, set only when changed): their figures are 0 nearly always."""
        per, requests, eta = self.debt.figures(self.rest.budget)
        gauges = self._gauges
        for s, n in per.items():
            pair = gauges.get(s)
            if pair is None:
                pair = gauges[s] = (metrics.GaugeSeries(metrics.heal_owed_trades, s),
                                    metrics.GaugeSeries(metrics.trade_gaps_open, s))
            pair[0].set(n)
            pair[1].set(len(self.trackers[s].owed))
        metrics.heal_owed_requests.set(requests)
        metrics.heal_eta_seconds.set(eta)

    # -- healing ------------------------------------------------------------------------------
    async def heal_due(self, now_ms: int | None = None, force: bool = False) -> None:
        """Healing passes. Without ``force``: one pass (announce, then one page per symbol
        owing due ids) unless a REST back-off is running. With ``force`` (at shutdown, inside
        the caller's time budget): passes until nothing is owed or REST fails."""
        while True:
            await self._pass(_now_ms() if now_ms is None else now_ms, force)
            if not force or self._consecutive_failures or not self.busy:
                return
            now_ms = None

    async def _pass(self, now_ms: int, force: bool) -> None:
        self.passes += 1
        n = 0
        for sym, ann in self.debt.announcements(now_ms, self.grace_ms, force):
            self._announce(sym, ann)
            n += 1
            if n % 64 == 0:
                await asyncio.sleep(0)
        if not force and now_ms < self._next_pass_ms:
            return
        cutoff = None if force else now_ms - self.grace_ms
        for sym in self.debt.schedule(now_ms, self.grace_ms, force):
            due = self.debt.first_due(sym, cutoff)
            if due is None:
                continue
            if not await self._page(sym, *due):
                break      # REST failed: every symbol waits for one back-off
        self._gauges_soon()

    def _announce(self, sym: str, ann) -> None:
        if ann.late:
            self._bump(self.out_of_order, sym, ann.late)
        if not ann.gaps:
            return
        self._bump(self.gaps_detected, sym, ann.gaps)
        metrics.trade_gaps_detected_total.labels(sym).inc(ann.gaps)
        self.ops.emit("gap_detected", ann.meta(), symbol=sym)
        self.log.info("%s: %d trade gap(s) in %d..%d (%d ids missing, %s), healing via REST; "
                      "%d owed in all", sym, ann.gaps, ann.first, ann.last, ann.missing,
                      main_reason(ann.reasons), self.owed(sym))

    async def _page(self, sym: str, a: int, b: int) -> bool:
        """One ``fromId`` page from the lowest due id ``a`` (its interval ends at ``b``);
        False if REST failed."""
        tracker = self.trackers[sym]
        owed = tracker.owed
        ranges_before = len(owed)
        opened = owed.opened[0] if owed else _now_ms()
        try:
            trades = await self.rest.agg_trades(sym, from_id=a, limit=PAGE)
            recv_ms = _now_ms()
            if trades and trades[0].agg_trade_id > a:
                self._absent(sym, tracker, a, min(b, trades[0].agg_trade_id - 1))
            filled = 0
            last = tracker.last_id if tracker.last_id is not None else b
            for t in trades:
                i = t.agg_trade_id
                if i > last:
                    break   # not owed yet: the stream delivers it (or reveals its gap)
                if owed.discard(i):
                    self.sink(t, recv_ms)
                    filled += 1
            if tracker.is_missing(a):
                raise RestError(f"REST aggTrades has no id {a} (returned {len(trades)} rows)")
        except (RestError, DecodeError, OSError) as exc:
            self._failed(sym, exc)
            return False
        self._consecutive_failures = 0
        closed = max(0, ranges_before - len(owed))
        self._bump(self.healed_rows, sym, filled)
        self._bump(self.gaps_healed, sym, closed)
        metrics.healed_trades_total.labels(sym).inc(filled)
        if closed:
            metrics.trade_gaps_healed_total.labels(sym).inc(closed)
        reasons = self.debt.reasons.pop(sym, {}) if not owed else self.debt.reasons.get(sym, {})
        self.ops.emit("gap_healed", {"start": a, "end": b, "rest_rows": filled,
                                     "ranges_closed": closed, "owed_left": owed.total,
                                     "reason": main_reason(reasons) or "id_jump",
                                     "reasons": dict(reasons),
                                     "duration_ms": recv_ms - opened}, symbol=sym)
        if sym in self._unhealed and not owed:
            self._unhealed.discard(sym)
            self.log.info("%s: owed trades healed after all", sym)
        return True

    def _absent(self, sym: str, tracker: TradeIdTracker, a: int, b: int) -> None:
        """The exchange's history (``fromId`` answers ids >= fromId) skips [a, b]: those ids
        are not trades (e.g. a checkpoint from another id sequence). Recorded, not owed."""
        n = tracker.fill_range(a, b)
        self.ops.emit("gap_ids_absent", {"start": a, "end": b, "ids": n}, symbol=sym)
        self.log.warning("%s: ids %d..%d do not exist at the exchange; not owed", sym, a, b)

    def _failed(self, sym: str, exc: BaseException) -> None:
        self._consecutive_failures += 1
        n = self._consecutive_failures
        delay = min(self.backoff_max_ms, 1000 * 2 ** (n - 1))
        if n >= self.max_attempts:
            delay = max(delay, self.slow_retry_ms)
            for s, t in self.trackers.items():   # REST keeps failing: every debt is unhealed
                if t.owed and s not in self._unhealed:
                    self._report_unhealed(s, exc)
        else:
            self.log.warning("%s: healing failed (%s), retry in %.1fs", sym, exc, delay / 1000)
        self._next_pass_ms = _now_ms() + delay

    def _report_unhealed(self, sym: str, exc: BaseException) -> None:
        self._unhealed.add(sym)
        owed = self.trackers[sym].owed
        self._bump(self.gaps_unhealed, sym)
        self.ops.emit("gap_unhealed", {"start": owed.starts[0], "end": owed.ends[-1],
                                       "ranges": len(owed), "missing": owed.total,
                                       "attempts": self._consecutive_failures,
                                       "error": str(exc)[:200]}, symbol=sym)
        self.log.error("%s: %d owed trades in %d ranges NOT healed after %d attempts: %s; "
                       "retrying every %ds, kept in the checkpoint", sym, owed.total, len(owed),
                       self._consecutive_failures, exc, self.slow_retry_ms // 1000)

    def _gauges_soon(self) -> None:
        now = time.monotonic()
        if now >= self._next_gauges:
            self._next_gauges = now + 1.0
            self.update_gauges()

    async def run(self, stop: asyncio.Event, tick: float = 0.25) -> None:
        while not stop.is_set():
            self._wake.clear()
            if self.busy:
                await self.heal_due()
            self._gauges_soon()
            try:
                await asyncio.wait_for(self._wake.wait(), tick)
            except asyncio.TimeoutError:
                pass
