"""Synthetic raw partitions (vectorised numpy) for tests and the derivation benchmark.

Not a market model (that is ``sim/market.py``): just raw rows with the right schemas and
plausible shapes — bursty trade times, heavy-tailed sizes, a random-walk price, a 10-level
book every ~100 ms with occasional ``gap`` rows — written as the capture writes them, one
file per rotation interval, so readers see realistic file counts.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from .. import schemas
from ..storage import layout
from ..storage.fs import Storage


def synth_trades(start_ms: int, end_ms: int, n: int, *, seed: int = 0, first_id: int = 1,
                 symbol: str = "BTCUSDT") -> pa.Table:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(start_ms, end_ms, n))            # ties in ms are common, as live
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    qty = np.round(rng.pareto(1.5, n) * 0.01 + 0.001, 3)
    price = np.round(60000.0 * np.exp(np.cumsum(sign * qty) * 2e-5 + np.cumsum(rng.normal(0, 2e-5, n))), 1)
    lat = rng.gamma(2.0, 10.0, n).astype(np.int64)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return pa.table({
        "recv_ts_ms": t + lat, "event_ts_ms": t + 1, "trade_ts_ms": t, "symbol": [symbol] * n,
        "agg_trade_id": ids, "price": price, "qty": qty, "first_trade_id": ids * 3,
        "last_trade_id": ids * 3 + 2, "is_buyer_maker": sign < 0, "source": ["ws"] * n,
        "conn_id": np.ones(n, dtype=np.int64),
    }, schema=schemas.AGG_TRADE)


def synth_book(start_ms: int, end_ms: int, *, step_ms: int = 100, levels: int = 10, seed: int = 0,
               first_id: int = 1000, symbol: str = "BTCUSDT", gap_rate: float = 1e-4) -> pa.Table:
    rng = np.random.default_rng(seed + 1)
    t = np.arange(start_ms, end_ms, step_ms, dtype=np.int64)
    n = len(t)
    mid = 60000.0 + np.cumsum(rng.integers(-1, 2, n)) * 0.1
    bid0 = np.floor(mid * 10) / 10
    off = np.arange(levels) * 0.1
    bid_px = np.round(bid0[:, None] - off[None, :], 1)
    ask_px = np.round(bid0[:, None] + 0.1 + off[None, :], 1)
    bid_qty = np.round(rng.exponential(2.0, (n, levels)), 3)
    ask_qty = np.round(rng.exponential(2.0, (n, levels)), 3)
    u = first_id + np.arange(n, dtype=np.int64) * 7
    gap = rng.random(n) < gap_rate

    def lists(a: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), levels).cast(pa.list_(pa.float64()))

    return pa.table({
        "recv_ts_ms": t + 20, "event_ts_ms": t, "transact_ts_ms": t - 1, "symbol": [symbol] * n,
        "first_update_id": u - 3, "final_update_id": u, "prev_final_update_id": u - 7,
        "bid_px": lists(bid_px), "bid_qty": lists(bid_qty), "ask_px": lists(ask_px),
        "ask_qty": lists(ask_qty), "gap": gap, "conn_id": np.ones(n, dtype=np.int64),
    }, schema=schemas.BOOK)


def write_raw(storage: Storage, symbol: str, stream: str, table: pa.Table,
              rotate_ms: int = 60_000) -> list[str]:
    """Write ``table`` as the capture would: per UTC date of the event time (recv time for
    ops), one file per ``rotate_ms`` of receipt time, named ``part-<first_recv_ms>-<seq>``."""
    if table.num_rows == 0:
        return []
    df = pl.from_arrow(table)
    tcol = "recv_ts_ms" if stream == "ops" else "event_ts_ms"
    df = df.with_columns(
        (pl.col(tcol) // 86_400_000).alias("_day"), (pl.col("recv_ts_ms") // rotate_ms).alias("_bucket"))
    paths = []
    for i, ((day, _), part) in enumerate(df.group_by(["_day", "_bucket"], maintain_order=True)):
        date = layout.utc_date(int(day) * 86_400_000)
        first = int(part["recv_ts_ms"].min())
        tbl = part.drop("_day", "_bucket").to_arrow().cast(schemas.RAW_SCHEMAS[stream])
        paths.append(storage.write_parquet(layout.raw_file(date, symbol, stream, first, i), tbl))
    return paths
