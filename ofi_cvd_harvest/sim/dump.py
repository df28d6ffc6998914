"""Ground-truth dump: every trade the simulator emitted, one Parquet file (``--dump-trades``).

Columns follow the raw ``agg_trade`` table's names (docs/reading.md) minus the capture-side ones, so a
test or a drill can anti-join it against the captured data directly.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("symbol", pa.string()),
    ("agg_trade_id", pa.int64()),
    ("event_ts_ms", pa.int64()),
    ("trade_ts_ms", pa.int64()),
    ("price", pa.float64()),
    ("qty", pa.float64()),
    ("first_trade_id", pa.int64()),
    ("last_trade_id", pa.int64()),
    ("is_buyer_maker", pa.bool_()),
])


def ground_truth_table(sim: Any, symbols: list[str] | None = None) -> pa.Table:
    """Every emitted trade of ``symbols`` (default all), vectorised from the trade log's
    columns when the source is the synthetic market (a day of BTCUSDT is ~2 M rows)."""
    symbols = list(sim.source.symbols) if symbols is None else symbols
    parts = []
    for sym in symbols:
        cols_of = getattr(sim.source, "visible_trade_columns", None)
        if cols_of is not None:
            c, spec = cols_of(sym)
            n = len(c["T"])
            parts.append(pa.table({
                "symbol": pa.array([spec.symbol] * n, pa.string()),
                "agg_trade_id": c["a"], "event_ts_ms": c["E"], "trade_ts_ms": c["T"],
                "price": np.round(c["px"] * spec.tick_size, spec.tick_decimals),
                "qty": np.round(c["qty"] * spec.lot_size, spec.lot_decimals),
                "first_trade_id": c["f"], "last_trade_id": c["l"], "is_buyer_maker": c["m"],
            }, schema=SCHEMA))
        else:
            rows = sim.ground_truth(sym)
            for r in rows:
                r.setdefault("event_ts_ms", r["trade_ts_ms"])
            parts.append(pa.Table.from_pylist(rows, schema=SCHEMA))
    return pa.concat_tables(parts) if parts else SCHEMA.empty_table()


def dump_trades(sim: Any, path: str) -> int:
    """Write the table atomically (temp name, fsync, rename); returns the row count."""
    table = ground_truth_table(sim)
    tmp = f"{path}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return table.num_rows
