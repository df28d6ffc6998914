"""Diff-depth local order book: the sync state machine of docs/book_and_replay.md (sans-I/O).

Binance's documented procedure for USDT-M futures ("How to manage a local order book
correctly"): buffer the ``<sym>@depth`` stream, fetch a REST snapshot, drop events with
``u < lastUpdateId``, the first applied event must have ``U <= lastUpdateId <= u``, and from
then on every event's ``pu`` must equal the previous event's ``u`` -- otherwise start again
from a new snapshot. Quantities are absolute; 0 removes the level (removing an unknown level
is normal).

Peers get this wrong in two ways -- silently diverging after one dropped message, and
emitting crossed books -- so this machine makes both *detected* errors: a ``pu`` break or a
crossed/locked book after an update yields a :class:`BookProblem`, drops the book and asks for
a new snapshot (``needs_snapshot``). A problem is never emitted as a normal row.

No sockets, no clocks: the caller feeds :class:`DepthUpdate` and :class:`DepthSnapshot`
records and gets back :class:`BookTop` rows (top-N levels, best first) and problems. That is
what lets the tests drive it with real recordings, and the capture (``capture/book_diff.py``)
and the replay server (``sim/replay.py``) share it.

Data structure: a dict price -> qty per side plus a lazily sorted key list maintained with
``bisect``. Binance depth messages touch a few dozen levels, mostly near the touch, and the
book is pruned to ``max_levels`` per side, so list insert/delete (memmove) is cheap. Measured
on the four hftbacktest files (18k events, some with ~1000 levels): ~19 us per event, about a
third of the cost of decoding the payloads into records.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Union

from .records import DepthSnapshot, DepthUpdate

DEFAULT_MAX_LEVELS = 1000      # per side, like a limit=1000 REST snapshot
DEFAULT_BUFFER_LIMIT = 20_000  # diff events buffered while waiting for a snapshot


@dataclass(slots=True)
class BookTop:
    """The top ``levels`` of the book right after applying ``rec`` (best first).

    ``resynced`` is True on the first row after a (re)sync from a snapshot: the previous row
    (if any) does not chain to this one, so consumers mark it ``gap``."""
    rec: DepthUpdate
    bid_px: list[float]
    bid_qty: list[float]
    ask_px: list[float]
    ask_qty: list[float]
    resynced: bool


@dataclass(slots=True)
class BookProblem:
    """A detected error or notable protocol event.

    kinds: ``pu_break`` (chain broke; resync requested), ``crossed`` (best bid >= best ask
    after an update; resync requested), ``stale_snapshot`` (snapshot older than the first
    buffered event: the events in between are unknown; a newer snapshot is needed),
    ``buffer_overflow`` (oldest buffered events dropped while waiting for a snapshot),
    ``stale_event`` (an event entirely at or before the applied position, e.g. a duplicate:
    ignored, no resync)."""
    kind: str
    symbol: str
    detail: dict = field(default_factory=dict)

    @property
    def resync(self) -> bool:
        return self.kind in ("pu_break", "crossed", "stale_snapshot")


Output = Union[BookTop, BookProblem]


class _Side:
    """One side of the book: price -> qty with an ascending key list kept sorted."""

    __slots__ = ("qty", "keys", "is_bid")

    def __init__(self, is_bid: bool) -> None:
        self.qty: dict[float, float] = {}
        self.keys: list[float] = []
        self.is_bid = is_bid

    def clear(self) -> None:
        self.qty.clear()
        self.keys.clear()

    def load(self, levels: Iterable[tuple[float, float]]) -> None:
        self.clear()
        for px, q in levels:
            if q > 0.0:
                self.qty[px] = q
        self.keys = sorted(self.qty)

    def apply(self, levels: Iterable[tuple[float, float]]) -> None:
        qty, keys = self.qty, self.keys
        for px, q in levels:
            if q > 0.0:
                if px not in qty:
                    insort(keys, px)
                qty[px] = q
            elif px in qty:
                del qty[px]
                del keys[bisect_left(keys, px)]

    def best(self) -> float | None:
        if not self.keys:
            return None
        return self.keys[-1] if self.is_bid else self.keys[0]

    def top(self, n: int) -> tuple[list[float], list[float]]:
        keys = self.keys
        pxs = keys[:-n - 1:-1] if self.is_bid else keys[:n]
        qty = self.qty
        return pxs, [qty[p] for p in pxs]

    def prune(self, max_levels: int) -> None:
        """Drop the levels farthest from the touch beyond ``max_levels`` (bounded memory).
        Run with slack (callers check ``len > 1.1 * max``) so it is amortised."""
        excess = len(self.keys) - max_levels
        if excess <= 0:
            return
        if self.is_bid:
            gone, self.keys = self.keys[:excess], self.keys[excess:]
        else:
            gone, self.keys = self.keys[-excess:], self.keys[:-excess]
        for p in gone:
            del self.qty[p]

    def levels(self, limit: int | None = None) -> list[tuple[float, float]]:
        """All levels (or the best ``limit``), best first."""
        n = len(self.keys) if limit is None else limit
        pxs, qs = self.top(n)
        return list(zip(pxs, qs))


class LocalBook:
    """Local order book of one symbol, synced from a REST snapshot plus the diff stream.

    Usage: ``feed(rec)`` every ``depthUpdate``; when ``needs_snapshot`` is True, fetch
    ``/fapi/v1/depth`` and pass it to ``apply_snapshot(snap)``. Both return the outputs
    (rows and problems) produced, in order. After a problem with ``resync`` the book is empty
    and buffering again until the next snapshot."""

    def __init__(self, symbol: str, *, levels: int = 10, max_levels: int = DEFAULT_MAX_LEVELS,
                 buffer_limit: int = DEFAULT_BUFFER_LIMIT) -> None:
        if levels < 1 or max_levels < levels:
            raise ValueError("need 1 <= levels <= max_levels")
        self.symbol = symbol
        self.levels = levels
        self.max_levels = max_levels
        self._prune_at = max_levels + max(16, max_levels // 10)
        self.buffer_limit = buffer_limit
        self.bids = _Side(True)
        self.asks = _Side(False)
        self._buffer: deque[DepthUpdate] = deque()
        self.synced = False            # book valid and chained
        self._snapshot_id: int | None = None   # loaded snapshot awaiting its first event
        self.last_update_id: int | None = None  # u of the last applied event (or snapshot id)
        self.last_event: DepthUpdate | None = None
        self._resynced = False
        # counters (for metrics / tests)
        self.applied = 0
        self.resyncs = 0
        self.pu_breaks = 0
        self.crossed = 0
        self.dropped_stale = 0

    # ------------------------------------------------------------------ state
    @property
    def needs_snapshot(self) -> bool:
        """True while no usable snapshot is loaded (the I/O layer should fetch one)."""
        return not self.synced and self._snapshot_id is None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        """Forget the book (e.g. on reconnect): buffer again until the next snapshot."""
        self.bids.clear()
        self.asks.clear()
        self.synced = False
        self._snapshot_id = None
        self.last_update_id = None
        self._buffer.clear()

    def _fail(self, kind: str, rec: DepthUpdate, detail: dict) -> BookProblem:
        self.reset()
        self.resyncs += 1
        return BookProblem(kind, self.symbol, detail)

    # ------------------------------------------------------------------ inputs
    def feed(self, rec: DepthUpdate) -> list[Output]:
        """One diff-depth event in arrival order."""
        if self.synced:
            out: list[Output] = []
            self._apply_chained(rec, out)
            return out
        out = []
        if self._snapshot_id is not None:
            self._try_first(rec, out)
            return out
        self._buffer.append(rec)
        if len(self._buffer) > self.buffer_limit:
            dropped = self._buffer.popleft()
            out.append(BookProblem("buffer_overflow", self.symbol,
                                   {"dropped_u": dropped.final_update_id}))
        return out

    def apply_snapshot(self, snap: DepthSnapshot) -> list[Output]:
        """Load a REST snapshot and replay the buffered events over it."""
        out: list[Output] = []
        self.bids.load(snap.bids)
        self.asks.load(snap.asks)
        self.synced = False
        self._snapshot_id = snap.last_update_id
        self.last_update_id = snap.last_update_id
        self.last_event = None
        buffered, self._buffer = self._buffer, deque()
        while buffered:
            rec = buffered.popleft()
            if self.synced:
                self._apply_chained(rec, out)
                if not self.synced:      # a problem: keep the rest buffered for the next one
                    self._buffer.extend(buffered)
                    break
            else:
                self._try_first(rec, out)
                if self._snapshot_id is None and not self.synced:   # stale snapshot
                    self._buffer.extend(buffered)
                    break
        return out

    # ------------------------------------------------------------------ internals
    def _try_first(self, rec: DepthUpdate, out: list[Output]) -> None:
        """Book holds a snapshot (id L) and no event yet: drop u < L, need U <= L <= u."""
        snap_id = self._snapshot_id
        assert snap_id is not None
        if rec.final_update_id < snap_id:
            self.dropped_stale += 1
            return
        if rec.first_update_id > snap_id:
            # The snapshot is older than this event: updates in (L, U) are unknown.
            # Keep the event buffered; the next snapshot must be newer.
            self.bids.clear()
            self.asks.clear()
            self._snapshot_id = None
            self.last_update_id = None
            self._buffer.append(rec)
            self.resyncs += 1
            out.append(BookProblem("stale_snapshot", self.symbol,
                                   {"snapshot_id": snap_id, "U": rec.first_update_id,
                                    "u": rec.final_update_id}))
            return
        self._snapshot_id = None
        self.synced = True
        self._resynced = True
        self._apply(rec, out)

    def _apply_chained(self, rec: DepthUpdate, out: list[Output]) -> None:
        last = self.last_update_id
        if rec.prev_final_update_id != last:
            if last is not None and rec.final_update_id <= last:
                # wholly at/before the applied position (duplicate/late copy): its
                # absolute quantities are already superseded -- ignoring it is exact.
                out.append(BookProblem("stale_event", self.symbol,
                                       {"u": rec.final_update_id, "last_u": last}))
                return
            self.pu_breaks += 1
            problem = self._fail("pu_break", rec, {"expected_pu": last,
                                                   "pu": rec.prev_final_update_id,
                                                   "U": rec.first_update_id,
                                                   "u": rec.final_update_id})
            self._buffer.append(rec)   # a valid event: the next snapshot may cover it
            out.append(problem)
            return
        self._apply(rec, out)

    def _apply(self, rec: DepthUpdate, out: list[Output]) -> None:
        bids, asks = self.bids, self.asks
        bids.apply(rec.bids)
        asks.apply(rec.asks)
        self.last_update_id = rec.final_update_id
        self.last_event = rec
        self.applied += 1
        bb, ba = bids.best(), asks.best()
        if bb is not None and ba is not None and bb >= ba:
            self.crossed += 1
            out.append(self._fail("crossed", rec, {"best_bid": bb, "best_ask": ba,
                                                   "u": rec.final_update_id,
                                                   "locked": bb == ba}))
            return
        if len(bids.keys) > self._prune_at:
            bids.prune(self.max_levels)
        if len(asks.keys) > self._prune_at:
            asks.prune(self.max_levels)
        n = self.levels
        bpx, bq = bids.top(n)
        apx, aq = asks.top(n)
        out.append(BookTop(rec, bpx, bq, apx, aq, self._resynced))
        self._resynced = False

    # ------------------------------------------------------------------ views
    def best(self) -> tuple[float | None, float | None]:
        return self.bids.best(), self.asks.best()

    def snapshot(self, limit: int | None = None) -> DepthSnapshot | None:
        """The current book as a REST-style snapshot (``lastUpdateId`` = last applied
        ``u``), or None when not synced. Used by the replay server's ``/fapi/v1/depth``."""
        if not self.synced or self.last_update_id is None:
            return None
        ev = self.last_event
        return DepthSnapshot(
            last_update_id=self.last_update_id,
            event_ts_ms=ev.event_ts_ms if ev else 0,
            transact_ts_ms=ev.transact_ts_ms if ev else 0,
            bids=self.bids.levels(limit),
            asks=self.asks.levels(limit),
        )
