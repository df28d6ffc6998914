"""Book rows from the partial-depth stream ``<sym>@depth{N}@100ms`` (the default book source).

Each message is a top-N snapshot, so a row is the message itself plus the ``pu``-chain
verdict: ``gap=True`` on the first row after a (re)connect or after a broken chain.
Duplicates and stale deliveries (``u`` not beyond the last accepted) are dropped.
Implements the BookHandler contract of ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Callable

from ..monitoring import metrics
from ..protocol.bookchain import GAP, STALE, BookChain
from ..protocol.records import DepthUpdate
from ..protocol.streams import partial_depth_stream
from .bookrow import book_row

OnGap = Callable[[str, dict], None]   # (symbol, meta) for a broken chain


class PartialBook:
    def __init__(self, levels: int = 10, on_gap: OnGap | None = None):
        self.levels = levels
        self.on_gap = on_gap
        self.chains: dict[str, BookChain] = {}

    def stream_name(self, symbol: str) -> str:
        return partial_depth_stream(symbol, self.levels)

    def chain(self, symbol: str) -> BookChain:
        c = self.chains.get(symbol)
        if c is None:
            c = self.chains[symbol] = BookChain()
        return c

    def on_connect(self, symbol: str, conn_id: int) -> None:
        self.chain(symbol).reset()

    def rows_for(self, rec: DepthUpdate, recv_ms: int, conn_id: int) -> list[dict]:
        """Synchronous core of :meth:`on_depth`."""
        chain = self.chain(rec.symbol)
        prev = chain.last_u
        fresh = chain.fresh
        verdict = chain.check(rec.final_update_id, rec.prev_final_update_id)
        if verdict == STALE:
            return []
        gap = verdict == GAP
        if gap and not fresh:
            metrics.book_gaps_total.labels(rec.symbol).inc()
            if self.on_gap is not None:
                self.on_gap(rec.symbol, {"prev_u": prev, "pu": rec.prev_final_update_id,
                                         "u": rec.final_update_id, "conn_id": conn_id})
        n = self.levels
        bid_px, bid_qty = zip(*rec.bids[:n]) if rec.bids else ((), ())
        ask_px, ask_qty = zip(*rec.asks[:n]) if rec.asks else ((), ())
        return [book_row(rec, bid_px, bid_qty, ask_px, ask_qty, recv_ms, conn_id, gap)]

    async def on_depth(self, rec: DepthUpdate, recv_ms: int, conn_id: int) -> list[dict]:
        return self.rows_for(rec, recv_ms, conn_id)
