"""A set of ids kept as sorted, disjoint, closed intervals (docs/capture.md "Healing at scale").

Owed trade ids at universe scale are tens of thousands of small holes per symbol after a
disconnect storm, so every operation finds its place by bisection on the sorted starts
(O(log n) search; an insertion or deletion moves a C array, never a Python loop over the set).
Each interval remembers when its oldest id became owed (``opened``), so a scheduler can serve
the oldest debt first. ``total`` (ids) is kept up to date; ``pages(n)`` — REST requests of
``n`` ids needed to cover the set — is cached until the set changes.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Iterator


class IdRanges:
    __slots__ = ("starts", "ends", "opened", "total", "version", "_pages")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.opened: list[int] = []
        self.total = 0            # ids in the set
        self.version = 0          # bumped on every change (caches key on it)
        self._pages: tuple[int, int, int] | None = None   # (version, page, pages)

    def __len__(self) -> int:
        return len(self.starts)

    def __bool__(self) -> bool:
        return bool(self.starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.starts, self.ends)

    def snapshot(self) -> list[list[int]]:
        return [[a, b] for a, b in zip(self.starts, self.ends)]

    def find(self, i: int) -> int | None:
        """Index of the interval holding ``i``, else None."""
        k = bisect_right(self.starts, i) - 1
        return k if k >= 0 and self.ends[k] >= i else None

    def __contains__(self, i: int) -> bool:
        return self.find(i) is not None

    def add(self, a: int, b: int, opened_ms: int = 0) -> int:
        """Add [a, b] (merging overlapping and adjacent intervals); returns ids newly added."""
        if a > b:
            return 0
        starts, ends, opened = self.starts, self.ends, self.opened
        lo = bisect_left(ends, a - 1)            # first interval that may touch [a, b]
        hi = bisect_right(starts, b + 1)         # one past the last that may touch it
        if lo == hi == len(starts):              # the common case: beyond everything owed
            starts.append(a)
            ends.append(b)
            opened.append(opened_ms)
            self.total += b - a + 1
            self._changed()
            return b - a + 1
        covered = sum(min(ends[k], b) - max(starts[k], a) + 1 for k in range(lo, hi)
                      if ends[k] >= a and starts[k] <= b)
        na, nb, no = a, b, opened_ms
        if lo < hi:
            na, nb = min(a, starts[lo]), max(b, ends[hi - 1])
            no = min([opened_ms, *opened[lo:hi]])
        starts[lo:hi] = [na]
        ends[lo:hi] = [nb]
        opened[lo:hi] = [no]
        added = b - a + 1 - covered
        self.total += added
        self._changed()
        return added

    def remove(self, a: int, b: int) -> int:
        """Remove [a, b]; returns how many ids were in the set."""
        if a > b or not self.starts:
            return 0
        starts, ends, opened = self.starts, self.ends, self.opened
        lo = bisect_left(ends, a)
        hi = bisect_right(starts, b)
        if lo >= hi:
            return 0
        n = 0
        keep_s: list[int] = []
        keep_e: list[int] = []
        keep_o: list[int] = []
        for k in range(lo, hi):
            s, e, o = starts[k], ends[k], opened[k]
            n += min(e, b) - max(s, a) + 1
            if s < a:
                keep_s.append(s), keep_e.append(a - 1), keep_o.append(o)
            if e > b:
                keep_s.append(b + 1), keep_e.append(e), keep_o.append(o)
        starts[lo:hi] = keep_s
        ends[lo:hi] = keep_e
        opened[lo:hi] = keep_o
        self.total -= n
        self._changed()
        return n

    def discard(self, i: int) -> bool:
        """Remove one id; False if it was not in the set (the hot path of late deliveries)."""
        k = self.find(i)
        if k is None:
            return False
        s, e = self.starts[k], self.ends[k]
        if s == e:
            del self.starts[k], self.ends[k], self.opened[k]
        elif i == s:
            self.starts[k] = i + 1
        elif i == e:
            self.ends[k] = i - 1
        else:
            self.starts.insert(k + 1, i + 1)
            self.ends.insert(k + 1, e)
            self.opened.insert(k + 1, self.opened[k])
            self.ends[k] = i - 1
        self.total -= 1
        self._changed()
        return True

    def count_in(self, a: int, b: int) -> int:
        """Ids of the set within [a, b]."""
        starts, ends = self.starts, self.ends
        lo, hi = bisect_left(ends, a), bisect_right(starts, b)
        return sum(min(ends[k], b) - max(starts[k], a) + 1 for k in range(lo, hi))

    def pages(self, page: int) -> int:
        """Requests of ``page`` consecutive ids (``fromId`` pages) that cover the set, greedily
        from the lowest id: one page fills every small hole it spans."""
        c = self._pages
        if c is not None and c[0] == self.version and c[1] == page:
            return c[2]
        n, k, starts, ends = 0, 0, self.starts, self.ends
        while k < len(starts):
            reach = starts[k] + page - 1
            n += 1
            while True:
                k = bisect_right(starts, reach, k)
                e = ends[k - 1]
                if e <= reach:
                    break
                m = -(-(e - reach) // page)     # more pages to finish the interval it ends in
                n += m
                reach += m * page
        self._pages = (self.version, page, n)
        return n

    def _changed(self) -> None:
        self.version += 1
