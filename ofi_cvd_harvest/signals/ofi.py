"""Multi-level order-flow imbalance (docs/signals.md; Cont–Kukanov–Stoikov 2014 at every level).

For consecutive book rows n−1, n and level m:
  e_m = 1{Pb≥Pb'}·qb − 1{Pb≤Pb'}·qb' − 1{Pa≤Pa'}·qa + 1{Pa≥Pa'}·qa'   (primes: row n−1)
A level missing from a row (thin book) is an empty level: bid price −inf, ask price +inf,
quantity 0 — so a level appearing adds its quantity and a level vanishing removes it.
``ofi_value = Σ w_m·e_m``; a ``gap`` row (broken ``pu`` chain / reconnect) and the first row
of the series have no valid previous state: ``ofi_value = 0`` and ``gap = true``.
"""

from __future__ import annotations

import polars as pl

from ..settings import SignalSettings
from .zengine import ZParams, robust_z

BOOK_COLUMNS = ["recv_ts_ms", "event_ts_ms", "final_update_id", "bid_px", "bid_qty", "ask_px",
                "ask_qty", "gap"]


def level_columns(levels: int) -> list[pl.Expr]:
    """Flat ``bp{m} bq{m} ap{m} aq{m}`` for m < levels; a missing level is an empty level."""
    inf = float("inf")
    lv = []
    for m in range(levels):
        lv += [pl.col("bid_px").list.get(m, null_on_oob=True).fill_null(-inf).alias(f"bp{m}"),
               pl.col("bid_qty").list.get(m, null_on_oob=True).fill_null(0.0).alias(f"bq{m}"),
               pl.col("ask_px").list.get(m, null_on_oob=True).fill_null(inf).alias(f"ap{m}"),
               pl.col("ask_qty").list.get(m, null_on_oob=True).fill_null(0.0).alias(f"aq{m}")]
    return lv


def flat_book_select(levels: int) -> list[pl.Expr]:
    """What a book scan keeps (see :func:`rawread.read_raw`'s ``select``)."""
    return [pl.col("event_ts_ms").alias("ts_ms"), pl.col("final_update_id"), pl.col("recv_ts_ms"),
            pl.col("gap").fill_null(False), *level_columns(levels)]


def book_from_raw(raw: pl.DataFrame, levels: int, since_ms: int, until_ms: int) -> pl.DataFrame:
    """Raw ``book`` rows (schema columns) -> flat, deduplicated, time-ordered book rows."""
    return book_from_flat(raw.select(flat_book_select(levels)), since_ms, until_ms)


def book_from_flat(flat: pl.DataFrame, since_ms: int, until_ms: int) -> pl.DataFrame:
    """One row per ``final_update_id`` (overlapping connections deliver the same message; a
    non-gap copy wins, then the earliest receipt), ordered by (E, u), plus engine clock ``t``."""
    return (
        flat.lazy()
        .filter((pl.col("ts_ms") >= since_ms) & (pl.col("ts_ms") < until_ms))
        # the same message has the same E and u: one sort orders rows and ranks the copies
        .sort(["ts_ms", "final_update_id", "gap", "recv_ts_ms"], nulls_last=True, maintain_order=True)
        .filter(pl.col("final_update_id").is_first_distinct())
        .drop("recv_ts_ms")
        .with_columns(pl.col("ts_ms").cum_max().alias("t"))
        .collect()
    )


def ofi_values(book: pl.DataFrame, weights: tuple[float, ...]) -> pl.DataFrame:
    """Adds ``ofi_value``, ``best_bid``/``best_ask`` (null when the side is empty) and the
    effective ``gap`` (raw gap or first row)."""
    terms = []
    for m, w in enumerate(weights):
        bp, bq, ap, aq = (pl.col(f"{k}{m}") for k in ("bp", "bq", "ap", "aq"))
        e = (pl.when(bp >= bp.shift(1)).then(bq).otherwise(0.0)
             - pl.when(bp <= bp.shift(1)).then(bq.shift(1)).otherwise(0.0)
             - pl.when(ap <= ap.shift(1)).then(aq).otherwise(0.0)
             + pl.when(ap >= ap.shift(1)).then(aq.shift(1)).otherwise(0.0))
        terms.append(w * e)
    # a chained + in level order: pl.sum_horizontal adds in an order that depends on the thread
    # pool, and derived values must be bit-identical with any POLARS_MAX_THREADS (docs/signals.md)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    gap = pl.col("gap") | (pl.int_range(pl.len()) == 0)
    return book.with_columns(gap.alias("gap")).with_columns(
        pl.when(pl.col("gap")).then(0.0).otherwise(total).alias("ofi_value"),
        pl.when(pl.col("bp0").is_finite()).then(pl.col("bp0")).alias("best_bid"),
        pl.when(pl.col("ap0").is_finite()).then(pl.col("ap0")).alias("best_ask"),
    )


def ofi_frame(book: pl.DataFrame, sig: SignalSettings) -> pl.DataFrame:
    """Book rows + ofi_value and its engine z (``ofi_z``, ``scale``)."""
    df = ofi_values(book, sig.ofi_level_weights[: sig.ofi_levels])
    z = robust_z(df["t"], df["ofi_value"], ZParams.from_settings(sig))
    df = df.select("ts_ms", "t", "final_update_id", "gap", "ofi_value", "best_bid", "best_ask")
    return df.hstack(z.select(pl.col("z").alias("ofi_z"), "scale"))
