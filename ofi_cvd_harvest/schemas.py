"""Arrow schemas of every table (docs/reading.md "Columns"): the single source of column names, order and types.

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
# What every column means (docs/signals.md has the formulas): the one source for the Dagster
# column schema (orchestration/assets.py), docs/reading.md and anyone reading the lake.
_TS_RECV = "receipt time on this host, epoch ms UTC"
COLUMN_DOCS: dict[str, dict[str, str]] = {
    "agg_trade": {
        "recv_ts_ms": _TS_RECV + " (REST-healed rows: when the REST answer arrived)",
        "event_ts_ms": "exchange event time E of the message, epoch ms UTC",
        "trade_ts_ms": "exchange trade time T, epoch ms UTC",
        "symbol": "instrument, e.g. BTCUSDT",
        "agg_trade_id": "exchange aggregate trade id a (unique per symbol, consecutive)",
        "price": "trade price (quote currency)",
        "qty": "trade quantity (base currency)",
        "first_trade_id": "first raw trade id f in the aggregate",
        "last_trade_id": "last raw trade id l in the aggregate",
        "is_buyer_maker": "m: true when the buyer was the maker (a taker sell)",
        "source": "ws (live stream) or rest (healed through /fapi/v1/aggTrades)",
        "conn_id": "WebSocket connection that delivered the row (0 for REST)",
    },
    "book": {
        "recv_ts_ms": _TS_RECV,
        "event_ts_ms": "exchange event time E, epoch ms UTC",
        "transact_ts_ms": "exchange transaction time T, epoch ms UTC",
        "symbol": "instrument, e.g. BTCUSDT",
        "first_update_id": "first update id U of the depth message",
        "final_update_id": "final update id u of the depth message",
        "prev_final_update_id": "pu: final update id of the previous message (chain check)",
        "bid_px": "bid prices, best first (book.levels levels)",
        "bid_qty": "bid quantities at bid_px (base currency)",
        "ask_px": "ask prices, best first (book.levels levels)",
        "ask_qty": "ask quantities at ask_px (base currency)",
        "gap": "true when the pu chain broke before this row (or the first row after a (re)connect)",
        "conn_id": "WebSocket connection that delivered the row",
    },
    "ops": {
        "recv_ts_ms": "when the capture recorded the event, epoch ms UTC",
        "symbol": "symbol the event concerns; empty for events of the whole capture",
        "event_type": "what happened: connect, disconnect, gap_detected, gap_healed, clock_check, …",
        "meta_json": "the event's details as a JSON object",
    },
    "prices": {
        "ts_ms": "receipt time, epoch ms UTC (T for REST-healed rows)",
        "event_ts_ms": "exchange event time E, epoch ms UTC (T for REST-healed rows)",
        "symbol": "instrument, e.g. BTCUSDT",
        "price": "trade price (quote currency)",
        "qty": "trade quantity (base currency)",
        "agg_trade_id": "exchange aggregate trade id; one row per id, in id order",
        "latency_ms": "ts_ms − event_ts_ms (ms); null for REST-healed rows",
        "recv_rate_tps": "trades received in the trailing second (ts − 1000 ms, ts]",
        "trade_ts_ms": "exchange trade time T, epoch ms UTC",
        "is_buyer_maker": "true when the buyer was the maker (a taker sell)",
        "source": "ws (live stream) or rest (healed)",
    },
    "cvd": {
        "ts_ms": "receipt time of the trade, epoch ms UTC",
        "symbol": "instrument, e.g. BTCUSDT",
        "cvd": "cumulative volume delta since 00:00 UTC (base currency)",
        "delta": "+qty for a taker buy, −qty for a taker sell",
        "z_raw": "robust z of delta (Z_MODE=delta) or of the cvd level (level), before clipping; null in warm-up",
        "z_cvd": "z_raw clipped at ±WINSOR_LIMIT; null in warm-up",
        "scale": "robust scale the z divides by: max(EWMA mix, sigma_floor, 1e-9)",
        "sigma_floor": "MAD floor MAD_MULTIPLIER·1.4826·MAD of the previous floor_window rows",
        "floor_used": "true when sigma_floor set the scale",
        "regime": "activity×volatility regime A_H/A_L/Q_H/Q_L (warmup before the first window)",
        "agg_trade_id": "exchange aggregate trade id of the row's trade",
    },
    "ofi": {
        "ts_ms": "exchange event time E of the book row, epoch ms UTC",
        "symbol": "instrument, e.g. BTCUSDT",
        "ofi_value": "multi-level order-flow imbalance (weighted CKS over ofi_levels levels); 0 on a gap row",
        "ofi_z": "robust z of ofi_value, clipped at ±WINSOR_LIMIT; null in warm-up",
        "scale": "robust scale the z divides by",
        "regime": "activity×volatility regime A_H/A_L/Q_H/Q_L (warmup before the first window)",
        "gap": "true on the first row and after a book gap (the OFI restarts there)",
        "final_update_id": "final update id u of the book row",
        "best_bid": "best bid price",
        "best_ask": "best ask price",
    },
    "fusion": {
        "ts_ms": "time of the OFI row the score belongs to, epoch ms UTC",
        "symbol": "instrument, e.g. BTCUSDT",
        "score": "w_ofi·ofi_z + w_cvd·z_cvd (missing parts count as 0)",
        "score_z": "robust z of score, clipped at ±WINSOR_LIMIT; null in warm-up",
        "regime": "activity×volatility regime A_H/A_L/Q_H/Q_L",
        "ofi_z": "ofi_z used in the score",
        "z_cvd": "latest z_cvd at or before ts_ms (as-of join, ≤ fusion_tolerance_ms) used in the score",
    },
    "events": {
        "ts_ms": "event time (engine clock: running max of event time), epoch ms UTC",
        "symbol": "instrument, e.g. BTCUSDT",
        "event_type": "fusion_long/short, ofi_extreme, cvd_extreme, divergence_bullish/bearish, or an ops event",
        "meta_json": "JSON: category (signal|ops), triggering values, threshold, regime, since_prev_sec",
    },
    "study": {   # docs/research.md
        "date": "UTC date of the studied partition (YYYY-MM-DD)",
        "symbol": "instrument, e.g. BTCUSDT",
        "measure": "what the row measures: ic, event_mean_bps, event_median_bps, hit_rate, count, …",
        "signal": "ofi_z, z_cvd, score_z, or a signal event type",
        "direction": "up, down or both (event rows; both is signed by the event's direction)",
        "regime": "all, or a regime label (A_H, A_L, Q_H, Q_L)",
        "horizon_sec": "forward-return horizon in seconds (1, 10, 60, 300)",
        "value": "the measured figure (IC, bps, share or count, per measure)",
        "ci_low": "lower end of the 95 % interval (Newey–West); null when not estimable",
        "ci_high": "upper end of the 95 % interval (Newey–West); null when not estimable",
        "t_stat": "t statistic of value against 0 (Newey–West, small-sample corrected)",
        "n": "observations behind the figure (seconds of the grid, or events)",
    },
}

# columns the readers add (ofi_cvd_harvest/read.py, ``ofi-cvd-harvest sql``)
READER_COLUMN_DOCS: dict[str, str] = {
    "date": "UTC date of the partition (hive column date=YYYY-MM-DD)",
    "quarantined": "true for rows of a quarantined partition (only with include_quarantine)",
}


def column_doc(table: str, column: str) -> str:
    """Description of ``column`` of ``table`` (a raw stream or a derived kind)."""
    docs = COLUMN_DOCS[table]
    return docs[column] if column in docs else READER_COLUMN_DOCS[column]


def columns_markdown() -> str:
    """The column tables of docs/reading.md (a test keeps the doc equal to this)."""
    tables = {**DERIVED_SCHEMAS, **{f"raw_{k}": v for k, v in RAW_SCHEMAS.items()}}
    out = []
    for view, schema in tables.items():
        docs = COLUMN_DOCS[view.removeprefix("raw_")]
        out += [f"### `{view}`", "", "| column | type | meaning |", "|---|---|---|"]
        out += [f"| `{f.name}` | {f.type} | {docs[f.name].replace('|', chr(92) + '|')} |" for f in schema]
        out.append("")
    out += ["Every view and scan adds:", "", "| column | type | meaning |", "|---|---|---|",
            f"| `date` | date | {READER_COLUMN_DOCS['date']} |",
            f"| `quarantined` | bool | {READER_COLUMN_DOCS['quarantined']} |"]
    return "\n".join(out) + "\n"
