"""One ``book`` row (schema ``schemas.BOOK``) from a depth record and its top-N levels: the
single place both book modes (partial and diff depth) build rows, so they cannot drift."""

from __future__ import annotations

from collections.abc import Sequence

from ..protocol.records import DepthUpdate


def book_row(rec: DepthUpdate, bid_px: Sequence[float], bid_qty: Sequence[float],
             ask_px: Sequence[float], ask_qty: Sequence[float], recv_ms: int, conn_id: int,
             gap: bool) -> dict:
    return {
        "recv_ts_ms": recv_ms,
        "event_ts_ms": rec.event_ts_ms,
        "transact_ts_ms": rec.transact_ts_ms,
        "symbol": rec.symbol,
        "first_update_id": rec.first_update_id,
        "final_update_id": rec.final_update_id,
        "prev_final_update_id": rec.prev_final_update_id,
        "bid_px": bid_px,
        "bid_qty": bid_qty,
        "ask_px": ask_px,
        "ask_qty": ask_qty,
        "gap": gap,
        "conn_id": conn_id,
    }
