"""The capture loop: exchange I/O -> sans-I/O protocol core -> atomic raw partitions.

One asyncio loop. The per-message hot path (decode -> dedup -> id tracker -> columnar
buffer) is synchronous and allocation-light; book messages go through a queue to the
(async) BookHandler so diff-depth snapshots can be awaited without blocking trades.
Every second the buffers are handed (O(1) swap) to one io thread, which builds the Arrow
tables and appends the crash-safe segments; rotation (every ``parquet_rotate_sec`` and at UTC
midnight) writes the files and the checkpoint on that thread too, so the loop only handles
messages. Shutdown (stop event, run time, signal, error budget, or any
exception including ``BaseException``) always finalises the files and the checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from .. import settings as settings_mod
from ..monitoring import metrics
from ..protocol.decode import ControlReply, DecodeError, decode
from ..protocol.plausible import TimeWindow
from ..protocol.records import AggTrade, DepthUpdate
from ..protocol.streams import MARKET, PUBLIC, agg_trade_stream, plan_connections
from ..protocol.tradegaps import DUPLICATE
from ..exchange.rest import RestClient
from ..exchange.ws import WsFeed
from . import eventloop
from .book_partial import PartialBook
from .bookhandler import BookHandler, make_book_handler
from .buffers import Batch, RawBuffers
from .exporter import Exporter
from .frames import FRAME_ERROR_KINDS, Subscriptions, handler_error, not_subscribed, subscriptions
from .health import CaptureError, Health
from .memory import capture_gc
from .healing import Healer
from .lease import guard as lease_guard
from .redundancy import Replicas, stagger
from .housekeeping import clean_stale_tmp
from .ops import OpsRecorder
from .persistence import Persistence, next_rotation
from .probe import probe_after_reconnect
from .runlog import RunLog
from .status import StatusReporter
from .summary import CaptureSummary, SymbolSummary, summarise
from .symstate import SymState, now_ms as _now_ms

__all__ = ["Capture", "CaptureError", "CaptureSummary", "SymbolSummary", "run_capture", "run_capture_sync"]

Settings = settings_mod.Settings


class Capture:
    probe_delay_sec = 2.0     # after a trade-feed reconnect, ask REST if no trade came yet
    publish_drain_sec = 30.0  # s3:// lake: shutdown budget for publishing the spool

    def __init__(self, settings: Settings, log: logging.Logger | Any | None = None):
        self.settings = settings
        self.final_heal_sec = settings.final_heal_sec   # shutdown budget for healing
        self.runlog = RunLog(settings.artifacts_dir, settings.log_level, forward=log)
        self.log = self.runlog.logger
        self.buffers = RawBuffers()
        self.ops = OpsRecorder(self.buffers, settings.symbols, self.log)
        self.states = {s: SymState(settings.dedup_lru, s) for s in settings.symbols}
        self.window = TimeWindow()   # plausible frame times; follows the exchange clock once known
        self.rest = RestClient(settings.rest_base_url, settings.rest_weight_limit_per_min)
        self._stop = asyncio.Event()
        self.health = Health(settings, self.rest, self.window, self.ops, self.log, self._stop)
        self.healer = Healer(self.rest, {s: state.tracker for s, state in self.states.items()},
                             self._on_rest_trade, self.ops, self.log)
        # the io thread's side: staging, segments, rotation, checkpoint (capture/persistence.py)
        self.store = Persistence(settings, self.log, self.ops, self.buffers, self.states,
                                 self.healer, self.health.count_error)
        self.storage, self.publisher = self.store.storage, self.store.publisher
        self.writer = self.store.writer
        self.checkpoint_path = self.store.checkpoint_path
        self.book: BookHandler = make_book_handler(
            settings, self.rest, self._on_book_gap,
            lambda event_type, sym, meta: self.ops.emit(event_type, meta, symbol=sym))
        # partial depth never awaits: its rows are buffered in the message handler itself, so a
        # book row does not wait behind a burst of frames for the book task (docs/performance.md)
        self._book_sync = type(self.book) is PartialBook
        self.messages: dict[str, int] = {}
        self._feeds: list[WsFeed] = []
        self.replicas = Replicas(settings.redundancy) if settings.redundancy > 1 else None
        self._book_q: asyncio.Queue = asyncio.Queue()
        self.live_cvd = self._make_live_cvd()
        self._side_tasks: set[asyncio.Task] = set()
        self.summary = CaptureSummary(started_ms=_now_ms(), log_path=str(self.runlog.path),
                                      checkpoint_path=str(self.checkpoint_path))
        self.exporter = Exporter(settings, self.log, self.ops, self.messages, self.states,
                                 self.summary.started_ms)

    @property
    def fatal(self) -> BaseException | None:
        """Set by the error budget (capture/health.py)."""
        return self.health.fatal

    @property
    def pending(self) -> list[Batch]:
        """Rows whose file could not be written yet (kept for the next rotation)."""
        return self.store.pending

    # -- monitoring add-on ---------------------------------------------------------------------
    def _make_live_cvd(self):
        try:
            from ..monitoring.live_cvd import LiveCvd
            return LiveCvd(self.settings)
        except Exception as exc:  # a monitoring add-on must never stop the capture
            self.log.warning("live CVD monitor unavailable: %s", exc)
            return None

    # -- hot path -----------------------------------------------------------------------------
    def _on_message(self, raw: bytes, recv_ms: int, conn_id: int, endpoint: str,
                    symbols: tuple[str, ...], subscribed: Subscriptions) -> None:
        """One frame; whatever it holds, it never raises (docs/capture.md, "Hostile frames")."""
        self.messages[endpoint] = self.messages.get(endpoint, 0) + 1
        try:
            stream, rec = decode(raw, self.window)
            t = type(rec)
            sub = subscribed.get(stream)  # type: ignore[arg-type]
            if sub is None or sub[1] is not t or sub[0] != rec.symbol:  # type: ignore[union-attr]
                if t is ControlReply:
                    self.log.info("control reply on conn %d: %s", conn_id, rec)
                    return
                raise not_subscribed(stream, rec, raw)
            if t is AggTrade:
                self._on_trade(rec, recv_ms, conn_id)  # type: ignore[arg-type]
            elif t is DepthUpdate:
                if self.replicas is not None and self.replicas.copy_of_book(
                        rec.symbol, rec.final_update_id, self.states[rec.symbol].last_u):
                    return
                if self._book_sync:
                    self._add_book_rows(rec, self.book.rows_for(rec, recv_ms, conn_id), recv_ms)
                else:
                    self._book_q.put_nowait((rec, recv_ms, conn_id))
        except DecodeError as err:
            self.ops.decode_error(err, conn_id, symbols, recv_ms)
        except Exception as exc:   # a bug: skip the frame, loudly, rather than stop the capture
            if not self.ops.decode_errors.get("handler_error"):
                self.log.error("handling a frame failed; skipped", exc_info=True)
            self.ops.decode_error(handler_error(exc, raw), conn_id, symbols, recv_ms)

    def _on_trade(self, rec: AggTrade, recv_ms: int, conn_id: int) -> None:
        state = self.states[rec.symbol]     # a subscribed symbol (checked in _on_message)
        agg_id = rec.agg_trade_id
        replicas = self.replicas
        if state.dedup.seen(agg_id):
            if replicas is None or not replicas.seen_trade(rec.symbol, conn_id, agg_id, True):
                state.dups += 1
            return
        if state.first_ws:
            self._first_trade(state, rec)
        status, gap = state.tracker.observe(agg_id, recv_ms)
        if status == DUPLICATE:
            if replicas is None or not replicas.seen_trade(rec.symbol, conn_id, agg_id, True):
                state.dups += 1
            return
        if replicas is not None:
            replicas.seen_trade(rec.symbol, conn_id, agg_id, False)
        if gap is not None:
            reason = "restart" if state.first_ws and state.restored else (
                "reconnect" if state.after_reconnect else "id_jump")
            self.healer.opened(rec.symbol, gap, reason)
        state.first_ws = state.after_reconnect = False
        self.buffers.add_trade(recv_ms, rec, "ws", conn_id)
        state.ws_count += 1
        state.lat.append(recv_ms - rec.event_ts_ms)
        state.last_event_ms = rec.event_ts_ms
        state.last_trade_recv = recv_ms
        minute = recv_ms // 60_000
        if minute != state.cur_min:
            state.cur_min = minute
            state.trade_minutes.add(minute)
        if self.live_cvd is not None:
            self.live_cvd.add(rec.symbol, rec.event_ts_ms, rec.qty, rec.is_buyer_maker, rec.price)

    def _first_trade(self, state: SymState, rec: AggTrade) -> None:
        """A checkpoint from another id sequence (e.g. a different exchange) must not make
        every new id look like a duplicate: far behind the checkpoint -> start afresh."""
        last, window = state.tracker.last_id, self.settings.dedup_lru
        if state.restored and last is not None and rec.agg_trade_id < last - window:
            self.ops.emit("checkpoint_mismatch", {"checkpoint_last_id": last,
                                                  "first_id": rec.agg_trade_id},
                          symbol=rec.symbol)
            self.log.warning("%s: first id %d far behind checkpoint %d; ignoring the checkpoint",
                             rec.symbol, rec.agg_trade_id, last)
            state.tracker.restore(None, [])
            self.store.durable_max[rec.symbol] = None
            state.restored = False

    def _on_rest_trade(self, t: AggTrade, recv_ms: int) -> None:
        state = self.states[t.symbol]
        state.dedup.seen(t.agg_trade_id)
        self.buffers.add_trade(recv_ms, t, "rest", 0)
        state.rest_count += 1
        if self.live_cvd is not None:
            self.live_cvd.add(t.symbol, t.event_ts_ms, t.qty, t.is_buyer_maker, t.price)

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _on_book_gap(self, symbol: str, meta: dict) -> None:
        self.states[symbol].book_gaps += 1
        self.ops.emit("book_gap", meta, symbol=symbol)

    async def _book_consumer(self) -> None:
        q = self._book_q
        book = self.book
        while True:
            item = await q.get()
            if item is None:
                return
            if item[0] == "connect":
                for sym in item[1]:
                    book.on_connect(sym, item[2])
                continue
            rec, recv_ms, conn_id = item
            self._add_book_rows(rec, await book.on_depth(rec, recv_ms, conn_id), recv_ms)

    def _add_book_rows(self, rec: DepthUpdate, rows: list[dict], recv_ms: int) -> None:
        state = self.states[rec.symbol]
        state.last_book_recv = recv_ms
        add = self.buffers.add_book_row
        for row in rows:
            add(row)
            state.book_rows += 1
            state.last_u = row["final_update_id"]

    # -- connection events --------------------------------------------------------------------
    def _feed_callbacks(self, endpoint: str, url: str, symbols: tuple[str, ...],
                        streams: tuple[str, ...], plan: int = 0, replica: int = 0):
        subscribed = subscriptions(streams)

        def on_message(raw: bytes, recv_ms: int, conn_id: int) -> None:
            self._on_message(raw, recv_ms, conn_id, endpoint, symbols, subscribed)

        def on_open(conn_id: int, kind: str) -> None:
            self.ops.emit(kind, {"endpoint": endpoint, "conn_id": conn_id,
                                 "url": url.split("?", 1)[0], "symbols": len(symbols)},
                          symbols=symbols)
            self.log.info("ws %s conn %d: %s (%d symbols)", endpoint, conn_id, kind, len(symbols))
            others = (self.replicas.opened(conn_id, plan, replica)
                      if self.replicas is not None else False)
            if kind == "reconnect":
                self.summary.reconnects += 1
                if endpoint == MARKET and not others:   # a live replica covered the outage
                    for s in symbols:
                        self.states[s].after_reconnect = True
                    self._spawn(probe_after_reconnect(self, symbols), "reconnect-probe")
            if endpoint != MARKET and kind != "rollover" and not others:
                if self._book_sync:   # before the new connection's first message, in order
                    for s in symbols:
                        self.book.on_connect(s, conn_id)
                else:
                    self._book_q.put_nowait(("connect", symbols, conn_id))

        def on_close(conn_id: int, reason: str, deliberate: bool) -> None:
            if self.replicas is not None:
                self.replicas.closed(conn_id)
            self.ops.emit("disconnect", {"endpoint": endpoint, "conn_id": conn_id,
                                         "reason": reason, "deliberate": deliberate},
                          symbols=symbols)
        return on_message, on_open, on_close

    def _make_feeds(self) -> list[WsFeed]:
        cfg = self.settings
        streams = [agg_trade_stream(sym) for sym in cfg.symbols]
        streams += [self.book.stream_name(sym) for sym in cfg.symbols]
        feeds = []
        plans = plan_connections(cfg.ws_base_url, streams, cfg.max_streams_per_connection)
        for r in range(cfg.redundancy):   # replicas: capture/redundancy.py
            delay, phase = stagger(r, cfg.redundancy, cfg.rollover_sec)
            for i, plan in enumerate(plans):
                on_message, on_open, on_close = self._feed_callbacks(
                    plan.endpoint, plan.url, plan.symbols, plan.streams, i, r)
                feeds.append(WsFeed(plan.url, endpoint=plan.endpoint, on_message=on_message,
                                    on_open=on_open, on_close=on_close,
                                    ping_interval=cfg.ping_interval,
                                    heartbeat_timeout=cfg.heartbeat_timeout,
                                    reconnect_base_sec=cfg.reconnect_base_sec,
                                    reconnect_max_sec=cfg.reconnect_max_sec,
                                    rollover_sec=cfg.rollover_sec, seed=i + 1000 * r, log=self.log,
                                    start_delay=delay,
                                    roll_phase=phase if cfg.redundancy > 1 else None))
        return feeds

    async def _ticker(self, deadline: float | None) -> None:
        cfg = self.settings
        now = time.time()
        next_rotate = next_rotation(cfg.parquet_rotate_sec, now)
        next_clock = now + cfg.clock_check_interval_sec
        next_cvd = now + 5.0
        next_metrics = now + 1.0
        self.status = StatusReporter(self, cfg.status_interval_sec, now)   # capture/status.py
        tick = min(1.0, cfg.segment_flush_sec)
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), tick)
            except asyncio.TimeoutError:
                pass
            now = time.time()
            self.store.stage()
            self.window.refresh()
            self.status.tick(now)   # before exporter.update takes the latencies
            if now >= next_metrics:
                next_metrics = now + 1.0
                self.exporter.update(int(now * 1000))
            if deadline is not None and time.monotonic() >= deadline:
                self.summary.stop_reason = self.summary.stop_reason or "run time reached"
                self._stop.set()
                return
            if self._stop.is_set():
                return
            if now >= next_rotate:
                await self.store.rotate()
                next_rotate = next_rotation(cfg.parquet_rotate_sec, time.time())
            if now >= next_clock:
                next_clock = now + cfg.clock_check_interval_sec
                self._spawn(self.health.clock_check(), "clock-check")
            if self.live_cvd is not None and now >= next_cvd:
                next_cvd = now + 5.0
                try:
                    await self.live_cvd.tick()     # staged trades in slices, then gauges
                except Exception as exc:
                    self.log.warning("live CVD update failed: %s", exc)

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self, run_seconds: float | None = None,
                  stop: asyncio.Event | None = None) -> CaptureSummary:
        cfg = self.settings
        run_seconds = cfg.run_hours * 3600 if run_seconds is None else run_seconds
        with capture_gc():
            await self._run(run_seconds, stop)
        if self.fatal is not None:
            raise self.fatal
        return self.summary

    async def _run(self, run_seconds: float, stop: asyncio.Event | None) -> None:
        cfg = self.settings
        deadline = time.monotonic() + run_seconds
        tasks: list[asyncio.Task] = []
        feed_tasks: list[asyncio.Task] = []
        stop_feeds = asyncio.Event()
        consumer: asyncio.Task | None = None
        try:
            self.log.info("capture start: symbols=%s run_seconds=%.0f ws=%s rest=%s data=%s",
                          ",".join(cfg.symbols), run_seconds, cfg.ws_base_url, cfg.rest_base_url,
                          cfg.data_dir)
            stale = clean_stale_tmp(self.storage, cfg.artifacts_dir, self.log)
            self.ops.emit("capture_start", {
                "symbols": [*cfg.symbols], "run_seconds": run_seconds, "book_source": cfg.book_source,
                "event_loop": eventloop.running(), "stale_tmp_removed": sum(stale.values())})
            # every series from the first second, before recovery can count anything
            metrics.init_capture(cfg.symbols, (MARKET, PUBLIC), FRAME_ERROR_KINDS)
            self.exporter.start_server()
            self.store.restore()
            self.store.recover()
            if self.publisher is not None:
                self.publisher.start(self.store.unpublished())
            metrics.capture_up.set(1)
            self._spawn(self.health.clock_check(), "clock-check")   # REST trouble must not delay WS
            self._spawn(self.health.check_symbols(), "symbol-check")
            self._feeds = self._make_feeds()
            feed_tasks = [asyncio.create_task(f.run(stop_feeds), name=f"feed-{f.endpoint}")
                          for f in self._feeds]
            consumer = asyncio.create_task(self._book_consumer(), name="book")
            tasks = [asyncio.create_task(self.healer.run(self._stop), name="healer"),
                     asyncio.create_task(self._ticker(deadline), name="ticker")]
            if stop is not None:
                tasks.append(asyncio.create_task(self._watch(stop), name="stop-watch"))
            watched = set(feed_tasks) | {consumer, *tasks}
            stopper = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait(watched | {stopper}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            stopper.cancel()
        finally:
            await self._shutdown(stop_feeds, feed_tasks, consumer, tasks)

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.summary.stop_reason = self.summary.stop_reason or "stop requested"
        self._stop.set()

    async def _shutdown(self, stop_feeds: asyncio.Event, feed_tasks: list[asyncio.Task],
                        consumer: asyncio.Task | None, tasks: list[asyncio.Task]) -> None:
        """Close feeds, drain the book queue, finalise every file, write the checkpoint."""
        self._stop.set()
        stop_feeds.set()
        try:
            # each wait before the final heal is bounded (4 + 2 + 1 s), so a stop takes at most
            # final_heal_sec + ~10 s whatever the backlog (docs/capture.md "Stopping within a
            # bound")
            if feed_tasks:
                await asyncio.wait(feed_tasks, timeout=4)
            for t in feed_tasks:
                t.cancel()
            if consumer is not None:
                self._book_q.put_nowait(None)
                await asyncio.wait([consumer], timeout=2)
            healer = next((t for t in tasks if t.get_name() == "healer"), None)
            if healer is not None:
                healer.cancel()
                await asyncio.wait([healer], timeout=1)
            if self.healer.busy and self.final_heal_sec > 0:
                # the last seconds' gaps: heal now rather than leave them to the next start
                try:
                    await asyncio.wait_for(self.healer.heal_due(force=True), self.final_heal_sec)
                except asyncio.TimeoutError:
                    self.log.warning("final heal incomplete after %.0fs; the checkpoint keeps "
                                     "the open gaps for the next start", self.final_heal_sec)
        except BaseException as exc:  # cancelled while shutting down: finalise anyway
            self.log.warning("shutdown interrupted (%s); finalising what is buffered",
                             type(exc).__name__)
        finally:
            for t in [*tasks, *feed_tasks, *self._side_tasks] + ([consumer] if consumer else []):
                t.cancel()
            self._drain_book_queue()
            self._finalise()

    def _drain_book_queue(self) -> None:
        """Book messages still queued (e.g. on cancellation) are turned into rows synchronously
        where the handler allows it (partial depth)."""
        rows_for = getattr(self.book, "rows_for", None)
        while not self._book_q.empty():
            item = self._book_q.get_nowait()
            if item is None or item[0] == "connect" or rows_for is None:
                continue
            for row in rows_for(*item):
                self.buffers.add_book_row(row)
                self.states[row["symbol"]].book_rows += 1

    def _finalise(self) -> None:
        """Synchronous so it completes even inside a cancelled task."""
        reason = self.summary.stop_reason or (str(self.fatal) if self.fatal else "exception")
        self.ops.emit("shutdown", {"reason": reason,
                                   "trades": {s: state.ws_count + state.rest_count
                                              for s, state in self.states.items()}})
        self.store.shutdown_io()   # in-flight hand-overs and rotations complete first
        self.store.rotate_final()
        if self.pending:  # one more round of retries before giving up the rows
            time.sleep(0.5)
            self.store.rotate_final()
        if self.store.segments is not None:
            self.store.segments.close()
        if self.publisher is not None:
            self.publisher.stop(self.publish_drain_sec)
        if self.live_cvd is not None:
            self.live_cvd.join(2.0)
        close_book = getattr(self.book, "close", None)
        if close_book is not None:
            try:
                close_book()
            except Exception as exc:  # pragma: no cover - defensive
                self.log.warning("book handler close failed: %s", exc)
        self.exporter.update(_now_ms())
        metrics.capture_up.set(0)
        self.exporter.stop_server()
        summarise(self, reason)   # capture/summary.py
        self.runlog.close()


async def run_capture(settings: Settings, *, run_seconds: float | None = None,
                      stop: asyncio.Event | None = None,
                      log: logging.Logger | None = None) -> CaptureSummary:
    """Capture until ``run_seconds`` (default ``settings.run_hours``) or ``stop``; always
    finalises files and the checkpoint. Raises :class:`CaptureError` on a fatal condition
    (a shard's lease: ``ShardHeld``, ``LeaseLost``; capture/lease/guard.py)."""
    async with lease_guard.held(settings, log) as lease:
        cap = Capture(settings, log=log)
        return await lease_guard.run_guarded(cap, lease, cap.run(run_seconds, stop))


def run_capture_sync(settings: Settings, *, run_seconds: float | None = None,
                     stop_event: threading.Event | None = None,
                     log: logging.Logger | None = None) -> CaptureSummary:
    """Blocking wrapper (Dagster ops, scripts); ``stop_event`` may be set from any thread."""

    async def main() -> CaptureSummary:
        stop = asyncio.Event()
        bridge = None
        if stop_event is not None:
            async def poll() -> None:
                while not stop_event.is_set():
                    await asyncio.sleep(0.2)
                stop.set()
            bridge = asyncio.create_task(poll())
        try:
            return await run_capture(settings, run_seconds=run_seconds, stop=stop, log=log)
        finally:
            if bridge is not None:
                bridge.cancel()

    return eventloop.run(main(), settings.event_loop)
