"""Per-symbol LRU of recent ``agg_trade_id``s (``DEDUP_LRU``, SPEC §7).

Duplicates come from server re-sends, roll-over overlap and REST heals racing late WebSocket
deliveries. Ids arrive almost in order, so a set plus a FIFO ring of the same ids is an LRU
in practice and costs one set lookup per trade.
"""

from __future__ import annotations

from collections import deque


class DedupLRU:
    __slots__ = ("capacity", "_set", "_ring", "hits")

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._set: set[int] = set()
        self._ring: deque[int] = deque()
        self.hits = 0

    def seen(self, key: int) -> bool:
        """True if ``key`` is a recent duplicate (counted); otherwise remember it."""
        s = self._set
        if key in s:
            self.hits += 1
            return True
        s.add(key)
        ring = self._ring
        ring.append(key)
        if len(ring) > self.capacity:
            s.discard(ring.popleft())
        return False

    def __contains__(self, key: int) -> bool:
        return key in self._set

    def __len__(self) -> int:
        return len(self._set)
