"""Convert the hftbacktest USDⓈ-M recordings (../shared/realdata/) into raw-like tables.

``@trade`` lines (raw trades) become ``agg_trade`` rows with ``agg_trade_id = t``; the
``@depth@0ms`` diff stream is applied to the REST snapshot of the 18th file (docs/book_and_replay.md sync)
and a top-10 ``book`` row is emitted at the first event of every 100 ms, like the partial
``@depth10@100ms`` stream the capture records. Test-only code: a loop over messages.
"""

from __future__ import annotations

import gzip
import heapq
from pathlib import Path

import orjson
import pyarrow as pa

from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest import schemas

REALDATA = HFT
FILES = ("{sym}_20240718.gz", "{sym}_20240719.gz")


def available() -> bool:
    return (REALDATA / FILES[1].format(sym="btcusdt")).exists()


def convert(symbol: str, levels: int = 10) -> tuple[pa.Table, pa.Table]:
    trades, books = [], []
    state = {"bids": {}, "asks": {}, "last_u": None, "snap": None, "bucket": None, "gap": True}
    buffered: list[tuple[int, dict]] = []

    def apply(recv: int, d: dict) -> None:
        bids, asks = state["bids"], state["asks"]
        if d["u"] < state["snap"]:
            return
        if state["last_u"] is None:
            assert d["U"] <= state["snap"] <= d["u"], "first event must straddle the snapshot"
        elif d["pu"] != state["last_u"]:
            state["gap"] = True                                 # broken chain: flag the next row
        for side, book in (("b", bids), ("a", asks)):
            for p, q in d[side]:
                if float(q) == 0.0:
                    book.pop(float(p), None)
                else:
                    book[float(p)] = float(q)
        state["last_u"] = d["u"]
        bucket = d["E"] // 100
        if bucket != state["bucket"]:
            state["bucket"] = bucket
            bp = heapq.nlargest(levels, bids)
            ap = heapq.nsmallest(levels, asks)
            books.append({"recv_ts_ms": recv, "event_ts_ms": d["E"], "transact_ts_ms": d["T"],
                          "symbol": symbol, "first_update_id": d["U"], "final_update_id": d["u"],
                          "prev_final_update_id": d["pu"], "bid_px": bp,
                          "bid_qty": [bids[p] for p in bp], "ask_px": ap,
                          "ask_qty": [asks[p] for p in ap], "gap": state["gap"], "conn_id": 1})
            state["gap"] = False

    for name in FILES:
        with gzip.open(REALDATA / name.format(sym=symbol.lower()), "rb") as fh:
            for line in fh:
                ns, _, payload = line.partition(b" ")
                recv = int(ns) // 1_000_000
                msg = orjson.loads(payload)
                if "lastUpdateId" in msg:                      # REST snapshot: replay the buffer
                    state.update(snap=msg["lastUpdateId"], last_u=None, gap=True,
                                 bids={float(p): float(q) for p, q in msg["bids"]},
                                 asks={float(p): float(q) for p, q in msg["asks"]})
                    for item in buffered:
                        apply(*item)
                    buffered.clear()
                    continue
                stream, d = msg["stream"], msg["data"]
                if stream.endswith("@trade"):
                    trades.append({"recv_ts_ms": recv, "event_ts_ms": d["E"], "trade_ts_ms": d["T"],
                                   "symbol": symbol, "agg_trade_id": d["t"], "price": float(d["p"]),
                                   "qty": float(d["q"]), "first_trade_id": d["t"], "last_trade_id": d["t"],
                                   "is_buyer_maker": d["m"], "source": "ws", "conn_id": 1})
                elif "@depth" in stream:
                    if state["snap"] is None:
                        buffered.append((recv, d))
                    else:
                        apply(recv, d)
    return (pa.Table.from_pylist(trades, schema=schemas.AGG_TRADE),
            pa.Table.from_pylist(books, schema=schemas.BOOK))
