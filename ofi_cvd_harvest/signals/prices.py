"""Trades: dedup of raw ``agg_trade`` rows and the ``prices`` table (docs/signals.md).

One row per ``agg_trade_id``; when both exist the ``ws`` row wins over a ``rest`` (healed) row,
then the earliest receipt. ``ts_ms`` is the local receipt time (trade time ``T`` for rest rows,
which have no receipt time of their own); ``event_ts_ms`` is ``E`` (``T`` for rest rows).
"""

from __future__ import annotations

import numpy as np
import polars as pl

TRADE_COLUMNS = ["recv_ts_ms", "event_ts_ms", "trade_ts_ms", "agg_trade_id", "price", "qty",
                 "is_buyer_maker", "source"]
RATE_WINDOW_MS = 1000
SCAN_SLACK_MS = 60_000   # coarse scan filter: E of a ws copy and T of its rest copy differ little


def scan_filter(since_ms: int, until_ms: int) -> pl.Expr:
    """Coarse row filter applied while reading (exact filtering happens after dedup)."""
    evt = pl.coalesce("event_ts_ms", "trade_ts_ms")
    return (evt >= since_ms - SCAN_SLACK_MS) & (evt < until_ms + SCAN_SLACK_MS)


def trades_from_raw(raw: pl.DataFrame, since_ms: int, until_ms: int) -> pl.DataFrame:
    """Unique trades with event time in [since_ms, until_ms), ordered by ``agg_trade_id``.

    Adds ``ts_ms``, ``event_ts_ms`` (resolved), ``latency_ms`` and ``t`` — the engine clock,
    the running max of ``event_ts_ms`` so the z engine sees non-decreasing time."""
    is_rest = pl.col("source") == "rest"
    out = (
        raw.sort(["agg_trade_id", is_rest, "recv_ts_ms"], nulls_last=True, maintain_order=True)
        .unique(subset="agg_trade_id", keep="first", maintain_order=True)
        .with_columns(
            pl.when(is_rest).then(pl.col("trade_ts_ms"))
            .otherwise(pl.coalesce("event_ts_ms", "trade_ts_ms")).alias("event_ts_ms"),
            pl.when(is_rest).then(pl.col("trade_ts_ms"))
            .otherwise(pl.coalesce("recv_ts_ms", "trade_ts_ms")).alias("ts_ms"),
        )
        .filter((pl.col("event_ts_ms") >= since_ms) & (pl.col("event_ts_ms") < until_ms))
        .with_columns(
            pl.when(is_rest).then(None)
            .otherwise(pl.col("ts_ms") - pl.col("event_ts_ms")).alias("latency_ms"),
            pl.col("event_ts_ms").cum_max().alias("t"),
        )
    )
    return out


def recv_rate_tps(ts_ms: pl.Series) -> pl.Series:
    """Trades received in the trailing 1000 ms (ts − 1000, ts], this one included, per second.

    Counted on the sorted receipt times with two binary searches, so rows need not be
    time-ordered (``prices`` is in ``agg_trade_id`` order, receipt times jitter)."""
    ts = ts_ms.to_numpy()
    srt = np.sort(ts)
    cnt = np.searchsorted(srt, ts, side="right") - np.searchsorted(srt, ts - RATE_WINDOW_MS, side="right")
    return pl.Series("recv_rate_tps", cnt.astype(np.float64) * (1000.0 / RATE_WINDOW_MS))


def prices_table(trades: pl.DataFrame, symbol: str, day_start: int, day_end: int) -> pl.DataFrame:
    """The ``prices`` rows of one date (the receipt rate also counts warm-up rows before 00:00)."""
    with_rate = trades.with_columns(recv_rate_tps(trades["ts_ms"]))
    return with_rate.filter(pl.col("event_ts_ms") >= day_start, pl.col("event_ts_ms") < day_end).select(
        "ts_ms", "event_ts_ms", pl.lit(symbol).alias("symbol"), "price", "qty", "agg_trade_id",
        "latency_ms", "recv_rate_tps", "trade_ts_ms", "is_buyer_maker", "source",
    )
