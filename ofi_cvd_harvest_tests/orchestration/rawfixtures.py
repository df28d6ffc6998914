"""Synthetic raw partitions written exactly as the capture writes them (schemas + Storage).

Used where a real capture against the simulator would cost too much (CLI subprocess tests,
sensors); the asset test also runs on a real capture when the capture and simulator exist.
Trades: ~20/s, consecutive agg ids, a random-walk price, 5–40 ms latency; book: a 10-level
snapshot every 100 ms with a consistent ``pu`` chain; ops: one connect event. One file per
minute and stream, named ``part-<first_recv_ms>-<seq>.parquet``.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from ofi_cvd_harvest.schemas import AGG_TRADE, BOOK, OPS
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.fs import Storage


def write_raw(data_dir, date: str, symbol: str, minutes: int = 20, start_minute: int = 0,
              seed: int = 1, trades_per_sec: float = 20.0) -> dict[str, int]:
    """Write ``minutes`` of raw data for one partition; returns rows per stream."""
    storage = Storage(data_dir)
    rng = np.random.default_rng(seed)
    day0, _ = layout.day_bounds_ms(date)
    t0 = day0 + start_minute * 60_000
    rows = {"agg_trade": 0, "book": 0, "ops": 0}
    price = 65_000.0 if symbol.startswith("BTC") else 3_400.0
    tick = 0.1 if symbol.startswith("BTC") else 0.01
    agg_id = 1_000_000 + start_minute * 10_000
    update_id = 5_000_000_000 + start_minute * 100_000
    for minute in range(minutes):
        m0 = t0 + minute * 60_000
        # trades
        n = int(rng.poisson(trades_per_sec * 60))
        ev = np.sort(m0 + rng.integers(0, 60_000, n)).astype(np.int64)
        steps = rng.choice([-1, 0, 1], size=n, p=[0.3, 0.4, 0.3])
        prices = np.round(price + np.cumsum(steps) * tick, 2)
        price = float(prices[-1]) if n else price
        lat = rng.integers(5, 40, n).astype(np.int64)
        ids = np.arange(agg_id, agg_id + n, dtype=np.int64)
        agg_id += n
        trades = pa.table({
            "recv_ts_ms": ev + lat, "event_ts_ms": ev, "trade_ts_ms": ev - 1,
            "symbol": [symbol] * n, "agg_trade_id": ids, "price": prices,
            "qty": np.round(rng.lognormal(-4, 1.2, n), 3) + 0.001,
            "first_trade_id": ids * 3, "last_trade_id": ids * 3 + 2,
            "is_buyer_maker": rng.random(n) < 0.5, "source": ["ws"] * n,
            "conn_id": np.ones(n, dtype=np.int64),
        }, schema=AGG_TRADE)
        storage.write_parquet(layout.raw_file(date, symbol, "agg_trade", int(ev[0] + lat[0]), minute),
                              trades)
        rows["agg_trade"] += n
        # book: one top-10 snapshot every 100 ms
        bt = np.arange(m0, m0 + 60_000, 100, dtype=np.int64)
        k = len(bt)
        mids = price + np.cumsum(rng.choice([-1, 0, 1], size=k)) * tick
        lv = np.arange(1, 11)
        first = update_id + np.arange(k, dtype=np.int64) * 7
        final = first + 5
        prev = np.concatenate([[first[0] - 2], final[:-1]])
        update_id = int(final[-1]) + 2
        book = pa.table({
            "recv_ts_ms": bt + 12, "event_ts_ms": bt, "transact_ts_ms": bt - 2,
            "symbol": [symbol] * k, "first_update_id": first, "final_update_id": final,
            "prev_final_update_id": prev,
            "bid_px": [list(np.round(m - tick * lv, 2)) for m in mids],
            "bid_qty": [list(np.round(rng.uniform(0.1, 5, 10), 3)) for _ in range(k)],
            "ask_px": [list(np.round(m + tick * (lv - 1) + tick, 2)) for m in mids],
            "ask_qty": [list(np.round(rng.uniform(0.1, 5, 10), 3)) for _ in range(k)],
            "gap": [minute == 0 and i == 0 for i in range(k)],
            "conn_id": np.ones(k, dtype=np.int64),
        }, schema=BOOK)
        storage.write_parquet(layout.raw_file(date, symbol, "book", int(bt[0] + 12), minute), book)
        rows["book"] += k
    ops = pa.table({"recv_ts_ms": [t0], "symbol": [symbol], "event_type": ["connect"],
                    "meta_json": [json.dumps({"conn_id": 1, "endpoint": "market"})]}, schema=OPS)
    storage.write_parquet(layout.raw_file(date, symbol, "ops", t0, 0), ops)
    rows["ops"] += 1
    return rows
