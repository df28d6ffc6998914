"""Market regime (docs/signals.md): activity (A|Q) × volatility (H|L), or ``warmup``.

Evaluated on a regular 1-second grid: the trailing-300 s trade rate and mean |log return| at
each grid point g use trades with time ≤ g, and their 1 h EW means are time-weighted (a
per-trade EW mean would over-weight busy periods, biasing the "own average" upward). A row
at time ts takes the label of the last grid point ≤ ts, so no label looks ahead. ``warmup``
until 300 s of trade history exist (counted from the first trade of the computation window).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .zengine import ew_mean

STEP_MS = 1000
WARMUP = "warmup"


def regime_timeline(t_ms: pl.Series, price: pl.Series, start_ms: int, end_ms: int,
                    window_sec: float, half_life_sec: float) -> pl.DataFrame:
    """Grid ``ts_ms`` (whole seconds from the first point with a full window of trade history,
    i.e. first trade + window, to ``end_ms``) and ``regime``; empty before any history.
    ``t_ms`` must be non-decreasing (the engine clock of the trades); ``start_ms`` is the anchor
    the caller already filtered the trades by (kept for the signature's clarity)."""
    t = t_ms.to_numpy().astype(np.int64)
    if len(t) == 0:
        return pl.DataFrame(schema={"ts_ms": pl.Int64, "regime": pl.String})
    win = int(round(window_sec * 1000))
    g0 = -(-(int(t[0]) + win) // STEP_MS) * STEP_MS
    grid = np.arange(g0, max(end_ms, g0 + 1), STEP_MS, dtype=np.int64)
    hi = np.searchsorted(t, grid, side="right")
    lo = np.searchsorted(t, grid - win, side="right")
    rate = (hi - lo) / window_sec
    # |log return| between consecutive trades, stamped at the later trade
    p = price.to_numpy().astype(np.float64)
    absret = np.abs(np.diff(np.log(p)))
    csum = np.concatenate([[0.0], np.cumsum(absret)])  # csum[k] = sum of returns 1..k
    # returns stamped at trades lo..hi-1 are in the window; return k ends at trade k (k ≥ 1)
    r_lo = np.maximum(lo, 1)
    r_hi = np.maximum(hi, 1)
    n_ret = r_hi - r_lo
    vol = np.where(n_ret > 0, (csum[r_hi - 1] - csum[r_lo - 1]) / np.maximum(n_ret, 1), 0.0)
    df = pl.DataFrame({"ts_ms": grid, "rate": rate, "vol": vol})
    ts = df["ts_ms"]
    df = df.with_columns(
        ew_mean(ts, df["rate"], half_life_sec).alias("rate_ew"),
        ew_mean(ts, df["vol"], half_life_sec).alias("vol_ew"),
    )
    label = (pl.when(pl.col("rate") >= pl.col("rate_ew")).then(pl.lit("A")).otherwise(pl.lit("Q"))
             + pl.when(pl.col("vol") >= pl.col("vol_ew")).then(pl.lit("_H")).otherwise(pl.lit("_L")))
    return df.select("ts_ms", label.alias("regime"))


def regime_at(ts_ms: pl.Series, timeline: pl.DataFrame) -> pl.Series:
    """Label as of each ``ts_ms`` (any order): the last grid point ≤ ts; ``warmup`` before it."""
    labels = timeline["regime"]
    if len(labels) == 0:
        return pl.Series("regime", [WARMUP] * len(ts_ms), dtype=pl.String)
    g0 = int(timeline["ts_ms"][0])
    idx = ((ts_ms.cast(pl.Int64) - g0) // STEP_MS).clip(-1, len(labels) - 1)
    out = labels.gather(idx.clip(0, None).cast(pl.UInt32))
    return pl.select(pl.when(idx < 0).then(pl.lit(WARMUP)).otherwise(out)).to_series().alias("regime")
