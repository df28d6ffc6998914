"""Merging redundant connections (``websocket.redundancy`` > 1; docs/capture.md "Redundant
connections").

At universe scale a gap must be prevented, not only healed: REST allows 120 ``aggTrades``
pages a minute, one drop of a 200-symbol connection needs about 200. So each stream is
subscribed on ``redundancy`` independent connections (*replicas*) opened at different times,
and their frames are merged by id: the first arrival wins, the other copies are counted as
``redundant`` (not as exchange duplicates). A trade gap opened by one replica's jump is closed by
another replica's delivery within the healer's grace, so only what *no* connection delivered is
owed. Book updates are merged by final update id ``u`` (the pu chain drops what is not beyond the
last accepted), and a replica's reconnect does not restart the book chain while another replica
of the same streams is live.

Which copy is redundant: each replica delivers a symbol's ids in increasing order, so an id
already seen that is beyond the replica's own last id came first through another replica; one at
or below it is a repeat on the same connection (an exchange duplicate, counted as before).
"""

from __future__ import annotations


START_STAGGER_SEC = 0.25


class Replicas:
    __slots__ = ("copies", "_replica", "_live", "_last", "redundant")

    def __init__(self, copies: int):
        self.copies = copies                                # connections per stream plan
        self._replica: dict[int, tuple[int, int]] = {}     # conn_id -> (plan, replica)
        self._live: dict[int, set[int]] = {}                # plan -> live conn ids
        self._last: dict[tuple[str, int], int] = {}          # (symbol, replica) -> last id
        self.redundant: dict[str, int] = {}                 # symbol -> copies merged away

    def opened(self, conn_id: int, plan: int, replica: int) -> bool:
        """Register a connection; True if another replica of ``plan`` is live (the book
        chain then continues instead of restarting)."""
        live = self._live.setdefault(plan, set())
        others = bool(live)
        live.add(conn_id)
        self._replica[conn_id] = (plan, replica)
        return others

    def closed(self, conn_id: int) -> None:
        pr = self._replica.pop(conn_id, None)
        if pr is not None:
            self._live.get(pr[0], set()).discard(conn_id)

    def seen_trade(self, symbol: str, conn_id: int, agg_id: int, repeat: bool) -> bool:
        """Note ``agg_id`` on ``conn_id``; for a repeat (already seen), True if it is a
        redundant copy (first delivered by another replica)."""
        pr = self._replica.get(conn_id)
        key = (symbol, pr[1] if pr else 0)
        last = self._last.get(key)
        if last is None or agg_id > last:
            self._last[key] = agg_id
            if repeat:
                self.redundant[symbol] = self.redundant.get(symbol, 0) + 1
                return True
        return False

    def copy_of_book(self, symbol: str, u: int, last_u: int | None) -> bool:
        """A book update another replica already delivered (``u`` not beyond the last one)."""
        if last_u is not None and u <= last_u:
            self.redundant[symbol] = self.redundant.get(symbol, 0) + 1
            return True
        return False


def stagger(replica: int, redundancy: int, rollover_sec: float) -> tuple[float, float]:
    """(start delay, roll-over phase) of ``replica``: opened :data:`START_STAGGER_SEC` apart
    (not in the same instant of the exchange's accept queue; short, because until the last
    replica is up the first one's drops are owed), and rolled over ``rollover_sec /
    redundancy`` apart for good (ws.py keeps the phase across reconnects), so two replicas
    are never both in a roll-over."""
    return replica * START_STAGGER_SEC, replica * rollover_sec / redundancy
