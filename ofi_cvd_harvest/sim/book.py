"""A multi-level order book on a tick grid, built for cheap 100 ms diffs.

Bids and asks are two integer-lot arrays over the same window of absolute ticks
(``base + index``). Best bid ``b`` < best ask ``a`` always (no crossed book by construction);
levels farther than ``depth`` ticks from the best are trimmed. A depth event is then just
``flatnonzero(old != new)`` per side. The window re-centres (a coordinate change, nothing is
lost) when the band nears its edge.
"""

from __future__ import annotations

import numpy as np

from .symbols import fmt_fixed


class BandBook:
    def __init__(self, mid_tick: int, depth: int, rng: np.random.Generator, level_median_lots: float):
        self.depth = depth
        self.margin = max(64, depth)
        self.width = 2 * depth + 2 * self.margin
        self.base = mid_tick - self.width // 2
        self.bid = np.zeros(self.width, np.int64)
        self.ask = np.zeros(self.width, np.int64)
        self.level_median = max(1.0, level_median_lots)
        self.max_level = int(self.level_median * 1000)
        self.rng = rng
        self._pool: list[int] = []
        self._upool: list[float] = []
        self.b = self.width // 2 - 1
        self.a = self.width // 2
        self.bid[self.b - depth + 1:self.b + 1] = self._sizes(depth)
        self.ask[self.a:self.a + depth] = self._sizes(depth)

    def _sizes(self, n: int) -> np.ndarray:
        return np.clip(np.round(self.rng.lognormal(np.log(self.level_median), 1.2, n)), 1,
                       self.max_level).astype(np.int64)

    def _one(self) -> int:
        """One level size from a pre-drawn pool (a numpy call per value is too slow)."""
        if not self._pool:
            self._pool = self._sizes(256).tolist()
        return self._pool.pop()

    def _unif(self) -> float:
        if not self._upool:
            self._upool = self.rng.random(256).tolist()
        return self._upool.pop()

    # --- state helpers -------------------------------------------------------------------
    @property
    def best_bid_tick(self) -> int:
        return self.base + self.b

    @property
    def best_ask_tick(self) -> int:
        return self.base + self.a

    def recentre(self) -> int:
        """Shift the window so the spread sits in the middle; returns the shift (0 if none).
        Call only between diffs (the caller re-takes its ``old`` copy afterwards)."""
        if self.b - self.depth > self.margin // 2 and self.a + self.depth < self.width - self.margin // 2:
            return 0
        shift = (self.b + self.a) // 2 - self.width // 2
        for arr in (self.bid, self.ask):
            moved = np.zeros_like(arr)
            if shift > 0:
                moved[:self.width - shift] = arr[shift:]
            else:
                moved[-shift:] = arr[:self.width + shift]
            arr[:] = moved
        self.base += shift
        self.b -= shift
        self.a -= shift
        return shift

    def shift(self, d: int) -> None:
        """Move every level ``d`` ticks (the null market's book follows its price); a change of
        quantities in the window's coordinates, so the depth diff describes it."""
        if d == 0:
            return
        d = max(-self.margin // 2, min(self.margin // 2, d))
        for arr in (self.bid, self.ask):
            moved = np.zeros_like(arr)
            if d > 0:
                moved[d:] = arr[:-d]
            else:
                moved[:d] = arr[-d:]
            arr[:] = moved
        self.b += d
        self.a += d

    def _fix_best_bid(self) -> None:
        """Best bid after the old best emptied: the next level down (usually adjacent)."""
        bid, i, stop = self.bid, self.b - 1, max(0, self.b - 8)
        while i >= stop and bid[i] == 0:
            i -= 1
        if i >= stop:
            self.b = i
            return
        nz = np.flatnonzero(bid[:self.a])
        if len(nz):
            self.b = int(nz[-1])
        else:  # side wiped out: re-seed one level below the ask
            self.b = self.a - 1
            bid[self.b] = self._one()

    def _fix_best_ask(self) -> None:
        ask, i, stop = self.ask, self.a + 1, min(self.width - 1, self.a + 8)
        while i <= stop and ask[i] == 0:
            i += 1
        if i <= stop:
            self.a = i
            return
        nz = np.flatnonzero(ask[self.b + 1:])
        if len(nz):
            self.a = self.b + 1 + int(nz[0])
        else:
            self.a = self.b + 1
            ask[self.a] = self._one()

    # --- events --------------------------------------------------------------------------
    def take(self, is_buy: bool, lots: int) -> list[tuple[int, int]]:
        """A taker order of ``lots``: returns the fills as (price_tick, lots) per price level,
        best first. The book never empties (a wiped side re-seeds), so the order always fills."""
        fills: list[tuple[int, int]] = []
        side = self.ask if is_buy else self.bid
        while lots > 0:
            i = self.a if is_buy else self.b
            avail = int(side[i])
            q = min(avail, lots)
            fills.append((self.base + i, q))
            lots -= q
            side[i] = avail - q
            if side[i] == 0:
                if is_buy:
                    self._fix_best_ask()
                else:
                    self._fix_best_bid()
        return fills

    def quote(self, up: bool, kind: float) -> None:
        """A top-of-book quote event moving the price ``up`` or down (or resizing the top):
        ``kind`` < 0.35 cancels the best level on the far side (price moves), < 0.7 improves
        inside the spread if there is room, else changes the top size."""
        if kind < 0.35:
            if up:
                self.ask[self.a] = 0
                self._fix_best_ask()
            else:
                self.bid[self.b] = 0
                self._fix_best_bid()
        elif kind < 0.7 and self.a - self.b > 1:
            if up:
                self.b += 1
                self.bid[self.b] = self._one()
            else:
                self.a -= 1
                self.ask[self.a] = self._one()
        else:  # resize the top by a factor with E[log] ~ 0, capped: sizes cannot run away
            cap = self.max_level
            if up:
                self.bid[self.b] = min(cap, max(1, int(self.bid[self.b] * (0.6 + 0.9 * self._unif()))))
            else:
                self.ask[self.a] = min(cap, max(1, int(self.ask[self.a] * (0.6 + 0.9 * self._unif()))))
        if self.a - self.b > 1 and kind > 0.9:  # spread refills
            if up:
                self.a -= 1
                self.ask[self.a] = self._one()
            else:
                self.b += 1
                self.bid[self.b] = self._one()

    def churn(self, dist: np.ndarray, is_bid: np.ndarray, new: np.ndarray,
              maintain: bool = True) -> None:
        """Background limit-order flow: level ``dist`` ticks from the best (1 = the best) of
        the side ``is_bid`` gets quantity ``new`` (0 removes; never the best). A wide spread
        partly refills. With ``maintain``: holes refill, the band extends to ``depth`` levels
        and levels beyond it are trimmed (done every few windows: it is the slow part)."""
        if len(dist):
            self.bid[self.b - dist[is_bid] + 1] = new[is_bid]
            nb = ~is_bid
            self.ask[self.a + dist[nb] - 1] = new[nb]
        gap = self.a - self.b - 1
        if gap > 0:  # new limit orders close a wide spread
            nb_ = int(gap * 0.4 + self._unif())
            na_ = int((gap - nb_) * 0.4 + self._unif())
            if nb_:
                self.bid[self.b + 1:self.b + 1 + nb_] = self._sizes(nb_)
                self.b += nb_
            if na_:
                self.ask[self.a - na_:self.a] = self._sizes(na_)
                self.a -= na_
        if maintain:
            r = self.rng
            d = self.depth
            lo = self.b - d + 1
            band = self.bid[lo:self.b]
            holes = (band == 0) & (r.random(len(band)) < 0.3)
            band[holes] = self._sizes(int(holes.sum()))
            self.bid[:lo] = 0
            hi = self.a + d
            band = self.ask[self.a + 1:hi]
            holes = (band == 0) & (r.random(len(band)) < 0.3)
            band[holes] = self._sizes(int(holes.sum()))
            self.ask[hi:] = 0

    # --- views ---------------------------------------------------------------------------
    def top(self, n: int, td: int, ld: int) -> tuple[list[list[str]], list[list[str]]]:
        """Top ``n`` levels per side, best first, as Binance string pairs."""
        lo = max(0, self.b - 4 * n)
        bi = np.flatnonzero(self.bid[lo:self.b + 1])[::-1][:n] + lo
        ai = np.flatnonzero(self.ask[self.a:self.a + 4 * n])[:n] + self.a
        base = self.base
        return ([[fmt_fixed(base + i, td), fmt_fixed(q, ld)]
                 for i, q in zip(bi.tolist(), self.bid[bi].tolist())],
                [[fmt_fixed(base + i, td), fmt_fixed(q, ld)]
                 for i, q in zip(ai.tolist(), self.ask[ai].tolist())])

    def top_raw(self, n: int) -> tuple[list[int], list[int], list[int], list[int]]:
        """Top ``n`` levels per side, best first: (bid ticks, bid lots, ask ticks, ask lots).
        Pure Python over one ``tolist()`` per side: small numpy calls cost more here."""
        lo = max(0, self.b - 4 * n + 1)
        bq_all = self.bid[lo:self.b + 1].tolist()
        bt, bq = [], []
        t = self.base + self.b
        for q in reversed(bq_all):
            if q:
                bt.append(t)
                bq.append(q)
                if len(bt) == n:
                    break
            t -= 1
        aq_all = self.ask[self.a:self.a + 4 * n].tolist()
        at, aq = [], []
        t = self.base + self.a
        for q in aq_all:
            if q:
                at.append(t)
                aq.append(q)
                if len(at) == n:
                    break
            t += 1
        return bt, bq, at, aq

    def diff_raw(self, old_bid: np.ndarray, old_ask: np.ndarray
                 ) -> tuple[list[int], list[int], list[int], list[int]]:
        """Changed levels since ``old_*`` (same coordinates); 0 = removed."""
        bi = np.flatnonzero(old_bid != self.bid)[::-1]
        ai = np.flatnonzero(old_ask != self.ask)
        return ((bi + self.base).tolist(), self.bid[bi].tolist(),
                (ai + self.base).tolist(), self.ask[ai].tolist())

    def levels(self, n: int, td: int, ld: int) -> tuple[list[list[str]], list[list[str]]]:
        """Up to ``n`` levels per side over the whole band (REST depth snapshot)."""
        return book_levels(self.bid, self.ask, self.base, n, td, ld)

    def diff(self, old_bid: np.ndarray, old_ask: np.ndarray, td: int, ld: int
             ) -> tuple[list[list[str]], list[list[str]]]:
        """Changed levels since ``old_*`` (same coordinates): absolute quantities, 0 = removed."""
        base = self.base
        bi = np.flatnonzero(old_bid != self.bid)[::-1]
        ai = np.flatnonzero(old_ask != self.ask)
        return ([[fmt_fixed(base + i, td), fmt_fixed(q, ld)]
                 for i, q in zip(bi.tolist(), self.bid[bi].tolist())],
                [[fmt_fixed(base + i, td), fmt_fixed(q, ld)]
                 for i, q in zip(ai.tolist(), self.ask[ai].tolist())])



def book_levels(bid: np.ndarray, ask: np.ndarray, base: int, n: int, td: int, ld: int
                ) -> tuple[list[list[str]], list[list[str]]]:
    """Up to ``n`` levels per side of a (possibly copied) band, best first, as strings."""
    bi = np.flatnonzero(bid)[::-1][:n]
    ai = np.flatnonzero(ask)[:n]
    return ([[fmt_fixed(base + i, td), fmt_fixed(q, ld)] for i, q in zip(bi.tolist(), bid[bi].tolist())],
            [[fmt_fixed(base + i, td), fmt_fixed(q, ld)] for i, q in zip(ai.tolist(), ask[ai].tolist())])
