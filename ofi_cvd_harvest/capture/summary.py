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
    sm = cap.summary
    sm.ended_ms = _now_ms()
    sm.files = list(cap.writer.files)          # the latest RawWriter.recent_files
    sm.files_written = cap.writer.files_written
    sm.write_errors = cap.writer.failed_attempts
    sm.decode_errors = dict(cap.ops.decode_errors)
    sm.messages = sum(cap.messages.values())
    sm.rows_unwritten = sum(b.rows for b in cap.pending)
    sm.unwritten = unwritten_by_table(cap.pending)
    h = cap.healer
    for sym, st in cap.states.items():
        sm.symbols[sym] = SymbolSummary(
            trades_ws=st.ws_count, trades_healed=st.rest_count, duplicates=st.dups,
            book_rows=st.book_rows, book_gaps=st.book_gaps,
            trade_gaps_detected=h.gaps_detected.get(sym, 0),
            trade_gaps_healed=h.gaps_healed.get(sym, 0),
            trade_gaps_unhealed=h.open_gaps(sym), owed_trades=h.owed(sym),
            redundant=cap.replicas.redundant.get(sym, 0) if cap.replicas else 0,
            last_trade_id=st.tracker.last_id)
    for sym, ss in sm.symbols.items():
        cap.log.info("%s: trades ws=%d healed=%d dups=%d book_rows=%d book_gaps=%d "
                     "gaps detected=%d healed=%d open=%d", sym, ss.trades_ws,
                     ss.trades_healed, ss.duplicates, ss.book_rows, ss.book_gaps,
                     ss.trade_gaps_detected, ss.trade_gaps_healed, ss.trade_gaps_unhealed)
    cap.log.info("capture stopped (%s): %d files, %d write errors, %d decode errors, "
                 "%d rows unwritten", reason, sm.files_written, sm.write_errors,
                 sum(sm.decode_errors.values()), sm.rows_unwritten)
    if sm.unwritten:
        cap.log.error("%s; receive-time ranges: %s", unwritten_message(sm.unwritten),
                      sm.unwritten)
