"""Per-symbol memory of recent ``agg_trade_id``s (``DEDUP_LRU`` of them, docs/capture.md).

Duplicates come from server re-sends, roll-over overlap and REST heals racing late WebSocket
deliveries. agg ids are consecutive per symbol, so instead of a set plus a FIFO of Python ints
(~100 bytes per id, and a 300-symbol universe kept growing for hours while the LRUs filled)
this is a direct-mapped window (:class:`RecentIdWindow`; it replaced an LRU, hence the
setting's name): slot ``id % capacity`` of a fixed int64 array holds the highest id seen for
that slot. For ids arriving nearly in order it remembers exactly the last ``capacity`` ids, in 8
bytes each, allocated once. An id older than its slot's occupant is simply "not recent" — as an
evicted id was for the LRU — and the exact id tracker behind it (``protocol/tradegaps.py``)
still tells a late duplicate from a healed gap.

Ids are int64: the decoder rejects any other (``bad_id``). Should one get here anyway, ``seen``
raises ``OverflowError`` before remembering anything, and the capture's frame guard skips
that frame (``capture/frames.py``): the window is never left half-updated.
"""

from __future__ import annotations

from array import array

_EMPTY = -(2**63)


class RecentIdWindow:
    __slots__ = ("capacity", "_slots", "_filled", "hits")

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._slots = array("q", [_EMPTY]) * capacity
        self._filled = 0
        self.hits = 0

    def seen(self, key: int) -> bool:
        """True if ``key`` is a recent duplicate (counted); otherwise remember it."""
        i = key % self.capacity
        cur = self._slots[i]
        if cur == key:
            self.hits += 1
            return True
        if key > cur:
            self._slots[i] = key     # first: an id beyond int64 raises here, nothing changed
            if cur == _EMPTY:
                self._filled += 1
        return False

    def __contains__(self, key: int) -> bool:
        return self._slots[key % self.capacity] == key

    def __len__(self) -> int:
        """How many ids are remembered (at most ``capacity``)."""
        return self._filled
