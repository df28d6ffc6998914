"""Synthetic, schema-exact partitions for the DQ tests, clean by construction, plus damage helpers.

A clean partition passes every gate: the capture connects at 01:00:40 and disconnects
``minutes`` + 40 s later (covered window = the ``minutes`` whole minutes from 01:01), a trade every 0.5 s,
ws latencies well under the thresholds, a few raw duplicates (< 0.5 %), heavy-tailed ``z_raw``
so winsorising at ``WINSOR_LIMIT`` has an effect, enough signal events, one book gap at the start.
Each damage helper rewrites one table the way a specific defect would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ofi_cvd_harvest.schemas import DERIVED_SCHEMAS, RAW_SCHEMAS
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.fs import Storage

DATE = "2024-07-19"
SYMBOL = "BTCUSDT"
LABELS = ("A_H", "A_L", "Q_H", "Q_L")


@dataclass
class Built:
    root: Path
    date: str
    symbol: str
    connect_ms: int
    disconnect_ms: int
    first_id: int


def _table(df: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    return df.select(schema.names).to_arrow().cast(schema)


def write(root: Path, rel: str, df: pl.DataFrame, schema: pa.Schema) -> None:
    Storage(root).write_parquet(rel, _table(df, schema))


def build_partition(root: Path, date: str = DATE, symbol: str = SYMBOL, minutes: int = 40,
                    seed: int = 0, first_id: int = 1000, start_hour: int = 1,
                    signal_events: int = 30) -> Built:
    rng = np.random.default_rng(seed)
    day0, _ = layout.day_bounds_ms(date)
    connect = day0 + start_hour * 3_600_000 + 40_000
    disconnect = connect + minutes * 60_000 + 40_000
    trade_ts = np.arange(connect + 500, disconnect - 500, 500, dtype=np.int64)
    n = len(trade_ts)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    event_ts = trade_ts + 3
    latency = np.clip(np.round(rng.lognormal(np.log(20), 0.4, n)), 1, 100).astype(np.int64)
    source = np.where(np.arange(n) % 97 == 50, "rest", "ws")
    rest = source == "rest"
    event_ts = np.where(rest, trade_ts, event_ts)
    recv = np.where(rest, trade_ts + 5000, event_ts + latency)
    price = 60000 + np.cumsum(rng.normal(0, 1, n))
    qty = np.round(0.013 * (1 + rng.pareto(1.2, n)), 3) + 0.001     # heavy tail, like real sizes
    maker = rng.random(n) < 0.5
    trades = pl.DataFrame({
        "recv_ts_ms": recv, "event_ts_ms": event_ts, "trade_ts_ms": trade_ts, "symbol": symbol,
        "agg_trade_id": ids, "price": price, "qty": qty, "first_trade_id": ids * 3,
        "last_trade_id": ids * 3 + 2, "is_buyer_maker": maker, "source": source, "conn_id": 1})
    # raw: two rotated files, 0.1 % duplicates delivered twice by the exchange
    dup = trades.filter(pl.col("source") == "ws").gather_every(1000)
    raw = pl.concat([trades, dup]).sort("recv_ts_ms")
    half = raw.height // 2
    for seq, part in enumerate((raw[:half], raw[half:])):
        write(root, layout.raw_file(date, symbol, "agg_trade", int(part["recv_ts_ms"][0]), seq),
              part, RAW_SCHEMAS["agg_trade"])

    prices = trades.sort("agg_trade_id").with_columns(
        ts_ms=pl.when(pl.col("source") == "rest").then(pl.col("trade_ts_ms")).otherwise(pl.col("recv_ts_ms")),
        latency_ms=pl.when(pl.col("source") == "rest").then(None).otherwise(pl.Series(latency)),
        recv_rate_tps=pl.lit(2.0))
    write(root, layout.derived_file(date, symbol, "prices"), prices, DERIVED_SCHEMAS["prices"])

    z_raw = rng.standard_t(2.0, n) * 1.5
    z_raw[:20] = np.nan
    limit = 8.0
    delta = np.where(maker, -qty, qty)
    regime = ["warmup"] * 20 + [LABELS[(i // 200) % 4] for i in range(n - 20)]
    cvd = pl.DataFrame({
        "ts_ms": event_ts, "symbol": symbol, "cvd": np.cumsum(delta), "delta": delta,
        "z_raw": z_raw, "z_cvd": np.clip(z_raw, -limit, limit), "scale": np.abs(rng.normal(0.05, 0.01, n)),
        "sigma_floor": np.full(n, 0.03), "floor_used": rng.random(n) < 0.3, "regime": regime,
        "agg_trade_id": ids}).with_columns(pl.col("z_raw", "z_cvd").fill_nan(None))
    write(root, layout.derived_file(date, symbol, "cvd"), cvd, DERIVED_SCHEMAS["cvd"])

    # book: a row per second, best first, never crossed; the first row after connect is a gap
    book_ts = np.arange(connect + 1000, disconnect - 1000, 1000, dtype=np.int64)
    m = len(book_ts)
    u = 5_000_000 + np.arange(m, dtype=np.int64) * 7
    mid = 60000 + np.cumsum(rng.normal(0, 1, m))
    bid_px = [[float(mid[i] - 0.05 - 0.1 * k) for k in range(10)] for i in range(m)]
    ask_px = [[float(mid[i] + 0.05 + 0.1 * k) for k in range(10)] for i in range(m)]
    qtys = [[float(x) for x in rng.lognormal(0, 1, 10)] for _ in range(m)]
    book = pl.DataFrame({
        "recv_ts_ms": book_ts + 20, "event_ts_ms": book_ts, "transact_ts_ms": book_ts - 1,
        "symbol": symbol, "first_update_id": u - 3, "final_update_id": u,
        "prev_final_update_id": np.concatenate([[u[0] - 9], u[:-1]]),
        "bid_px": bid_px, "bid_qty": qtys, "ask_px": ask_px, "ask_qty": qtys,
        "gap": np.arange(m) == 0, "conn_id": 2})
    write(root, layout.raw_file(date, symbol, "book", int(book_ts[0]) + 20, 0), book, RAW_SCHEMAS["book"])

    ofi_z = np.clip(rng.standard_t(3.0, m), -8, 8)
    ofi = pl.DataFrame({
        "ts_ms": book_ts, "symbol": symbol, "ofi_value": rng.normal(0, 1, m), "ofi_z": ofi_z,
        "scale": np.full(m, 1.0), "regime": [LABELS[(i // 100) % 4] for i in range(m)],
        "gap": np.arange(m) == 0, "final_update_id": u,
        "best_bid": [b[0] for b in bid_px], "best_ask": [a[0] for a in ask_px]})
    write(root, layout.derived_file(date, symbol, "ofi"), ofi, DERIVED_SCHEMAS["ofi"])
    fusion = pl.DataFrame({
        "ts_ms": book_ts, "symbol": symbol, "score": 0.6 * ofi_z, "score_z": np.clip(ofi_z, -8, 8),
        "regime": ofi["regime"], "ofi_z": ofi_z, "z_cvd": np.zeros(m)})
    write(root, layout.derived_file(date, symbol, "fusion"), fusion, DERIVED_SCHEMAS["fusion"])

    ops = pl.DataFrame({
        "recv_ts_ms": [connect, connect + 120_000, disconnect],
        "symbol": [symbol, "", symbol],
        "event_type": ["connect", "clock_drift", "disconnect"],
        "meta_json": [json.dumps({"endpoint": "market", "conn_id": 1}), json.dumps({"drift_ms": 250.0}),
                      json.dumps({"endpoint": "market", "conn_id": 1})]})
    write(root, layout.raw_file(date, symbol, "ops", connect, 0), ops, RAW_SCHEMAS["ops"])

    kinds = ["fusion_long", "fusion_short", "ofi_extreme", "cvd_extreme", "divergence_bullish"]
    sig_ts = np.linspace(connect + 60_000, disconnect - 60_000, signal_events).astype(np.int64)
    events = pl.concat([
        pl.DataFrame({"ts_ms": sig_ts, "symbol": symbol,
                      "event_type": [kinds[i % len(kinds)] for i in range(signal_events)],
                      "meta_json": [json.dumps({"category": "signal", "score_z": 2.1})] * signal_events}),
        pl.DataFrame({"ts_ms": ops["recv_ts_ms"], "symbol": symbol, "event_type": ops["event_type"],
                      "meta_json": [json.dumps({"category": "ops"})] * 3}),
    ]).sort("ts_ms")
    write(root, layout.derived_file(date, symbol, "events"), events, DERIVED_SCHEMAS["events"])
    return Built(root, date, symbol, connect, disconnect, first_id)


# ---- damage -------------------------------------------------------------------------------

def read(b: Built, kind: str) -> pl.DataFrame:
    return pl.from_arrow(pq.read_table(b.root / layout.derived_file(b.date, b.symbol, kind)))


def rewrite(b: Built, kind: str, df: pl.DataFrame) -> None:
    write(b.root, layout.derived_file(b.date, b.symbol, kind), df, DERIVED_SCHEMAS[kind])


def raw_files(b: Built, stream: str) -> list[Path]:
    return sorted((b.root / layout.raw_dir(b.date, b.symbol, stream)).glob("*.parquet"))


def minute_ms(b: Built, k: int) -> int:
    """Start of the k-th judged minute of the covered window."""
    return (b.connect_ms // 60_000 + 1 + k) * 60_000


def duplicate_raw(b: Built, share: float = 0.02) -> None:
    f = raw_files(b, "agg_trade")[0]
    df = pl.from_arrow(pq.read_table(f))
    extra = df.sample(fraction=share * 2, seed=1)   # this file holds half the rows
    Storage(b.root).write_parquet(str(f.relative_to(b.root)), _table(pl.concat([df, extra]), RAW_SCHEMAS["agg_trade"]))


def duplicate_prices(b: Built, rows: int = 3) -> None:
    df = read(b, "prices")
    rewrite(b, "prices", pl.concat([df, df[100:100 + rows]]).sort("agg_trade_id"))


def delete_minute(b: Built, k: int = 9) -> None:
    lo = minute_ms(b, k)
    rewrite(b, "prices", read(b, "prices").filter(~pl.col("event_ts_ms").is_between(lo, lo + 59_999)))


def inflate_latency(b: Built, add_ms: int, every: int = 1) -> None:
    df = read(b, "prices").with_row_index("i")
    hit = (pl.col("i") % every == 0) & (pl.col("source") == "ws")
    rewrite(b, "prices", df.with_columns(
        latency_ms=pl.when(hit).then(pl.col("latency_ms") + add_ms).otherwise(pl.col("latency_ms"))))


def strip_events(b: Built) -> None:
    rewrite(b, "events", read(b, "events").filter(~pl.col("meta_json").str.contains('"signal"')))


def flood_events(b: Built, per_hour: float) -> None:
    """Signal events at ``per_hour`` per covered hour (one every trade-ish: noise)."""
    ev = read(b, "events")
    hours = (b.disconnect_ms - b.connect_ms) / 3_600_000
    n = int(per_hour * hours)
    ts = np.linspace(b.connect_ms + 1000, b.disconnect_ms - 1000, n).astype(np.int64)
    extra = pl.DataFrame({"ts_ms": ts, "symbol": b.symbol, "event_type": "cvd_extreme",
                          "meta_json": json.dumps({"category": "signal", "z_cvd": 3.5})})
    rewrite(b, "events", pl.concat([ev, extra.select(ev.columns)]).sort("ts_ms"))


def unwinsorise(b: Built) -> None:
    rewrite(b, "cvd", read(b, "cvd").with_columns(z_cvd=pl.col("z_raw")))


def drop_ids(b: Built, lo: int, hi: int) -> None:
    rewrite(b, "prices", read(b, "prices").filter(~pl.col("agg_trade_id").is_between(lo, hi)))


def swap_columns(b: Built, kind: str, a: str, c: str) -> None:
    df = read(b, kind)
    cols = df.columns
    i, j = cols.index(a), cols.index(c)
    cols[i], cols[j] = cols[j], cols[i]
    Storage(b.root).write_parquet(layout.derived_file(b.date, b.symbol, kind), df.select(cols).to_arrow())


def cross_book(b: Built, row: int = 100) -> None:
    f = raw_files(b, "book")[0]
    df = pl.from_arrow(pq.read_table(f))
    bids = df["bid_px"].to_list()
    asks = df["ask_px"].to_list()
    bids[row] = [asks[row][0] + 0.5] + bids[row][1:]
    df = df.with_columns(bid_px=pl.Series(bids))
    Storage(b.root).write_parquet(str(f.relative_to(b.root)), _table(df, RAW_SCHEMAS["book"]))


def swap_rows(b: Built, kind: str, i: int, j: int) -> None:
    df = read(b, kind)
    order = list(range(df.height))
    order[i], order[j] = order[j], order[i]
    rewrite(b, kind, df[order])
