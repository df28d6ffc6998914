"""Book rows from the diff-depth stream ``<sym>@depth@100ms`` + REST snapshots
(``BOOK_SOURCE=diff``).

The I/O shell around :class:`~ofi_cvd_harvest.protocol.localbook.LocalBook` (docs/book_and_replay.md), behind
the BookHandler contract of ARCHITECTURE.md, so it produces the same ``book`` rows (top N
levels after each update, schema ``schemas.BOOK``) as the partial-depth mode.

Snapshots are fetched in a background task per symbol (the capture's REST client, or any
injected ``async fetch(symbol, limit) -> DepthSnapshot``): ``on_depth`` never waits on REST,
so one symbol's resync (or REST pacing under the weight limit) cannot stall the other books.
A fetched snapshot is applied on that symbol's next message, before it, and the rows of the
buffered events keep their own receive time and connection id.

``gap`` is True on the first row after every (re)sync and after a (re)connect. A reconnect does
not throw the book away: the ``pu`` chain is the authority, so if nothing was missed the book
continues; if something was, the break triggers a resync (counted as a resync, not as a
``book_gap``, since a reconnect explains it). A ``pu`` break on a live connection or a crossed
book is reported (``on_gap`` -> ops ``book_gap`` in the runner; ``on_event`` for the rest),
counted (``book_gaps_total``, ``book_resyncs_total``) and resynced; never written as a row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from ..monitoring import metrics
from ..protocol.localbook import DEFAULT_BUFFER_LIMIT, BookProblem, BookTop, LocalBook
from ..protocol.records import DepthSnapshot, DepthUpdate
from ..protocol.streams import diff_depth_stream
from .bookrow import book_row

FetchSnapshot = Callable[[str, int], Awaitable[DepthSnapshot]]
OnGap = Callable[[str, dict], None]                 # (symbol, meta)
OnEvent = Callable[[str, str, dict], None]          # (event_type, symbol, meta)

log = logging.getLogger(__name__)


class DiffBook:
    """BookHandler for diff depth. ``DiffBook(settings, rest)`` is how ``make_book_handler``
    builds it; tests inject ``fetch_snapshot`` (and ``levels``) instead."""

    def __init__(self, settings: Any = None, rest: Any = None, *, levels: int | None = None,
                 fetch_snapshot: FetchSnapshot | None = None, snapshot_limit: int = 1000,
                 max_levels: int = 1000, on_gap: OnGap | None = None,
                 on_event: OnEvent | None = None, retry_sec: float = 1.0,
                 retry_max_sec: float = 30.0) -> None:
        self.levels = levels or (getattr(settings, "book_levels", None) or 10)
        if fetch_snapshot is None and rest is not None:
            fetch_snapshot = rest.depth
        if fetch_snapshot is None:
            raise ValueError("DiffBook needs a REST client or a fetch_snapshot callable")
        self.fetch_snapshot = fetch_snapshot
        self.snapshot_limit = snapshot_limit
        self.max_levels = max(max_levels, self.levels)
        self.on_gap = on_gap
        self.on_event = on_event
        self.retry_sec = retry_sec
        self.retry_max_sec = retry_max_sec
        self.books: dict[str, LocalBook] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._ready: dict[str, DepthSnapshot] = {}
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._connect_gap: set[str] = set()   # next row gets gap=True
        self._fresh: set[str] = set()         # connected, no chained event yet
        self._recv: dict[str, dict[int, tuple[int, int]]] = {}   # buffered u -> (recv, conn)
        # counters (per symbol) for summaries and tests
        self.gaps: dict[str, int] = {}
        self.resyncs: dict[str, int] = {}
        self.crossed: dict[str, int] = {}
        self.snapshots: dict[str, int] = {}

    # --- BookHandler ------------------------------------------------------------------------
    def stream_name(self, symbol: str) -> str:
        return diff_depth_stream(symbol)

    def on_connect(self, symbol: str, conn_id: int) -> None:
        self._connect_gap.add(symbol)
        self._fresh.add(symbol)

    async def on_depth(self, rec: DepthUpdate, recv_ms: int, conn_id: int) -> list[dict]:
        rows = self.rows_for(rec, recv_ms, conn_id)
        self._maybe_fetch(rec.symbol)
        return rows

    # --- synchronous core -------------------------------------------------------------------
    def book(self, symbol: str) -> LocalBook:
        b = self.books.get(symbol)
        if b is None:
            b = self.books[symbol] = LocalBook(symbol, levels=self.levels,
                                               max_levels=self.max_levels)
            self._recv[symbol] = {}
        return b

    def rows_for(self, rec: DepthUpdate, recv_ms: int, conn_id: int) -> list[dict]:
        """Apply a ready snapshot (if any), then ``rec``; rows in order. Never does I/O (the
        runner also calls it while draining at shutdown)."""
        sym = rec.symbol
        book = self.book(sym)
        recv = self._recv[sym]
        out: list[BookTop | BookProblem] = []
        snap = self._ready.pop(sym, None)
        if snap is not None:
            out.extend(book.apply_snapshot(snap))
        if not book.synced:
            recv[rec.final_update_id] = (recv_ms, conn_id)
            if len(recv) > DEFAULT_BUFFER_LIMIT:
                del recv[next(iter(recv))]
        out.extend(book.feed(rec))
        rows: list[dict] = []
        for o in out:
            if isinstance(o, BookTop):
                u = o.rec.final_update_id
                r_ms, c_id = recv.pop(u, None) or (recv_ms, conn_id)
                gap = o.resynced or sym in self._connect_gap
                self._connect_gap.discard(sym)
                self._fresh.discard(sym)
                rows.append(self._row(o, r_ms, c_id, gap))
            else:
                self._problem(o, conn_id)
        if book.synced and recv:
            recv.clear()
        return rows

    def _row(self, top: BookTop, recv_ms: int, conn_id: int, gap: bool) -> dict:
        return book_row(top.rec, top.bid_px, top.bid_qty, top.ask_px, top.ask_qty,
                        recv_ms, conn_id, gap)

    def _problem(self, p: BookProblem, conn_id: int) -> None:
        sym = p.symbol
        meta = dict(p.detail, kind=p.kind, conn_id=conn_id)
        if p.kind == "stale_event":
            return                                   # duplicate delivery: nothing to do
        if p.kind in ("pu_break", "crossed"):
            self.resyncs[sym] = self.resyncs.get(sym, 0) + 1
            metrics.book_resyncs_total.labels(sym).inc()
            if p.kind == "crossed":
                self.crossed[sym] = self.crossed.get(sym, 0) + 1
                log.warning("%s: crossed book after update %s (bid %s >= ask %s); resyncing",
                            sym, p.detail.get("u"), p.detail.get("best_bid"),
                            p.detail.get("best_ask"))
            if p.kind == "pu_break" and sym in self._fresh:
                # events missed while disconnected: expected, the reconnect already says so
                self._emit("book_resync", sym, dict(meta, reason="reconnect"))
                return
            self.gaps[sym] = self.gaps.get(sym, 0) + 1
            metrics.book_gaps_total.labels(sym).inc()
            if p.kind == "pu_break":
                log.warning("%s: depth pu chain broke (expected pu %s, got %s); resyncing",
                            sym, p.detail.get("expected_pu"), p.detail.get("pu"))
            if self.on_gap is not None:
                self.on_gap(sym, meta)
            self._emit("book_resync", sym, dict(meta, reason=p.kind))
            return
        if p.kind == "stale_snapshot":
            self._retry_at[sym] = time.monotonic() + min(self.retry_sec, 0.2)
        self._emit(f"book_{p.kind}", sym, meta)

    def _emit(self, event_type: str, symbol: str, meta: dict) -> None:
        if self.on_event is not None:
            self.on_event(event_type, symbol, meta)

    # --- snapshots ----------------------------------------------------------------------------
    def _maybe_fetch(self, sym: str) -> None:
        book = self.books.get(sym)
        if (book is None or not book.needs_snapshot or sym in self._tasks
                or sym in self._ready or time.monotonic() < self._retry_at.get(sym, 0.0)):
            return
        self._tasks[sym] = asyncio.get_running_loop().create_task(self._fetch(sym))

    async def _fetch(self, sym: str) -> None:
        try:
            snap = await self.fetch_snapshot(sym, self.snapshot_limit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:                    # noqa: BLE001 - retried with backoff
            n = self._failures[sym] = self._failures.get(sym, 0) + 1
            delay = min(self.retry_max_sec, self.retry_sec * 2 ** (n - 1))
            self._retry_at[sym] = time.monotonic() + delay
            log.warning("%s: depth snapshot failed (%s: %s); retry in %.1fs", sym,
                        type(exc).__name__, exc, delay)
            self._emit("book_snapshot_error", sym, {"error": f"{type(exc).__name__}: {exc}"})
        else:
            self._failures.pop(sym, None)
            self.snapshots[sym] = self.snapshots.get(sym, 0) + 1
            self._ready[sym] = snap
        finally:
            self._tasks.pop(sym, None)

    async def flush(self, symbol: str | None = None) -> None:
        """Wait for in-flight snapshot fetches (tests; shutdown)."""
        tasks = [t for s, t in self._tasks.items() if symbol in (None, s)]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        for t in self._tasks.values():
            t.cancel()
        self._tasks.clear()
