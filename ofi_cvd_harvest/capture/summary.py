"""What a capture run reports when it stops (``CaptureSummary``; docs/capture.md).

Split out of ``capture/runner.py``: the result types, and :func:`summarise`, which fills the
summary from the counters the capture keeps anyway and logs it once finalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .outcome import unwritten_by_table, unwritten_message
from .symstate import now_ms as _now_ms


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


def summarise(cap: Any, reason: str) -> None:
    """Fill ``cap.summary`` (a finalised :class:`~.runner.Capture`) and log it."""
    summary = cap.summary
    summary.ended_ms = _now_ms()
    summary.files = list(cap.writer.files)          # the latest RawWriter.recent_files
    summary.files_written = cap.writer.files_written
    summary.write_errors = cap.writer.failed_attempts
    summary.decode_errors = dict(cap.ops.decode_errors)
    summary.messages = sum(cap.messages.values())
    summary.rows_unwritten = sum(b.rows for b in cap.pending)
    summary.unwritten = unwritten_by_table(cap.pending)
    healer = cap.healer
    for sym, state in cap.states.items():
        summary.symbols[sym] = SymbolSummary(
            trades_ws=state.ws_count, trades_healed=state.rest_count, duplicates=state.dups,
            book_rows=state.book_rows, book_gaps=state.book_gaps,
            trade_gaps_detected=healer.gaps_detected.get(sym, 0),
            trade_gaps_healed=healer.gaps_healed.get(sym, 0),
            trade_gaps_unhealed=healer.open_gaps(sym), owed_trades=healer.owed(sym),
            redundant=cap.replicas.redundant.get(sym, 0) if cap.replicas else 0,
            last_trade_id=state.tracker.last_id)
    for sym, per_sym in summary.symbols.items():
        cap.log.info("%s: trades ws=%d healed=%d dups=%d book_rows=%d book_gaps=%d "
                     "gaps detected=%d healed=%d open=%d", sym, per_sym.trades_ws,
                     per_sym.trades_healed, per_sym.duplicates, per_sym.book_rows,
                     per_sym.book_gaps, per_sym.trade_gaps_detected, per_sym.trade_gaps_healed,
                     per_sym.trade_gaps_unhealed)
    cap.log.info("capture stopped (%s): %d files, %d write errors, %d decode errors, "
                 "%d rows unwritten", reason, summary.files_written, summary.write_errors,
                 sum(summary.decode_errors.values()), summary.rows_unwritten)
    if summary.unwritten:
        cap.log.error("%s; receive-time ranges: %s", unwritten_message(summary.unwritten),
                      summary.unwritten)
