"""Per-symbol state of the capture's hot path (owned by the event loop).

Split out of ``capture/runner.py``; ``__slots__`` keep the per-message attribute access cheap.
"""

from __future__ import annotations

import time
from collections import deque

from ..monitoring import metrics
from ..protocol.tradegaps import TradeIdTracker
from .dedup import RecentIdWindow


class SymState:
    __slots__ = ("dedup", "tracker", "lat", "ws_count", "rest_count", "dups", "book_rows",
                 "book_gaps", "last_event_ms", "last_trade_recv", "last_book_recv", "last_u",
                 "first_ws", "after_reconnect", "restored", "rate", "dups_reported", "lat_hist",
                 "cur_min", "trade_minutes", "checked_min")

    def __init__(self, dedup_ids: int, sym: str):
        self.dedup = RecentIdWindow(dedup_ids)
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
        self.checked_min = now_ms() // 60_000   # the partial first minute is not judged


def now_ms() -> int:
    """Wall-clock milliseconds (receive times)."""
    return time.time_ns() // 1_000_000
