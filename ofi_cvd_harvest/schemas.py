"""Arrow schemas of every table (SPEC §3): the single source of column names, order and types.

Writers cast to these, readers and the DQ schema check compare against them, so a column
cannot drift between the capture, the derivation and the checks.
"""

from __future__ import annotations

import pyarrow as pa

RAW_STREAMS = ("agg_trade", "book", "ops")
DERIVED_KINDS = ("prices", "ofi", "cvd", "fusion", "events")

AGG_TRADE = pa.schema([
    ("recv_ts_ms", pa.int64()),
    ("event_ts_ms", pa.int64()),
    ("trade_ts_ms", pa.int64()),
    ("symbol", pa.string()),
    ("agg_trade_id", pa.int64()),
    ("price", pa.float64()),
    ("qty", pa.float64()),
    ("first_trade_id", pa.int64()),
    ("last_trade_id", pa.int64()),
    ("is_buyer_maker", pa.bool_()),
    ("source", pa.string()),          # "ws" | "rest"
    ("conn_id", pa.int64()),
])

BOOK = pa.schema([
    ("recv_ts_ms", pa.int64()),
    ("event_ts_ms", pa.int64()),
    ("transact_ts_ms", pa.int64()),
    ("symbol", pa.string()),
    ("first_update_id", pa.int64()),
    ("final_update_id", pa.int64()),
    ("prev_final_update_id", pa.int64()),
    ("bid_px", pa.list_(pa.float64())),
    ("bid_qty", pa.list_(pa.float64())),
    ("ask_px", pa.list_(pa.float64())),
    ("ask_qty", pa.list_(pa.float64())),
    ("gap", pa.bool_()),
    ("conn_id", pa.int64()),
])

OPS = pa.schema([
    ("recv_ts_ms", pa.int64()),
    ("symbol", pa.string()),          # "" for events not tied to one symbol
    ("event_type", pa.string()),
    ("meta_json", pa.string()),
])

RAW_SCHEMAS: dict[str, pa.Schema] = {"agg_trade": AGG_TRADE, "book": BOOK, "ops": OPS}

PRICES = pa.schema([
    ("ts_ms", pa.int64()),
    ("event_ts_ms", pa.int64()),
    ("symbol", pa.string()),
    ("price", pa.float64()),
    ("qty", pa.float64()),
    ("agg_trade_id", pa.int64()),
    ("latency_ms", pa.int64()),
    ("recv_rate_tps", pa.float64()),
    # extras
    ("trade_ts_ms", pa.int64()),
    ("is_buyer_maker", pa.bool_()),
    ("source", pa.string()),
])

CVD = pa.schema([
    ("ts_ms", pa.int64()),
    ("symbol", pa.string()),
    ("cvd", pa.float64()),
    ("delta", pa.float64()),
    ("z_raw", pa.float64()),
    ("z_cvd", pa.float64()),
    ("scale", pa.float64()),
    ("sigma_floor", pa.float64()),
    ("floor_used", pa.bool_()),
    ("regime", pa.string()),
    # extras
    ("agg_trade_id", pa.int64()),
])

OFI = pa.schema([
    ("ts_ms", pa.int64()),
    ("symbol", pa.string()),
    ("ofi_value", pa.float64()),
    ("ofi_z", pa.float64()),
    ("scale", pa.float64()),
    ("regime", pa.string()),
    # extras
    ("gap", pa.bool_()),
    ("final_update_id", pa.int64()),
    ("best_bid", pa.float64()),
    ("best_ask", pa.float64()),
])

FUSION = pa.schema([
    ("ts_ms", pa.int64()),
    ("symbol", pa.string()),
    ("score", pa.float64()),
    ("score_z", pa.float64()),
    ("regime", pa.string()),
    # extras
    ("ofi_z", pa.float64()),
    ("z_cvd", pa.float64()),
])

EVENTS = pa.schema([
    ("ts_ms", pa.int64()),
    ("symbol", pa.string()),
    ("event_type", pa.string()),
    ("meta_json", pa.string()),
])

DERIVED_SCHEMAS: dict[str, pa.Schema] = {
    "prices": PRICES, "ofi": OFI, "cvd": CVD, "fusion": FUSION, "events": EVENTS,
}

REGIME_LABELS = ("A_H", "A_L", "Q_H", "Q_L")

# the signal study (docs/research.md): a research table downstream of the five above, not one of
# them (the DQ gate checks DERIVED_KINDS only)
STUDY = pa.schema([
    ("date", pa.string()),
    ("symbol", pa.string()),
    ("measure", pa.string()),
    ("signal", pa.string()),
    ("direction", pa.string()),
    ("regime", pa.string()),
    ("horizon_sec", pa.int32()),
    ("value", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("t_stat", pa.float64()),
    ("n", pa.int64()),
])

RESEARCH_SCHEMAS: dict[str, pa.Schema] = {"study": STUDY}
