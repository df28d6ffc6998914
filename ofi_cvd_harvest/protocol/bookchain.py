"""``pu``-chain checker for book messages of one symbol (the raw ``book.gap`` flag, docs/reading.md).

Update ids are a global sequence, so the only valid continuity test is ``pu == previous u``.
A message with ``u <= previous u`` is a duplicate or a stale out-of-order delivery (or the
overlap of a roll-over connection): it is dropped, which keeps book rows time-ordered.
"""

from __future__ import annotations

ACCEPT, GAP, STALE = 0, 1, 2


class BookChain:
    __slots__ = ("last_u", "_fresh", "gaps", "stale")

    def __init__(self) -> None:
        self.last_u: int | None = None
        self._fresh = True
        self.gaps = 0      # chain breaks seen (not counting (re)connect starts)
        self.stale = 0     # dropped duplicates / stale messages

    @property
    def fresh(self) -> bool:
        """True until the first message after a (re)connect has been accepted."""
        return self._fresh

    def reset(self) -> None:
        """A (re)connect: the next accepted message starts a new chain (gap=True)."""
        self._fresh = True

    def check(self, u: int, pu: int) -> int:
        """ACCEPT (chain intact), GAP (accept, row gets gap=True) or STALE (drop)."""
        last = self.last_u
        if last is not None and (u == last or (u < last and not self._fresh)):
            self.stale += 1   # a fresh connection may restart a lower sequence (replay)
            return STALE
        self.last_u = u
        if self._fresh:
            self._fresh = False
            return GAP
        if pu != last:
            self.gaps += 1
            return GAP
        return ACCEPT
