"""The covered window: the minutes the capture was connected within a scope.

docs/dq.md measures completeness "over the covered window (first to last minute the capture was
connected in the partition)". The capture records connects/disconnects as ops events; when there
are none (older data, a foreign writer) the window falls back to the first..last trade minute.

Boundaries from ops events are rounded to whole minutes: a boundary minute is judged when the
capture was connected for at least half of it (a minute seen for a few seconds may rightly hold
no trade; a 10-minute precheck must not lose two of its minutes either). Trade boundaries are
whole minutes already. Covered *hours* (for scaling event counts) are the exact connected span.
A scope that starts with a disconnect (the connection began on an earlier date) starts at its
first day's midnight; one whose last connection event is not a close (still running, or killed)
ends with its last trade.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..storage import layout
from .source import Scope

MINUTE_MS = 60_000

# ops event types (as the capture writes them) that open / close the connected state; a
# "rollover" opens a replacement while the old connection is still up, so it changes nothing
OPEN_TYPES = ("connect", "reconnect")
CLOSE_TYPES = ("disconnect", "shutdown")
OPEN_SQL = "event_type IN (" + ", ".join(f"'{t}'" for t in OPEN_TYPES) + ")"
CLOSE_SQL = "event_type IN (" + ", ".join(f"'{t}'" for t in CLOSE_TYPES) + ")"


@dataclass(frozen=True)
class Window:
    """Judged minutes ``[start_ms, end_ms)`` (minute boundaries) and the exact connected span
    ``[first_ms, last_ms]``; ``source`` is ``ops`` or ``trades``."""

    start_ms: int
    end_ms: int
    source: str
    first_ms: int
    last_ms: int

    @property
    def minutes(self) -> int:
        return max(0, (self.end_ms - self.start_ms) // MINUTE_MS)

    @property
    def hours(self) -> float:
        return max(0, self.last_ms - self.first_ms) / 3_600_000

    def as_dict(self) -> dict:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "minutes": self.minutes,
                "first_ms": self.first_ms, "last_ms": self.last_ms,
                "hours": round(self.hours, 6), "source": self.source}


HALF = MINUTE_MS // 2


def _floor(ms: int) -> int:
    return ms // MINUTE_MS * MINUTE_MS


def _start_minute(ms: int) -> int:
    """First judged minute: the boundary minute counts if connected >= 30 s of it."""
    return -(-(ms - HALF) // MINUTE_MS) * MINUTE_MS


def _end_minute(ms: int) -> int:
    """End (exclusive) of the judged minutes: the last minute counts if connected >= 30 s."""
    return _floor(ms - HALF) + MINUTE_MS


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
        if first_kind == "close":
            first, start = first_day, first_day
        else:
            first, start = first_ts, _start_minute(first_ts)
        if last_kind == "close":
            last, end = last_ts, _end_minute(last_ts)
        elif trade_hi is not None:
            last, end = max(trade_hi, first), _floor(trade_hi) + MINUTE_MS
        else:
            last, end = last_ts, _end_minute(last_ts)
        end = max(start, min(end, last_day_end))
        if end - start == MINUTE_MS and min(last, end) - max(first, start) < HALF:
            end = start   # both boundaries in one minute: judged only if connected >= 30 s of it
        return Window(start, end, "ops", first, min(max(last, first), last_day_end))
    if trade_lo is None:
        return None
    return Window(_floor(trade_lo), _floor(trade_hi) + MINUTE_MS, "trades", trade_lo, trade_hi)
