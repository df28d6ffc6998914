"""Per-symbol ``agg_trade_id`` bookkeeping: which ids are missing (docs/capture.md).

Binance aggregate-trade ids are consecutive per symbol, so the state is just the highest id
seen plus the set of missing intervals below it (:mod:`.idranges`). A jump opens an interval, a late
(out-of-order) arrival or a REST heal closes the part it covers. Anything ``<= last`` and not
in an interval has been seen: the tracker doubles as an exact duplicate test beyond the dedup
window (``capture/dedup.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .idranges import IdRanges

NEW, DUPLICATE, FILLED = 0, 1, 2


@dataclass
class Gap:
    """A missing closed interval [start, end] opened at ``opened_ms``."""
    start: int
    end: int
    opened_ms: int = 0

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class TradeIdTracker:
    """Sans-I/O id tracker of one symbol; the missing ids are an :class:`IdRanges`
    (``owed``), so a storm's tens of thousands of holes cost O(log n) per id."""
    __slots__ = ("last_id", "owed")

    def __init__(self, last_id: int | None = None) -> None:
        self.last_id = last_id
        self.owed = IdRanges()        # sorted, disjoint, all below last_id

    @property
    def gaps(self) -> list[Gap]:
        """The missing intervals as :class:`Gap` objects (a copy: for reports and tests)."""
        o = self.owed
        return [Gap(a, b, t) for a, b, t in zip(o.starts, o.ends, o.opened)]

    def observe(self, agg_id: int, now_ms: int = 0) -> tuple[int, Gap | None]:
        """Record ``agg_id``; returns (NEW | DUPLICATE | FILLED, newly opened gap or None)."""
        last = self.last_id
        if last is None or agg_id == last + 1:
            self.last_id = agg_id
            return NEW, None
        if agg_id > last:
            gap = Gap(last + 1, agg_id - 1, now_ms)
            self.owed.add(last + 1, agg_id - 1, now_ms)
            self.last_id = agg_id
            return NEW, gap
        return (FILLED, None) if self.owed.discard(agg_id) else (DUPLICATE, None)

    def is_missing(self, agg_id: int) -> bool:
        return self.owed.find(agg_id) is not None

    def fill(self, agg_id: int) -> bool:
        """Mark one missing id as received; False if it was not missing."""
        return self.owed.discard(agg_id)

    def fill_range(self, a: int, b: int) -> int:
        """Mark every missing id in [a, b] as settled; returns how many were missing."""
        return self.owed.remove(a, b)

    def missing(self) -> int:
        return self.owed.total

    def restore(self, last_id: int | None, gaps: list[list[int]] | None = None,
                now_ms: int = 0) -> None:
        """Seed from a checkpoint: ids after ``last_id`` and in ``gaps`` are still owed."""
        self.last_id = last_id
        self.owed = IdRanges()
        for a, b in sorted((int(a), int(b)) for a, b in (gaps or []) if a <= b):
            self.owed.add(a, b, now_ms)

    def snapshot(self) -> list[list[int]]:
        return self.owed.snapshot()


def id_intervals(ids: list[int]) -> list[list[int]]:
    """Compress ids into sorted closed intervals (e.g. rows buffered but not yet durable)."""
    out: list[list[int]] = []
    for i in sorted(set(ids)):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def merge_intervals(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for s, e in sorted([list(x) for x in a] + [list(x) for x in b]):
        if out and s <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out
