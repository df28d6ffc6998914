"""Ground-truth dump: every trade the simulator emitted, one Parquet file (``--dump-trades``).

Columns follow the raw ``agg_trade`` table's names (SPEC §3.1) minus the capture-side ones, so a
test or a drill can anti-join it against the captured data directly.
"""

from __future__ import annotations

import os
from typing import Any

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


def ground_truth_table(sim: Any) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for sym in sim.source.symbols:
        rows.extend(sim.ground_truth(sym))
    for r in rows:
        r.setdefault("event_ts_ms", r["trade_ts_ms"])
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def dump_trades(sim: Any, path: str) -> int:
    """Write the table atomically (temp name, fsync, rename); returns the row count."""
    table = ground_truth_table(sim)
    tmp = f"{path}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return table.num_rows
