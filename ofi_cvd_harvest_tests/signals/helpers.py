"""Small raw-row builders for the signal tests (tables typed exactly as the capture writes)."""

from __future__ import annotations

import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.settings import Settings, SignalSettings
from ofi_cvd_harvest.storage import layout

DAY = "2025-01-02"
PREV = "2025-01-01"
D0 = layout.day_bounds_ms(DAY)[0]       # 00:00 UTC of DAY
SYM = "BTCUSDT"


def trades_table(rows: list[dict]) -> pa.Table:
    """rows: dicts with at least id, t (trade time), price, qty, buy (taker buy?); optional
    recv, E, source."""
    out = []
    for r in rows:
        t = r["t"]
        out.append({
            "recv_ts_ms": r.get("recv", t + 5), "event_ts_ms": r.get("E", t + 1), "trade_ts_ms": t,
            "symbol": SYM, "agg_trade_id": r["id"], "price": float(r["price"]), "qty": float(r["qty"]),
            "first_trade_id": r["id"], "last_trade_id": r["id"], "is_buyer_maker": not r["buy"],
            "source": r.get("source", "ws"), "conn_id": 1,
        })
    return pa.Table.from_pylist(out, schema=schemas.AGG_TRADE)


def book_table(rows: list[dict]) -> pa.Table:
    """rows: dicts with E, u, bids [(px, qty)…], asks [(px, qty)…], optional gap, recv."""
    out = []
    for r in rows:
        out.append({
            "recv_ts_ms": r.get("recv", r["E"] + 10), "event_ts_ms": r["E"], "transact_ts_ms": r["E"],
            "symbol": SYM, "first_update_id": r["u"] - 1, "final_update_id": r["u"],
            "prev_final_update_id": r.get("pu", r["u"] - 2),
            "bid_px": [float(p) for p, _ in r["bids"]], "bid_qty": [float(q) for _, q in r["bids"]],
            "ask_px": [float(p) for p, _ in r["asks"]], "ask_qty": [float(q) for _, q in r["asks"]],
            "gap": r.get("gap", False), "conn_id": 1,
        })
    return pa.Table.from_pylist(out, schema=schemas.BOOK)


def ops_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{"recv_ts_ms": r["recv"], "symbol": SYM, "event_type": r["type"],
                                  "meta_json": r.get("meta", "{}")} for r in rows], schema=schemas.OPS)


def settings(**signal_changes) -> Settings:
    return Settings(signals=SignalSettings(**signal_changes))
