"""Fusion of OFI and CVD (docs/signals.md): score = W_OFI·ofi_z + W_CVD·z_cvd, then its engine z.

For each ``ofi`` row the latest ``z_cvd`` at or before its time is taken (as-of join on the
engine clocks, 5 s tolerance; older or missing → 0; a null z, i.e. warm-up, → 0).
"""

from __future__ import annotations

import polars as pl

from ..settings import SignalSettings
from .zengine import ZParams, robust_z


def fusion_frame(ofi: pl.DataFrame, cvd: pl.DataFrame, sig: SignalSettings) -> pl.DataFrame:
    """``ofi`` rows (``ts_ms``, ``t``, ``ofi_z`` …) + ``z_cvd``, ``score``, ``score_z``."""
    right = cvd.select(pl.col("t"), pl.col("z_cvd").alias("z_cvd_asof")).sort("t", maintain_order=True)
    left = ofi.select("ts_ms", "t", "ofi_z")
    joined = left.join_asof(right, on="t", strategy="backward", tolerance=sig.fusion_tolerance_ms,
                            check_sortedness=False)
    df = joined.with_columns(
        pl.col("ofi_z").fill_null(0.0).alias("ofi_z"),
        pl.col("z_cvd_asof").fill_null(0.0).alias("z_cvd"),
    ).with_columns((sig.w_ofi * pl.col("ofi_z") + sig.w_cvd * pl.col("z_cvd")).alias("score"))
    z = robust_z(df["t"], df["score"], ZParams.from_settings(sig))
    return df.drop("z_cvd_asof").hstack(z.select(pl.col("z").alias("score_z")))
