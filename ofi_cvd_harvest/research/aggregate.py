"""The multi-day view: daily studies of a symbol combined into one table (docs/research.md).

Per (measure, signal, direction, regime, horizon): counts add up; IC, mean return and hit rate
are n-weighted means of the daily values with a standard error from the daily intervals
(half-width / 1.96 — conservative where a day used a larger fixed-b value), days taken as
independent; medians become the n-weighted mean of the daily medians. ``date`` becomes
``first/last``.
"""

from __future__ import annotations

import polars as pl

from ..storage.fs import Storage
from .io import read_studies
from .stats import Z95

KEYS = ["symbol", "measure", "signal", "direction", "regime", "horizon_sec"]
SUMMED = ("event_count", "null_forward_returns", "null_past_midnight")
NULL_VALUE = {"hit_rate": 0.5}


def aggregate(df: pl.DataFrame) -> pl.DataFrame:
    """Combine daily study rows (any number of dates) into one row per key, in a fixed order."""
    if len(df) == 0:
        return df
    span = f"{df['date'].min()}/{df['date'].max()}"
    w = pl.col("n").cast(pl.Float64)
    se = (pl.col("ci_high") - pl.col("ci_low")) / (2 * Z95)
    ok = pl.col("value").is_not_null() & (pl.col("n") > 0)
    null = pl.col("measure").replace_strict(NULL_VALUE, default=0.0, return_dtype=pl.Float64)
    out = (
        df.sort(["date", *KEYS], nulls_last=True)
        .with_columns(pl.when(ok).then(w).otherwise(0.0).alias("_w"), se.alias("_se"), null.alias("_null"))
        .group_by(KEYS, maintain_order=True)
        .agg(
            pl.col("value").sum().alias("_sum"),
            ((pl.col("_w") * pl.col("value").fill_null(0.0)).sum() / pl.col("_w").sum()).alias("_mean"),
            ((pl.col("_w") ** 2 * pl.col("_se") ** 2).sum().sqrt() / pl.col("_w").sum()).alias("_se"),
            pl.col("_se").is_null().any().alias("_se_missing"),
            pl.col("n").sum().alias("n"),
            pl.col("_null").first().alias("_null"),
        )
        .with_columns(
            pl.when(pl.col("measure").is_in(SUMMED)).then(pl.col("_sum")).otherwise(pl.col("_mean")).alias("value"),
        )
        .with_columns(
            pl.when(pl.col("measure").is_in(SUMMED) | pl.col("_se_missing") | ~(pl.col("_se") > 0))
            .then(None).otherwise(pl.col("_se")).alias("_se"),
        )
        .with_columns(
            (pl.col("value") - Z95 * pl.col("_se")).alias("ci_low"),
            (pl.col("value") + Z95 * pl.col("_se")).alias("ci_high"),
            ((pl.col("value") - pl.col("_null")) / pl.col("_se")).alias("t_stat"),
        )
    )
    return out.select(pl.lit(span).alias("date"), *KEYS[:1], *KEYS[1:], "value", "ci_low",
                      "ci_high", "t_stat", "n").select(df.columns).cast(dict(df.schema))


def multiday(storage: Storage, symbol: str, last_days: int | None = None) -> pl.DataFrame:
    """The aggregate of the stored daily studies of ``symbol`` (the last ``last_days`` dates
    present, or all)."""
    df = read_studies(storage, symbol)
    if last_days is not None and len(df):
        keep = sorted(set(df["date"].to_list()))[-last_days:]
        df = df.filter(pl.col("date").is_in(keep))
    return aggregate(df)
