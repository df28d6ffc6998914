"""Per-symbol ``agg_trade_id`` bookkeeping: which ids are missing (SPEC §4.1, §7).

Binance aggregate-trade ids are consecutive per symbol, so the state is just the highest id
seen plus a list of missing intervals below it. A jump opens an interval, a late
(out-of-order) arrival or a REST heal closes the part it covers. Anything ``<= last`` and not
in an interval has been seen: the tracker doubles as an exact duplicate test beyond the LRU.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

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


@dataclass
class TradeIdTracker:
    """Sans-I/O id tracker of one symbol."""
    last_id: int | None = None
    gaps: list[Gap] = field(default_factory=list)   # sorted, disjoint, all below last_id

    def observe(self, agg_id: int, now_ms: int = 0) -> tuple[int, Gap | None]:
        """Record ``agg_id``; returns (NEW | DUPLICATE | FILLED, newly opened gap or None)."""
        last = self.last_id
        if last is None or agg_id == last + 1:
            self.last_id = agg_id
            return NEW, None
        if agg_id > last:
            gap = Gap(last + 1, agg_id - 1, now_ms)
            self.gaps.append(gap)
            self.last_id = agg_id
            return NEW, gap
        return (FILLED, None) if self.fill(agg_id) else (DUPLICATE, None)

    def is_missing(self, agg_id: int) -> bool:
        return self._find(agg_id) is not None

    def _find(self, agg_id: int) -> int | None:
        gaps = self.gaps
        if not gaps:
            return None
        i = bisect.bisect_right([g.start for g in gaps], agg_id) - 1
        if i >= 0 and gaps[i].start <= agg_id <= gaps[i].end:
            return i
        return None

    def fill(self, agg_id: int) -> bool:
        """Mark one missing id as received; False if it was not missing."""
        i = self._find(agg_id)
        if i is None:
            return False
        g = self.gaps[i]
        if g.start == g.end:
            del self.gaps[i]
        elif agg_id == g.start:
            g.start += 1
        elif agg_id == g.end:
            g.end -= 1
        else:
            self.gaps.insert(i + 1, Gap(agg_id + 1, g.end, g.opened_ms))
            g.end = agg_id - 1
        return True

    def fill_range(self, a: int, b: int) -> int:
        """Mark every missing id in [a, b] as settled; returns how many were missing."""
        out: list[Gap] = []
        n = 0
        for g in self.gaps:
            if g.end < a or g.start > b:
                out.append(g)
                continue
            n += min(g.end, b) - max(g.start, a) + 1
            if g.start < a:
                out.append(Gap(g.start, a - 1, g.opened_ms))
            if g.end > b:
                out.append(Gap(b + 1, g.end, g.opened_ms))
        self.gaps = out
        return n

    def missing(self) -> int:
        return sum(g.size for g in self.gaps)

    def restore(self, last_id: int | None, gaps: list[list[int]] | None = None,
                now_ms: int = 0) -> None:
        """Seed from a checkpoint: ids after ``last_id`` and in ``gaps`` are still owed."""
        self.last_id = last_id
        self.gaps = sorted((Gap(int(a), int(b), now_ms) for a, b in (gaps or []) if a <= b),
                           key=lambda g: g.start)

    def snapshot(self) -> list[list[int]]:
        return [[g.start, g.end] for g in self.gaps]


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
