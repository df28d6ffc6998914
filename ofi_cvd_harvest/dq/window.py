"""The covered window: the minutes the capture was connected within a scope.

SPEC §6 measures completeness "over the covered window (first to last minute the capture was
connected in the partition)". The capture records connects/disconnects as ops events; when there
are none (older data, a foreign writer) the window falls back to the first..last trade minute.

Boundaries that come from ops events are rounded *inwards* to whole minutes (a minute the
capture only saw for a few seconds is not judged); trade boundaries are whole minutes already.
A scope that starts with a disconnect (the connection began on an earlier date) starts at its
first day's midnight; one whose last connection event is not a close (still running, or killed)
ends with its last trade.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..storage import layout
from .source import Scope

MINUTE_MS = 60_000

# ops event types (case-insensitive SQL patterns) that open / close the connected state
CLOSE_SQL = ("lower(event_type) LIKE '%disconnect%' OR lower(event_type) IN "
             "('shutdown', 'stop', 'stopped', 'capture_stop', 'capture_stopped', 'closed')")
OPEN_SQL = f"lower(event_type) LIKE '%connect%' AND NOT ({CLOSE_SQL})"


@dataclass(frozen=True)
class Window:
    """``[start_ms, end_ms)``, both on minute boundaries; ``source`` is ``ops`` or ``trades``."""

    start_ms: int
    end_ms: int
    source: str

    @property
    def minutes(self) -> int:
        return max(0, (self.end_ms - self.start_ms) // MINUTE_MS)

    @property
    def hours(self) -> float:
        return max(0, self.end_ms - self.start_ms) / 3_600_000

    def as_dict(self) -> dict:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "minutes": self.minutes,
                "hours": round(self.hours, 6), "source": self.source}


def _floor(ms: int) -> int:
    return ms // MINUTE_MS * MINUTE_MS


def _ceil(ms: int) -> int:
    return -(-ms // MINUTE_MS) * MINUTE_MS


def covered_window(scope: Scope) -> Window | None:
    """The scope's covered window, or None when there is neither a connection event nor a trade."""
    first_day, _ = layout.day_bounds_ms(scope.dates[0])
    _, last_day_end = layout.day_bounds_ms(scope.dates[-1])
    trade_lo = trade_hi = None
    if scope.has("prices"):
        trade_lo, trade_hi = scope.one("SELECT min(event_ts_ms), max(event_ts_ms) FROM prices")
    conn_events: list[tuple] = []
    if scope.has("raw_ops"):
        conn_events = scope.sql(
            f"SELECT recv_ts_ms, CASE WHEN {CLOSE_SQL} THEN 'close' ELSE 'open' END FROM raw_ops "
            f"WHERE (symbol = ? OR symbol = '' OR symbol IS NULL) AND (({OPEN_SQL}) OR ({CLOSE_SQL})) "
            "AND recv_ts_ms >= ? AND recv_ts_ms < ? ORDER BY recv_ts_ms",
            [scope.symbol, first_day, last_day_end])
    if conn_events:
        first_ts, first_kind = conn_events[0]
        last_ts, last_kind = conn_events[-1]
        start = first_day if first_kind == "close" else _ceil(first_ts)
        if last_kind == "close":
            end = _floor(last_ts)
        elif trade_hi is not None:
            end = _floor(trade_hi) + MINUTE_MS
        else:
            end = _floor(last_ts)
        return Window(start, max(start, min(end, last_day_end)), "ops")
    if trade_lo is None:
        return None
    return Window(_floor(trade_lo), _floor(trade_hi) + MINUTE_MS, "trades")
