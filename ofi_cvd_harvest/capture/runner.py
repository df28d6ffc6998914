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
import os
import pyarrow as pa
import pyarrow.parquet as pq
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .. import settings as settings_mod
from ..monitoring import metrics
from ..protocol.decode import ControlReply, DecodeError, decode
from ..protocol.plausible import TimeWindow
from ..protocol.records import AggTrade, DepthUpdate
from ..protocol.streams import MARKET, PUBLIC, agg_trade_stream, plan_connections
from ..protocol.tradegaps import DUPLICATE, TradeIdTracker, id_intervals, merge_intervals
from ..exchange.rest import RestClient, RestError
from ..exchange.ws import WsFeed
from ..storage import layout
from . import checkpoint as ckpt, resume
from .book_partial import PartialBook
from .buffers import Batch, RawBuffers, Swapped, build
from .dedup import DedupLRU
from .frames import FRAME_ERROR_KINDS, Subscriptions, handler_error, not_subscribed, subscriptions
from .memory import capture_gc, trim_heap
from .healing import Healer
from .redundancy import Replicas, stagger
from .housekeeping import clean_stale_tmp
from .ops import OpsRecorder
from .outcome import unwritten_by_table, unwritten_message
from .runlog import RunLog
from .publisher import open_raw_store
from .segments import SegmentLog, recover as recover_segments
from .status import StatusReporter
from .writer import RawWriter

Settings = settings_mod.Settings
_DAY_MS = 86_400_000


_KEY_COLS = {"agg_trade": ["agg_trade_id"], "book": ["final_update_id", "recv_ts_ms"],
             "ops": ["recv_ts_ms", "event_type", "meta_json"]}


def _row_keys(stream: str, table: pa.Table) -> list:
    """Identity of a raw row for de-duplicating recovered segments against final files."""
    cols = [table.column(c).to_pylist() for c in _KEY_COLS[stream]]
    return cols[0] if len(cols) == 1 else list(zip(*cols))


class CaptureError(RuntimeError):
    """The capture stopped on purpose because it cannot continue safely (e.g. error budget)."""


@dataclass
class SymbolSummary:
    trades_ws: int = 0
    trades_healed: int = 0
    duplicates: int = 0
    book_rows: int = 0
    book_gaps: int = 0
    trade_gaps_detected: int = 0
    trade_gaps_healed: int = 0
    trade_gaps_unhealed: int = 0
    owed_trades: int = 0           # trade ids still owed at exit (in the checkpoint)
    redundant: int = 0             # copies merged away from redundant connections
    last_trade_id: int | None = None

    @property
    def trades_written(self) -> int:
        return self.trades_ws + self.trades_healed


@dataclass
class CaptureSummary:
    symbols: dict[str, SymbolSummary] = field(default_factory=dict)
    files_written: int = 0
    files: list[str] = field(default_factory=list)   # the latest written (RawWriter.recent_files)
    write_errors: int = 0
    decode_errors: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    reconnects: int = 0
    started_ms: int = 0
    ended_ms: int = 0
    stop_reason: str = ""
    rows_unwritten: int = 0
    unwritten: dict[str, dict[str, int]] = field(default_factory=dict)   # outcome.py
    log_path: str = ""
    checkpoint_path: str = ""

    @property
    def errors(self) -> int:
        return self.write_errors + sum(self.decode_errors.values())


class _SymState:
    __slots__ = ("dedup", "tracker", "lat", "ws_count", "rest_count", "dups", "book_rows",
                 "book_gaps", "last_event_ms", "last_trade_recv", "last_book_recv", "last_u",
                 "first_ws", "after_reconnect", "restored", "rate", "dups_reported", "lat_hist",
                 "cur_min", "trade_minutes", "checked_min")

    def __init__(self, lru: int, sym: str):
        self.dedup = DedupLRU(lru)
        self.tracker = TradeIdTracker()
        self.lat: list[int] = []
        self.ws_count = self.rest_count = self.dups = self.book_rows = self.book_gaps = 0
        self.last_event_ms: int | None = None
        self.last_trade_recv = self.last_book_recv = 0
        self.last_u: int | None = None
        self.first_ws = True
        self.after_reconnect = False
        self.restored = False
        self.rate: deque[tuple[int, int]] = deque()   # (second, trades counted so far)
        self.dups_reported = 0
        self.lat_hist = metrics.latency_ms.labels(sym)
        self.cur_min = -1                    # minute (recv clock) of the last live trade
        self.trade_minutes: set[int] = set()
        self.checked_min = _now_ms() // 60_000   # the partial first minute is not judged


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_book_handler(settings: Settings, rest: RestClient, on_gap, on_event) -> Any:
    """Partial depth (default) or, with ``book_source == "diff"``, ``capture.book_diff.DiffBook``."""
    if settings.book_source == "diff":
        from .book_diff import DiffBook
        return DiffBook(settings, rest, on_gap=on_gap, on_event=on_event)
    return PartialBook(settings.book_levels, on_gap=on_gap)


class Capture:
    probe_delay_sec = 2.0     # after a trade-feed reconnect, ask REST if no trade came yet
    publish_drain_sec = 30.0  # s3:// lake: shutdown budget for publishing the spool

    def __init__(self, settings: Settings, log: logging.Logger | Any | None = None):
        self.s = settings
        self.final_heal_sec = settings.final_heal_sec   # shutdown budget for healing
        self.runlog = RunLog(settings.artifacts_dir, settings.log_level, forward=log)
        self.log = self.runlog.logger
        # an s3:// lake: files are written to a local spool and published (capture/publisher.py)
        self.storage, self.publisher = open_raw_store(settings, self.log)
        self._unreleased: list[tuple[list[str], str]] = []   # written files whose segments stay
        self.buffers = RawBuffers()
        self.ops = OpsRecorder(self.buffers, settings.symbols, self.log)
        self._write_failures: list[tuple[str, str, str, int, str]] = []
        self.writer = RawWriter(self.storage, settings.write_retries,
                                on_error=lambda b, a, e: self._write_failures.append(
                                    (b.stream, b.date, b.symbol, a, f"{type(e).__name__}: {e}")))
        self.pending: list[Batch] = []
        self._io = ThreadPoolExecutor(1, thread_name_prefix="capture-io")
        self._io_errors: list[str] = []
        # rows drained from the buffers every segment_flush_sec, waiting for the rotation
        self.staged: dict[tuple[str, str, str], list[Batch]] = {}
        self.segments = (SegmentLog(self.storage.path("raw"), f"{os.getpid()}x{_now_ms()}")
                         if self.storage.local else None)
        self.states = {s: _SymState(settings.dedup_lru, s) for s in settings.symbols}
        self.window = TimeWindow()   # plausible frame times; follows the exchange clock once known
        self.durable_max: dict[str, int | None] = {s: None for s in settings.symbols}
        self.rest = RestClient(settings.rest_base_url, settings.rest_weight_limit_per_min)
        self.healer = Healer(self.rest, {s: st.tracker for s, st in self.states.items()},
                             self._on_rest_trade, self.ops, self.log)
        self.book = make_book_handler(
            settings, self.rest, self._on_book_gap,
            lambda event_type, sym, meta: self.ops.emit(event_type, meta, symbol=sym))
        # partial depth never awaits: its rows are buffered in the message handler itself, so a
        # book row does not wait behind a burst of frames for the book task (docs/performance.md)
        self._book_sync = type(self.book) is PartialBook
        self.checkpoint_path = ckpt.path_in(settings.artifacts_dir)
        self.messages: dict[str, int] = {}
        self._msg_reported: dict[str, int] = {}
        self._dedup_seen: dict[str, int] = {}
        self._errors: deque[float] = deque()
        self.fatal: BaseException | None = None
        self._stop = asyncio.Event()
        self._feeds: list[WsFeed] = []
        self.replicas = Replicas(settings.redundancy) if settings.redundancy > 1 else None
        self._book_q: asyncio.Queue = asyncio.Queue()
        self._metrics_server = None
        self.live_cvd = self._make_live_cvd()
        self._side_tasks: set[asyncio.Task] = set()
        self.summary = CaptureSummary(started_ms=_now_ms(), log_path=str(self.runlog.path),
                                      checkpoint_path=str(self.checkpoint_path))

    # -- monitoring add-on ---------------------------------------------------------------------
    def _make_live_cvd(self):
        try:
            from ..monitoring.live_cvd import LiveCvd
            return LiveCvd(self.s)
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
        st = self.states[rec.symbol]     # a subscribed symbol (checked in _on_message)
        a = rec.agg_trade_id
        rep = self.replicas
        if st.dedup.seen(a):
            if rep is None or not rep.seen_trade(rec.symbol, conn_id, a, True):
                st.dups += 1
            return
        if st.first_ws:
            self._first_trade(st, rec)
        status, gap = st.tracker.observe(a, recv_ms)
        if status == DUPLICATE:
            if rep is None or not rep.seen_trade(rec.symbol, conn_id, a, True):
                st.dups += 1
            return
        if rep is not None:
            rep.seen_trade(rec.symbol, conn_id, a, False)
        if gap is not None:
            reason = "restart" if st.first_ws and st.restored else (
                "reconnect" if st.after_reconnect else "id_jump")
            self.healer.opened(rec.symbol, gap, reason)
        st.first_ws = st.after_reconnect = False
        self.buffers.add_trade(recv_ms, rec, "ws", conn_id)
        st.ws_count += 1
        st.lat.append(recv_ms - rec.event_ts_ms)
        st.last_event_ms = rec.event_ts_ms
        st.last_trade_recv = recv_ms
        m = recv_ms // 60_000
        if m != st.cur_min:
            st.cur_min = m
            st.trade_minutes.add(m)
        if self.live_cvd is not None:
            self.live_cvd.add(rec.symbol, rec.event_ts_ms, rec.qty, rec.is_buyer_maker, rec.price)

    def _first_trade(self, st: _SymState, rec: AggTrade) -> None:
        """A checkpoint from another id sequence (e.g. a different exchange) must not make
        every new id look like a duplicate: far behind the checkpoint -> start afresh."""
        last = st.tracker.last_id
        if st.restored and last is not None and rec.agg_trade_id < last - self.s.dedup_lru:
            self.ops.emit("checkpoint_mismatch", {"checkpoint_last_id": last,
                                                  "first_id": rec.agg_trade_id},
                          symbol=rec.symbol)
            self.log.warning("%s: first id %d far behind checkpoint %d; ignoring the checkpoint",
                             rec.symbol, rec.agg_trade_id, last)
            st.tracker.restore(None, [])
            self.durable_max[rec.symbol] = None
            st.restored = False

    def _on_rest_trade(self, t: AggTrade, recv_ms: int) -> None:
        st = self.states[t.symbol]
        st.dedup.seen(t.agg_trade_id)
        self.buffers.add_trade(recv_ms, t, "rest", 0)
        st.rest_count += 1
        if self.live_cvd is not None:
            self.live_cvd.add(t.symbol, t.event_ts_ms, t.qty, t.is_buyer_maker, t.price)

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _probe_after_reconnect(self, symbols: tuple[str, ...]) -> None:
        """A quiet symbol may not trade again for minutes after a reconnect, so the id jump
        that reveals trades missed during the outage would come late: ask REST for anything
        after the last id instead (what the stream then re-delivers is deduplicated)."""
        await asyncio.sleep(self.probe_delay_sec)
        for sym in symbols:
            st = self.states[sym]
            last = st.tracker.last_id
            if not st.after_reconnect or last is None:
                continue   # a live trade arrived: the tracker already saw any jump
            try:
                trades = await self.rest.agg_trades(sym, from_id=last + 1, limit=1000)
            except (RestError, DecodeError, OSError) as exc:
                self.log.warning("%s: reconnect probe failed: %s", sym, exc)
                continue
            recv_ms = _now_ms()
            new = 0
            for t in trades:
                if t.agg_trade_id in st.dedup:
                    continue
                status, gap = st.tracker.observe(t.agg_trade_id, recv_ms)
                if status == DUPLICATE:
                    continue
                if gap is not None:
                    self.healer.opened(sym, gap, "reconnect")
                self._on_rest_trade(t, recv_ms)
                new += 1
            self.healer.healed_rows[sym] = self.healer.healed_rows.get(sym, 0) + new
            if new:
                metrics.healed_trades_total.labels(sym).inc(new)
            self.ops.emit("reconnect_probe", {"from_id": last + 1, "rows": new}, symbol=sym)

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
        st = self.states[rec.symbol]
        st.last_book_recv = recv_ms
        add = self.buffers.add_book_row
        for row in rows:
            add(row)
            st.book_rows += 1
            st.last_u = row["final_update_id"]

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
                    self._spawn(self._probe_after_reconnect(symbols), "reconnect-probe")
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
        s = self.s
        streams = [agg_trade_stream(sym) for sym in s.symbols]
        streams += [self.book.stream_name(sym) for sym in s.symbols]
        feeds = []
        plans = plan_connections(s.ws_base_url, streams, s.max_streams_per_connection)
        for r in range(s.redundancy):   # replicas: capture/redundancy.py
            delay, phase = stagger(r, s.redundancy, s.rollover_sec)
            for i, plan in enumerate(plans):
                on_message, on_open, on_close = self._feed_callbacks(
                    plan.endpoint, plan.url, plan.symbols, plan.streams, i, r)
                feeds.append(WsFeed(plan.url, endpoint=plan.endpoint, on_message=on_message,
                                    on_open=on_open, on_close=on_close,
                                    ping_interval=s.ping_interval,
                                    heartbeat_timeout=s.heartbeat_timeout,
                                    reconnect_base_sec=s.reconnect_base_sec,
                                    reconnect_max_sec=s.reconnect_max_sec,
                                    rollover_sec=s.rollover_sec, seed=i + 1000 * r, log=self.log,
                                    start_delay=delay,
                                    roll_phase=phase if s.redundancy > 1 else None))
        return feeds

    # -- checkpoint ---------------------------------------------------------------------------
    def _restore(self) -> None:
        roots = [self.storage] + ([self.publisher.lake()] if self.publisher is not None else [])
        try:
            cp = ckpt.load(self.checkpoint_path)
        except ValueError as exc:
            cp = resume.rebuild(roots, self.checkpoint_path, self.s.symbols, exc, self.log,
                                self.ops)
        if cp is None and self.publisher is not None:   # a host taking over an s3:// lake
            cp = self.publisher.takeover_point(roots, self.s.symbols, self.ops)
        if cp is None:
            return
        now = _now_ms()
        for sym, c in cp.symbols.items():
            st = self.states.get(sym)
            if st is None or c.last_trade_id is None:
                continue
            st.tracker.restore(c.last_trade_id, c.open_gaps, now)
            st.restored = True
            self.durable_max[sym] = c.last_trade_id
            st.last_event_ms = c.last_event_ts_ms
            st.last_u = c.last_book_update_id
            if c.open_gaps:
                self.healer.restore(sym, c.open_gaps)
            self.ops.emit("checkpoint_restored", {"last_trade_id": c.last_trade_id,
                                                  "open_gaps": c.open_gaps[:50],
                                                  "last_event_ts_ms": c.last_event_ts_ms},
                          symbol=sym)
            self.log.info("%s: resuming after trade id %d (%d open gaps)", sym, c.last_trade_id,
                          len(c.open_gaps))

    # -- checkpoint / staging / rotation ------------------------------------------------------
    # Threading: the event loop owns the buffers, trackers and ops; one "capture-io" worker
    # thread owns ``staged``, ``pending``, the segments and the writes (jobs run in FIFO order).
    # The loop hands work over with ``RawBuffers.swap`` (O(1)) plus a snapshot of what the
    # checkpoint needs, so Arrow conversion, segment appends, Parquet writes and fsyncs never
    # block message handling. Start-up recovery and the final flush run while no job is live.

    def _snapshots(self) -> dict[str, tuple[list[list[int]], int | None, int | None]]:
        """What the checkpoint needs from loop-owned state (taken on the loop)."""
        return {sym: (st.tracker.snapshot(), st.last_event_ms, st.last_u)
                for sym, st in self.states.items()}

    def _checkpoint(self, snaps: dict | None = None,
                    held_extra: dict[str, list[int]] | None = None) -> bool:
        snaps = self._snapshots() if snaps is None else snaps
        cp = ckpt.Checkpoint()
        # trade ids received but not yet in a final file, per symbol (one pass, any universe)
        held: dict[str, list[int]] = {k: list(v) for k, v in (held_extra or {}).items()}
        for b in self.pending + [p for ps in self.staged.values() for p in ps]:
            if b.stream == "agg_trade":
                held.setdefault(b.symbol, []).extend(b.trade_ids)
        for sym, (tracker_gaps, last_event, last_u) in snaps.items():
            dmax = self.durable_max[sym]
            gaps: list[list[int]] = []
            if dmax is not None:
                gaps = [[a, min(b, dmax)] for a, b in tracker_gaps if a <= dmax]
                undurable = [i for i in held.get(sym, ()) if i <= dmax]
                if undurable:
                    gaps = merge_intervals(gaps, id_intervals(undurable))
            elif held.get(sym):
                # nothing durable yet (e.g. the disk was full from the start): everything from
                # the first held id on is owed, so a restart heals it instead of starting afresh
                dmax = min(held[sym]) - 1
            cp.symbols[sym] = ckpt.SymbolCheckpoint(dmax, gaps, last_event, last_u)
        try:
            ckpt.save(self.checkpoint_path, cp)
        except OSError as exc:
            self._io_errors.append(f"checkpoint write failed: {exc}")
            return False
        return True

    def _stage(self) -> None:
        """Every ``segment_flush_sec`` (on the loop): hand the buffered rows to the io thread,
        which appends them to the crash-safe segments, so a hard kill loses at most that."""
        sw = self.buffers.swap()
        if sw.trades or sw.book or sw.ops:
            self._io.submit(self._stage_io, sw).add_done_callback(self._io_done)

    def _io_done(self, fut) -> None:
        exc = fut.exception()
        if exc is not None:  # a bug: make it loud (the rows of that hand-over are lost)
            self.log.error("capture io job failed: %r", exc)
            self._io_errors.append(f"io job failed: {exc!r}")

    def _stage_io(self, sw: Swapped) -> None:
        for b in build(sw):
            key = (b.stream, b.date, b.symbol)
            if self.segments is not None:
                try:
                    path = self.segments.append(key, b.table)
                    if path not in b.segment_paths:
                        b.segment_paths.append(path)
                except (OSError, pa.ArrowException) as exc:
                    self.log.warning("segment append failed (%s); rows stay in memory", exc)
            self.staged.setdefault(key, []).append(b)

    def _take_staged(self) -> list[Batch]:
        """One batch per (stream, date, symbol) out of the staging area (a new generation of
        segment files starts)."""
        staged, self.staged = self.staged, {}
        seg_paths = self.segments.roll() if self.segments is not None else {}
        out = []
        # popped one key at a time, so the staged parts (a minute of Arrow slices and id lists)
        # are freed in small pieces between which the event loop can take the GIL: freed all at
        # once, their deallocation held the GIL for ~150 ms at 300 symbols (docs/performance.md)
        for key in list(staged):
            parts = staged.pop(key)
            stream, date, sym = key
            table = parts[0].table if len(parts) == 1 else pa.concat_tables([p.table for p in parts])
            ids = [i for p in parts for i in p.trade_ids]
            paths = sorted({q for p in parts for q in p.segment_paths} |
                           ({seg_paths[key]} if key in seg_paths else set()))
            out.append(Batch(stream, date, sym, table, min(p.first_recv_ms for p in parts), ids,
                             segment_paths=paths))
        return out

    def _rotate_io(self, sw: Swapped, snaps: dict) -> None:
        """Stage the last rows, write one file per partition, then the checkpoint (io thread,
        or exclusively at shutdown)."""
        self._stage_io(sw)
        batches = self.pending + self._take_staged()
        self.pending = []
        batches.reverse()
        written: list[tuple[list[str], str]] = []
        while batches:   # each batch is freed once written, not all at the end (see above)
            b = batches.pop()
            path = self.writer.write(b)
            if path is None:
                self.pending.append(b)   # kept (and its segment) for the next rotation
                continue
            written.append((b.segment_paths, path))
            if b.stream == "agg_trade" and b.trade_ids:
                mx = max(b.trade_ids)
                cur = self.durable_max[b.symbol]
                self.durable_max[b.symbol] = mx if cur is None else max(cur, mx)
        # the checkpoint (with the owed ranges below the new files' ids) is durable before the
        # segments go: a kill in between recovers the segments against the final files and
        # re-derives the holes, instead of finding files, no segments and an older checkpoint
        # (docs/capture.md "Files, rotation, durability"; test_kill_mid_rotation.py)
        # an s3:// lake: a file goes to the publisher only once its segments are released, so a
        # restart's recovery still finds it in the spool (capture/publisher.py)
        self._unreleased.extend(written)
        if self._checkpoint(snaps):   # else the segments stay: the next start recovers them
            for paths, path in self._unreleased:
                SegmentLog.release(paths)
                if self.publisher is not None:
                    self.publisher.ready(path)
            self._unreleased = []
        trim_heap()   # the rotation's peak of freed buffers back to the OS (capture/memory.py)

    def _pre_rotate(self) -> tuple[Swapped, dict]:
        self.ops.end_window()
        for sym, st in self.states.items():
            if st.dups > st.dups_reported:
                self.ops.emit("dedup_hits", {"count": st.dups - st.dups_reported,
                                             "total": st.dups}, symbol=sym)
                st.dups_reported = st.dups
        return self.buffers.swap(), self._snapshots()

    async def _rotate(self) -> None:
        sw, snaps = self._pre_rotate()
        await asyncio.get_running_loop().run_in_executor(self._io, self._rotate_io, sw, snaps)
        self._report_write_failures()

    def _rotate_final(self) -> None:
        """Synchronous: only once the io thread has finished (it completes even inside a
        cancelled task)."""
        sw, snaps = self._pre_rotate()
        self._rotate_io(sw, snaps)
        self._report_write_failures()

    def _already_final(self, stream: str, date: str, symbol: str, table: pa.Table) -> set:
        """Keys of recovered rows that a final file already holds: a kill between a file's
        rename and its segment's deletion must not write those rows twice."""
        if not table.num_rows:
            return set()
        lo = min(table.column("recv_ts_ms").to_pylist()) - 600_000
        try:
            paths = [p for p in self.storage.list_files(layout.raw_dir(date, symbol, stream))
                     if int(p.rsplit("/", 1)[1].split("-")[1]) >= lo]
            if not paths:
                return set()
            cols = _KEY_COLS[stream]
            existing = pa.concat_tables([pq.read_table(p, columns=cols) for p in paths])
        except (OSError, ValueError, IndexError, pa.ArrowException) as exc:
            self.log.warning("segment recovery: cannot read existing %s files (%s)", stream, exc)
            return set()
        return set(_row_keys(stream, existing))

    def _recover_segments(self) -> None:
        """Rows a killed process had received but not finalised -> Parquet, before going live.
        Trade ids are checked against the restored checkpoint so nothing is written twice."""
        if self.segments is None:
            return
        try:
            found = recover_segments(self.storage.path("raw"))
        except OSError as exc:
            self.log.warning("segment recovery skipped: %s", exc)
            return
        rows = 0
        batches = []
        for r in found:
            table = r.table
            ids: list[int] = []
            final = self._already_final(r.stream, r.date, r.symbol, table)
            if r.stream == "agg_trade" and r.symbol in self.states:
                table = table.sort_by("agg_trade_id")
                st = self.states[r.symbol]
                keep = []
                for i in table.column("agg_trade_id").to_pylist():
                    status, gap = st.tracker.observe(i)   # already-final ids are seen, too
                    keep.append(status != DUPLICATE and i not in final)
                    if gap is not None:
                        self.healer.opened(r.symbol, gap, "restart")
                if final:
                    cur = self.durable_max[r.symbol]
                    self.durable_max[r.symbol] = max([*final, *([cur] if cur is not None else [])])
                table = table.filter(pa.array(keep, pa.bool_()))
                ids = table.column("agg_trade_id").to_pylist()
                st.restored = True
            elif final:
                key = _row_keys(r.stream, table)
                table = table.filter(pa.array([k not in final for k in key], pa.bool_()))
            if table.num_rows:
                first = min(table.column("recv_ts_ms").to_pylist())
                batches.append(Batch(r.stream, r.date, r.symbol, table, first, ids,
                                     segment_paths=r.paths))
                rows += table.num_rows
            else:
                SegmentLog.release(r.paths)
        if not batches:
            return
        self.log.info("recovering %d rows of a previous run from %d segment groups", rows,
                      len(batches))
        for b in batches:
            path = self.writer.write(b)
            if path is None:
                self.pending.append(b)
                continue
            SegmentLog.release(b.segment_paths)
            if b.trade_ids:
                cur = self.durable_max[b.symbol]
                self.durable_max[b.symbol] = max(b.trade_ids + ([cur] if cur is not None else []))
        self._report_write_failures()
        self.ops.emit("segments_recovered", {"rows": rows, "groups": len(batches)})
        self._checkpoint()

    def _report_write_failures(self) -> None:
        """On the loop (or exclusively): ops events, logs and the error budget for what the io
        thread reported."""
        errs, self._io_errors = self._io_errors, []
        for err in errs:
            self.log.error("%s", err)
            self.ops.emit("checkpoint_error" if err.startswith("checkpoint") else "io_error",
                          {"error": err[:200]})
            self._count_error()
        fails, self._write_failures = self._write_failures, []
        for stream, date, sym, attempt, err in fails:
            final = attempt >= self.s.write_retries
            self.ops.emit("write_error" if final else "write_retry",
                          {"table": stream, "date": date, "attempt": attempt + 1, "error": err,
                           "kept_for_retry": final}, symbol=sym)
            (self.log.error if final else self.log.warning)(
                "write %s %s/%s attempt %d failed: %s%s", stream, date, sym, attempt + 1, err,
                " (rows kept, retried at next rotation)" if final else "")
            self._count_error()

    def _count_error(self) -> None:
        now = time.monotonic()
        e = self._errors
        e.append(now)
        while e and now - e[0] > 3600:
            e.popleft()
        if len(e) > self.s.max_errors_per_hour and self.fatal is None:
            self.fatal = CaptureError(
                f"error budget exceeded: {len(e)} errors in the last hour "
                f"(max_errors_per_hour={self.s.max_errors_per_hour}); stopping")
            self.log.error("%s", self.fatal)
            self.ops.emit("error_budget_exceeded", {"errors_last_hour": len(e),
                                                    "limit": self.s.max_errors_per_hour})
            self._stop.set()

    # -- periodic work ------------------------------------------------------------------------
    async def _clock_check(self) -> None:
        try:
            server = await self.rest.server_time()
        except (RestError, DecodeError, OSError) as exc:
            self.log.warning("clock check failed: %s", exc)
            self.ops.emit("clock_check_failed", {"error": str(exc)[:200]})
            return
        t0, t1 = self.rest.last_timing   # excludes waiting for the REST lock / pacing
        drift = (t0 + t1) / 2 * 1000 - server
        metrics.clock_drift_ms.set(drift)
        self.window.follow(-drift)   # frame times must now lie within a day of the exchange's
        meta = {"drift_ms": round(drift, 1), "rtt_ms": round((t1 - t0) * 1000, 1),
                "server_time_ms": server, "max_drift_ms": self.s.max_clock_drift_ms}
        if abs(drift) > self.s.max_clock_drift_ms:
            self.log.warning("clock drift %.0f ms vs exchange (limit %.0f ms)", drift,
                             self.s.max_clock_drift_ms)
            self.ops.emit("clock_drift", meta)
        else:
            self.ops.emit("clock_check", meta)

    async def _check_symbols(self) -> None:
        """A symbol the exchange does not list (a typo passes the syntax check) would just
        stay silent for 72 h: say so loudly at start (not fatal: listings change)."""
        try:
            info = await self.rest.exchange_info()
            listed = {d.get("symbol"): d.get("status") for d in info.get("symbols", [])
                      if isinstance(d, dict)}
        except (RestError, DecodeError, OSError, ValueError, AttributeError) as exc:
            self.log.warning("exchangeInfo check skipped: %s", exc)
            return
        for sym in self.s.symbols:
            status = listed.get(sym)
            if status != "TRADING":
                why = "not listed" if status is None else f"status {status}"
                self.log.error("%s: %s by exchangeInfo; no data will arrive for it", sym, why)
                self.ops.emit("symbol_unavailable", {"status": status}, symbol=sym)

    def _update_metrics(self, now_ms: int) -> None:
        for ep, n in self.messages.items():
            d = n - self._msg_reported.get(ep, 0)
            if d:
                metrics.messages_total.labels(ep).inc(d)
                self._msg_reported[ep] = n
        sec = now_ms // 1000
        for sym, st in self.states.items():
            lat, st.lat = st.lat, []
            metrics.observe_many(st.lat_hist, lat)
            total = st.ws_count          # the live feed (REST heals come in bursts)
            st.rate.append((sec, total))
            while st.rate and st.rate[0][0] < sec - 10:
                st.rate.popleft()
            span = max(1, sec - st.rate[0][0])
            metrics.recv_rate_tps.labels(sym).set((total - st.rate[0][1]) / span)
            # until the first message: the age of the capture (never connected = stale)
            started = self.summary.started_ms
            metrics.last_message_age_seconds.labels(sym, "agg_trade").set(
                (now_ms - (st.last_trade_recv or started)) / 1000)
            metrics.last_message_age_seconds.labels(sym, "book").set(
                (now_ms - (st.last_book_recv or started)) / 1000)
            closed = now_ms // 60_000 - 1        # live 1-minute buckets without any trade
            if closed > st.checked_min:
                empty = sum(1 for m in range(st.checked_min + 1, closed + 1)
                            if m not in st.trade_minutes)
                if empty:
                    metrics.empty_buckets_total.labels(sym).inc(empty)
                st.trade_minutes = {m for m in st.trade_minutes if m > closed}
                st.checked_min = closed
            received = st.ws_count + st.dups
            metrics.duplicate_rate.labels(sym).set(st.dups / received if received else 0.0)
        for sym, st in self.states.items():
            # dedup_hits_total is a counter: add what is new since the last tick
            prev = self._dedup_seen.get(sym, 0)
            if st.dups > prev:
                metrics.dedup_hits_total.labels(sym).inc(st.dups - prev)
                self._dedup_seen[sym] = st.dups

    async def _ticker(self, deadline: float | None) -> None:
        s = self.s
        now = time.time()
        next_rotate = self._next_rotation(now)
        next_clock = now + s.clock_check_interval_sec
        next_cvd = now + 5.0
        next_metrics = now + 1.0
        self.status = StatusReporter(self, s.status_interval_sec, now)   # capture/status.py
        tick = min(1.0, s.segment_flush_sec)
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), tick)
            except asyncio.TimeoutError:
                pass
            now = time.time()
            self._stage()
            self.window.refresh()
            self.status.tick(now)   # before _update_metrics takes the latencies
            if now >= next_metrics:
                next_metrics = now + 1.0
                self._update_metrics(int(now * 1000))
            if deadline is not None and time.monotonic() >= deadline:
                self.summary.stop_reason = self.summary.stop_reason or "run time reached"
                self._stop.set()
                return
            if self._stop.is_set():
                return
            if now >= next_rotate:
                await self._rotate()
                next_rotate = self._next_rotation(time.time())
            if now >= next_clock:
                next_clock = now + s.clock_check_interval_sec
                self._spawn(self._clock_check(), "clock-check")
            if self.live_cvd is not None and now >= next_cvd:
                next_cvd = now + 5.0
                try:
                    self.live_cvd.update_gauges()
                except Exception as exc:
                    self.log.warning("live CVD update failed: %s", exc)

    def _next_rotation(self, now: float) -> float:
        """Every ``parquet_rotate_sec``, and exactly at the next UTC midnight."""
        midnight = (int(now * 1000) // _DAY_MS + 1) * _DAY_MS / 1000 + 0.05
        return min(now + self.s.parquet_rotate_sec, midnight)

    # -- lifecycle ----------------------------------------------------------------------------
    def _start_metrics_server(self) -> None:
        port = self.s.prometheus_port
        if not port:
            return
        try:
            from prometheus_client import start_http_server
            self._metrics_server, _ = start_http_server(port, addr=self.s.prometheus_host,
                                                        registry=metrics.REGISTRY)
            self.log.info("metrics on http://%s:%d/metrics", self.s.prometheus_host, port)
        except OSError as exc:
            self.log.warning("metrics endpoint on port %d unavailable: %s", port, exc)
            self.ops.emit("metrics_unavailable", {"port": port, "error": str(exc)[:200]})

    async def run(self, run_seconds: float | None = None,
                  stop: asyncio.Event | None = None) -> CaptureSummary:
        s = self.s
        run_seconds = s.run_hours * 3600 if run_seconds is None else run_seconds
        with capture_gc():
            await self._run(run_seconds, stop)
        if self.fatal is not None:
            raise self.fatal
        return self.summary

    async def _run(self, run_seconds: float, stop: asyncio.Event | None) -> None:
        s = self.s
        deadline = time.monotonic() + run_seconds
        tasks: list[asyncio.Task] = []
        feed_tasks: list[asyncio.Task] = []
        stop_feeds = asyncio.Event()
        consumer: asyncio.Task | None = None
        try:
            self.log.info("capture start: symbols=%s run_seconds=%.0f ws=%s rest=%s data=%s",
                          ",".join(s.symbols), run_seconds, s.ws_base_url, s.rest_base_url,
                          s.data_dir)
            stale = clean_stale_tmp(self.storage, s.artifacts_dir, self.log)
            self.ops.emit("capture_start", {"symbols": list(s.symbols), "run_seconds": run_seconds,
                                            "book_source": s.book_source,
                                            "stale_tmp_removed": sum(stale.values())})
            # every series from the first second, before recovery can count anything
            metrics.init_capture(s.symbols, (MARKET, PUBLIC), FRAME_ERROR_KINDS)
            self._start_metrics_server()
            self._restore()
            self._recover_segments()
            if self.publisher is not None:
                self.publisher.start()
            metrics.capture_up.set(1)
            self._spawn(self._clock_check(), "clock-check")   # REST trouble must not delay WS
            self._spawn(self._check_symbols(), "symbol-check")
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
                                   "trades": {s: st.ws_count + st.rest_count
                                              for s, st in self.states.items()}})
        self._io.shutdown(wait=True)   # in-flight hand-overs and rotations complete first
        self._rotate_final()
        if self.pending:  # one more round of retries before giving up the rows
            time.sleep(0.5)
            self._rotate_final()
        if self.segments is not None:
            self.segments.close()
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
        self._update_metrics(_now_ms())
        metrics.capture_up.set(0)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        sm = self.summary
        sm.ended_ms = _now_ms()
        sm.files = list(self.writer.files)          # the latest RawWriter.recent_files
        sm.files_written = self.writer.files_written
        sm.write_errors = self.writer.failed_attempts
        sm.decode_errors = dict(self.ops.decode_errors)
        sm.messages = sum(self.messages.values())
        sm.rows_unwritten = sum(b.rows for b in self.pending)
        sm.unwritten = unwritten_by_table(self.pending)
        h = self.healer
        for sym, st in self.states.items():
            sm.symbols[sym] = SymbolSummary(
                trades_ws=st.ws_count, trades_healed=st.rest_count, duplicates=st.dups,
                book_rows=st.book_rows, book_gaps=st.book_gaps,
                trade_gaps_detected=h.gaps_detected.get(sym, 0),
                trade_gaps_healed=h.gaps_healed.get(sym, 0),
                trade_gaps_unhealed=h.open_gaps(sym), owed_trades=h.owed(sym),
                redundant=self.replicas.redundant.get(sym, 0) if self.replicas else 0,
                last_trade_id=st.tracker.last_id)
        for sym, ss in sm.symbols.items():
            self.log.info("%s: trades ws=%d healed=%d dups=%d book_rows=%d book_gaps=%d "
                          "gaps detected=%d healed=%d open=%d", sym, ss.trades_ws,
                          ss.trades_healed, ss.duplicates, ss.book_rows, ss.book_gaps,
                          ss.trade_gaps_detected, ss.trade_gaps_healed, ss.trade_gaps_unhealed)
        self.log.info("capture stopped (%s): %d files, %d write errors, %d decode errors, "
                      "%d rows unwritten", reason, sm.files_written, sm.write_errors,
                      sum(sm.decode_errors.values()), sm.rows_unwritten)
        if sm.unwritten:
            self.log.error("%s; receive-time ranges: %s", unwritten_message(sm.unwritten),
                           sm.unwritten)
        self.runlog.close()


async def run_capture(settings: Settings, *, run_seconds: float | None = None,
                      stop: asyncio.Event | None = None,
                      log: logging.Logger | None = None) -> CaptureSummary:
    """Capture until ``run_seconds`` (default ``settings.run_hours``) or ``stop``; always
    finalises files and the checkpoint. Raises :class:`CaptureError` on a fatal condition."""
    return await Capture(settings, log=log).run(run_seconds, stop)


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

    return asyncio.run(main())
