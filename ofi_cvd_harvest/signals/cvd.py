"""Cumulative volume delta and its z (docs/signals.md).

``delta`` = +qty for a taker buy, −qty for a taker sell; ``cvd`` = running sum of delta from
00:00 UTC of each row's own date (session CVD), so the warm-up rows before midnight carry the
previous session. ``Z_MODE=delta`` runs delta through the engine over the whole window (so the
statistics are warm at midnight). ``Z_MODE=level`` compares the session level with the mean and
sample standard deviation (ddof 1) of the previous ``level_window`` values of the same session,
floored by k·1.4826·MAD of the previous ``floor_window`` levels (with SCALE_MODE=mad the floor
alone is the scale); a new session restarts it (the level restarts at 0, so the previous day's
levels are not comparable).
"""

from __future__ import annotations

import polars as pl

from ..settings import SignalSettings
from .zengine import ZParams, finish_z, robust_z, sigma_floor_prev, warmup_mask

CVD_Z_COLUMNS = ("z_raw", "z_cvd", "scale", "sigma_floor", "floor_used")


def with_delta(trades: pl.DataFrame, day_start: int) -> pl.DataFrame:
    """Adds ``delta``, ``session`` (0 = before ``day_start``, 1 = the date) and session ``cvd``."""
    return trades.with_columns(
        pl.when(pl.col("is_buyer_maker")).then(-pl.col("qty")).otherwise(pl.col("qty")).alias("delta"),
        (pl.col("event_ts_ms") >= day_start).cast(pl.Int8).alias("session"),
    ).with_columns(pl.col("delta").cum_sum().over("session").alias("cvd"))


def level_z(t_ms: pl.Series, cvd: pl.Series, sig: SignalSettings, p: ZParams) -> pl.DataFrame:
    """Z_MODE=level on one session: (cvd − mean_prev) / max(std_prev, floor, 1e-9)."""
    w = sig.level_window
    prev = cvd.shift(1)
    mean = prev.rolling_mean(w, min_samples=1)
    std = prev.rolling_std(w, min_samples=2)
    floor = pl.Series("sigma_floor", sigma_floor_prev(cvd.to_numpy(), p), nan_to_null=True)
    spread = None if p.scale_mode == "mad" else std   # SCALE_MODE=mad: the floor alone
    return finish_z(cvd, spread, floor, warmup_mask(t_ms, p), p, centre=mean)


def cvd_frame(trades: pl.DataFrame, day_start: int, sig: SignalSettings) -> pl.DataFrame:
    """Trades + delta, session cvd and the z columns (``CVD_Z_COLUMNS``), in the input order."""
    p = ZParams.from_settings(sig)
    df = with_delta(trades, day_start)
    if sig.z_mode == "delta":
        z = robust_z(df["t"], df["delta"], p)
    else:
        df = df.with_row_index("_row")
        parts = []
        for sess in (0, 1):  # two sessions at most: a loop over partitions, not rows
            part = df.filter(pl.col("session") == sess)
            if len(part):
                parts.append(level_z(part["t"], part["cvd"], sig, p).with_columns(part["_row"]))
        # back to the input (agg_trade_id) order
        z = pl.concat(parts).sort("_row").drop("_row") if parts else level_z(df["t"], df["cvd"], sig, p)
        df = df.drop("_row")
    z = z.select(pl.col("z_raw"), pl.col("z").alias("z_cvd"), "scale", "sigma_floor", "floor_used")
    return df.hstack(z)
