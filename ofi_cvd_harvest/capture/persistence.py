"""Persistence: everything the capture's io thread owns (docs/capture.md "Files, rotation,
durability").

Staging the buffered rows into crash-safe segments, rotation into final Parquet files, the
checkpoint, recovering a killed run's segments at start, and reporting write failures to the
loop. Split out of ``capture/runner.py``, which composes one :class:`Persistence`; the loop-owned
state it reads (symbol states, healer, ops, buffers) is passed in, never copied.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from itertools import chain
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from ..protocol.tradegaps import DUPLICATE, id_intervals, merge_intervals
from ..storage import layout
from . import checkpoint as ckpt, resume
from .buffers import Batch, RawBuffers, Span, Swapped, build_spans
from .lease.guard import leased
from .memory import trim_heap
from .ops import OpsRecorder
from .publisher import open_raw_store
from .segments import SegmentLog, frames, recover as recover_segments
from .staging import StagingArea
from .symstate import now_ms as _now_ms
from .writer import RawWriter

_DAY_MS = 86_400_000
_KEY_COLS = {"agg_trade": ["agg_trade_id"], "book": ["final_update_id", "recv_ts_ms"],
             "ops": ["recv_ts_ms", "event_type", "meta_json"]}


def next_rotation(rotate_sec: float, now: float) -> float:
    """Every ``parquet_rotate_sec``, and exactly at the next UTC midnight."""
    midnight = (int(now * 1000) // _DAY_MS + 1) * _DAY_MS / 1000 + 0.05
    return min(now + rotate_sec, midnight)


def _popping(items: list) -> Iterator:
    """``items`` from the last, each dropped from the list as it is handed out."""
    while items:
        yield items.pop()


def _row_keys(stream: str, table: pa.Table) -> list:
    """Identity of a raw row for de-duplicating recovered segments against final files."""
    cols = [table.column(c).to_pylist() for c in _KEY_COLS[stream]]
    return cols[0] if len(cols) == 1 else list(zip(*cols))


class Persistence:
    """The raw store, its writer, the staging area, the segments and the checkpoint."""

    def __init__(self, settings: Any, log: Any, ops: OpsRecorder, buffers: RawBuffers,
                 states: dict, healer: Any, count_error: Callable[[], None]):
        self.settings = settings
        self.log = log
        self.ops = ops
        self.buffers = buffers
        self.states = states          # loop-owned: read on the loop (or exclusively)
        self.healer = healer
        self.count_error = count_error   # the error budget (capture/health.py)
        # an s3:// lake: files are written to a local spool and published (capture/publisher.py)
        self.storage, self.publisher = open_raw_store(settings, log)
        # (segment files, the written file holding their rows or None) not yet released
        self._unreleased: list[tuple[list[str], str | None]] = []
        self._write_failures: list[tuple[str, str, str, int, str]] = []
        self.writer = RawWriter(self.storage, settings.write_retries,
                                on_error=lambda b, a, e: self._write_failures.append(
                                    (b.stream, b.date, b.symbol, a, f"{type(e).__name__}: {e}")))
        self.pending: list[Batch] = []
        self._io = ThreadPoolExecutor(1, thread_name_prefix="capture-io")
        # while a rotation writes, the hand-overs' Python lists -> Arrow (build_spans) ahead of
        # the io thread's queue, so those rows wait compacted (see ``rotate``)
        self._build = ThreadPoolExecutor(1, thread_name_prefix="capture-build")
        self._rotating = False
        self._io_errors: list[str] = []
        # rows drained from the buffers every segment_flush_sec, waiting for the rotation
        self.staging = StagingArea()
        self.segments = (SegmentLog(self.storage.path("raw"), f"{os.getpid()}x{_now_ms()}")
                         if self.storage.local else None)
        self.durable_max: dict[str, int | None] = {s: None for s in settings.symbols}
        self.checkpoint_path = ckpt.path_in(settings.artifacts_dir)

    def shutdown_io(self) -> None:
        """In-flight hand-overs and rotations complete first (then the loop may write)."""
        self._build.shutdown(wait=True)   # its jobs hand their rows on to the io thread
        self._io.shutdown(wait=True)

    def restore(self) -> None:
        roots = [self.storage] + ([self.publisher.lake()] if self.publisher is not None else [])
        try:
            cp = ckpt.load(self.checkpoint_path)
        except ValueError as exc:
            cp = resume.rebuild(roots, self.checkpoint_path, self.settings.symbols, exc, self.log,
                                self.ops)
        if cp is None and (self.publisher is not None or leased(self.settings)):
            # a host taking over: the resume point from the lake (capture/resume.py "Takeover")
            cp = resume.takeover(roots, self.settings.symbols, self.ops, self.log, str(self.settings.data_dir))
        if cp is None:
            return
        now = _now_ms()
        for sym, c in cp.symbols.items():
            state = self.states.get(sym)
            if state is None or c.last_trade_id is None:
                continue
            state.tracker.restore(c.last_trade_id, c.open_gaps, now)
            state.restored = True
            self.durable_max[sym] = c.last_trade_id
            state.last_event_ms = c.last_event_ts_ms
            state.last_u = c.last_book_update_id
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
    # thread owns ``staging``, ``pending``, the segments and the writes (jobs run in FIFO order).
    # The loop hands work over with ``RawBuffers.swap`` (O(1)) plus a snapshot of what the
    # checkpoint needs, so Arrow conversion, segment appends, Parquet writes and fsyncs never
    # block message handling. While a rotation runs, hand-overs go through the "capture-build"
    # thread, which converts them to Arrow and then queues them for the io thread (behind the
    # rotation); ``rotate`` returns only once that thread is idle again, so the io thread sees
    # every hand-over in the loop's order. Start-up recovery and the final flush run while no
    # job is live.

    def snapshots(self) -> dict[str, tuple[list[list[int]], int | None, int | None]]:
        """What the checkpoint needs from loop-owned state (taken on the loop)."""
        return {sym: (state.tracker.snapshot(), state.last_event_ms, state.last_u)
                for sym, state in self.states.items()}

    def checkpoint(self, snaps: dict | None = None,
                    held_extra: dict[str, list[int]] | None = None) -> bool:
        snaps = self.snapshots() if snaps is None else snaps
        cp = ckpt.Checkpoint()
        # trade ids received but not yet in a final file, per symbol (one pass, any universe)
        held: dict[str, list[int]] = {k: list(v) for k, v in (held_extra or {}).items()}
        for b in self.pending:
            if b.stream == "agg_trade":
                held.setdefault(b.symbol, []).extend(b.trade_ids)
        for sym, ids in self.staging.trade_ids():
            held.setdefault(sym, []).extend(ids)
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

    def stage(self) -> None:
        """Every ``segment_flush_sec`` (on the loop): hand the buffered rows over; the io thread
        appends them to the crash-safe segments, so a hard kill loses at most that."""
        sw = self.buffers.swap()
        if sw.trades or sw.book or sw.ops:
            if self._rotating:
                self._build.submit(self._hand_on, sw).add_done_callback(self._io_done)
            else:
                self._io.submit(self._build_stage_io, sw).add_done_callback(self._io_done)

    def _hand_on(self, sw: Swapped) -> None:
        """(build thread) Python lists -> Arrow, then to the io thread. Arrow holds a book row
        in ~420 bytes, the lists in ~1.5 KB."""
        spans = build_spans(sw)
        del sw
        self._io.submit(self._stage_io, spans).add_done_callback(self._io_done)

    def _build_stage_io(self, sw: Swapped) -> None:
        spans = build_spans(sw)
        del sw
        self._stage_io(spans)

    def _io_done(self, fut) -> None:
        exc = fut.exception()
        if exc is not None:  # a bug: make it loud (the rows of that hand-over are lost)
            self.log.error("capture io job failed: %r", exc)
            self._io_errors.append(f"io job failed: {exc!r}")

    def _stage_io(self, spans: list[Span]) -> None:
        # one segment append (one write, one flush) per stream and date, for every symbol
        paths: dict[tuple[str, str], str] = {}
        if self.segments is not None:
            for key, table in frames(spans).items():
                try:
                    paths[key] = self.segments.append(key, table)
                except (OSError, pa.ArrowException) as exc:
                    self.log.warning("segment append failed (%s); rows stay in memory", exc)
        for span in spans:
            self.staging.add(span, paths.get((span.stream, span.date)))

    def _build_rotate_io(self, sw: Swapped, snaps: dict) -> None:
        """Stage the last rows, write one file per partition, then the checkpoint (io thread,
        or exclusively at shutdown)."""
        spans = build_spans(sw)
        del sw
        self._stage_io(spans)
        del spans
        pending, self.pending = self.pending, []
        pending.reverse()
        # one batch per (stream, date, symbol); a new generation of segment files starts
        if self.segments is not None:
            self.segments.roll()
        staged = self.staging.take()
        written: list[tuple[list[str], str]] = []
        # each batch is made when its turn comes and freed once written, not all at the end
        for b in chain(_popping(pending), staged):
            path = self.writer.write(b)
            if path is None:
                self.pending.append(b)   # kept (and its segment) for the next rotation
                continue
            written.append((b.segment_paths, path))
            if b.stream == "agg_trade" and b.trade_ids:
                mx = max(b.trade_ids)
                cur = self.durable_max[b.symbol]
                self.durable_max[b.symbol] = mx if cur is None else max(cur, mx)
            del b
        # the checkpoint (with the owed ranges below the new files' ids) is durable before the
        # segments go: a kill in between recovers the segments against the final files and
        # re-derives the holes, instead of finding files, no segments and an older checkpoint
        # (docs/capture.md "Files, rotation, durability"; test_kill_mid_rotation.py)
        # an s3:// lake: a file goes to the publisher only once its segments are released, so a
        # restart's recovery still finds it in the spool (capture/publisher.py)
        self._unreleased.extend(written)
        if self.checkpoint(snaps):   # else the segments stay: the next start recovers them
            self._release()
        trim_heap()   # the rotation's peak of freed buffers back to the OS (capture/memory.py)

    def _release(self, publish: bool = True) -> None:
        """Once the checkpoint is saved: delete the segment files of the written files, except
        any a pending (unwritten) batch still names. A segment file holds the rows of every
        symbol of its (stream, date), so it goes only when each partition in it is durable; a
        written file is published (s3 lake) only once all its segments are gone, so a
        restart's recovery still finds it in the spool to dedup against (at start-up,
        ``publish=False``: the publisher's start queues the released ones, oldest first)."""
        held = {p for b in self.pending for p in b.segment_paths}
        keep = []
        for paths, path in self._unreleased:
            if not held.isdisjoint(paths):
                keep.append((paths, path))
                continue
            SegmentLog.release(paths)
            if publish and self.publisher is not None and path is not None:
                self.publisher.ready(path)
        self._unreleased = keep

    def unpublished(self) -> list[str]:
        """Written files not yet handed to the publisher (their segments are not released)."""
        return [path for _, path in self._unreleased if path is not None]

    def pre_rotate(self) -> tuple[Swapped, dict]:
        self.ops.end_window()
        for sym, state in self.states.items():
            if state.dups > state.dups_reported:
                self.ops.emit("dedup_hits", {"count": state.dups - state.dups_reported,
                                             "total": state.dups}, symbol=sym)
                state.dups_reported = state.dups
        return self.buffers.swap(), self.snapshots()

    async def rotate(self) -> None:
        """Write the rotation and wait for it, handing the rows that arrive meanwhile over every
        ``segment_flush_sec`` as well: at 300 symbols a rotation takes seconds (tens under
        load), and rows left in the loop's buffers that long are held as Python objects at ~4x
        their Arrow size (docs/performance.md "Where a minute of staged rows went")."""
        sw, snaps = self.pre_rotate()
        loop = asyncio.get_running_loop()
        written = asyncio.wrap_future(self._io.submit(self._build_rotate_io, sw, snaps))
        del sw
        self._rotating = True
        try:
            tick = min(1.0, self.settings.segment_flush_sec)
            # a cancelled caller leaves the jobs running (shutdown_io waits for them)
            while not (await asyncio.wait({written}, timeout=tick))[0]:
                self.stage()
            # the build thread's hand-overs are queued for io before any later one
            await loop.run_in_executor(self._build, lambda: None)
        finally:
            self._rotating = False
        written.result()
        self.report_write_failures()

    def rotate_final(self) -> None:
        """Synchronous: only once the io thread has finished (it completes even inside a
        cancelled task)."""
        sw, snaps = self.pre_rotate()
        self._build_rotate_io(sw, snaps)
        self.report_write_failures()

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

    def recover(self) -> None:
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
                state = self.states[r.symbol]
                keep = []
                for i in table.column("agg_trade_id").to_pylist():
                    status, gap = state.tracker.observe(i)   # already-final ids are seen, too
                    keep.append(status != DUPLICATE and i not in final)
                    if gap is not None:
                        self.healer.opened(r.symbol, gap, "restart")
                if final:
                    cur = self.durable_max[r.symbol]
                    self.durable_max[r.symbol] = max([*final, *([cur] if cur is not None else [])])
                table = table.filter(pa.array(keep, pa.bool_()))
                ids = table.column("agg_trade_id").to_pylist()
                state.restored = True
            elif final:
                key = _row_keys(r.stream, table)
                table = table.filter(pa.array([k not in final for k in key], pa.bool_()))
            if table.num_rows:
                first = min(table.column("recv_ts_ms").to_pylist())
                batches.append(Batch(r.stream, r.date, r.symbol, table, first, ids,
                                     segment_paths=r.paths))
                rows += table.num_rows
        # the groups share files: a file goes once every group from it is durable (_release)
        files = sorted({p for r in found for p in r.paths})
        if not batches:
            SegmentLog.release(files)   # every row of them is in a final file already
            return
        self.log.info("recovering %d rows of a previous run from %d segment groups", rows,
                      len(batches))
        for b in batches:
            path = self.writer.write(b)
            if path is None:
                self.pending.append(b)   # keeps its files until it is written
                continue
            self._unreleased.append((b.segment_paths, path))
            if b.trade_ids:
                cur = self.durable_max[b.symbol]
                self.durable_max[b.symbol] = max(b.trade_ids + ([cur] if cur is not None else []))
        self.report_write_failures()
        self.ops.emit("segments_recovered", {"rows": rows, "groups": len(batches)})
        self._unreleased.extend(([p], None) for p in files)   # and those of no written group
        if self.checkpoint():
            self._release(publish=False)

    def report_write_failures(self) -> None:
        """On the loop (or exclusively): ops events, logs and the error budget for what the io
        thread reported."""
        errs, self._io_errors = self._io_errors, []
        for err in errs:
            self.log.error("%s", err)
            self.ops.emit("checkpoint_error" if err.startswith("checkpoint") else "io_error",
                          {"error": err[:200]})
            self.count_error()
        fails, self._write_failures = self._write_failures, []
        for stream, date, sym, attempt, err in fails:
            final = attempt >= self.settings.write_retries
            self.ops.emit("write_error" if final else "write_retry",
                          {"table": stream, "date": date, "attempt": attempt + 1, "error": err,
                           "kept_for_retry": final}, symbol=sym)
            (self.log.error if final else self.log.warning)(
                "write %s %s/%s attempt %d failed: %s%s", stream, date, sym, attempt + 1, err,
                " (rows kept, retried at next rotation)" if final else "")
            self.count_error()

