"""Robust z-score engine (docs/signals.md) on irregular time (shared by CVD, OFI and fusion).

Every statistic used for row i comes from rows strictly before i, so appending future rows
never changes a past z. EW means use the weight 2^(−Δt/h) of docs/signals.md literally, as the ratio
of two polars ``ewm_sum_by`` sums (Σ w·|x| / Σ w). ``ewm_mean_by`` itself is not used because
its recursion gives an observation weight α = 1 − 2^(−Δt_prev/h), i.e. *zero* to a row with the
same timestamp as the previous one — bursts of trades in one millisecond would be ignored.
The sums are computed up to row i−1 and the mean is a ratio, so the decay from t_{i−1} to
t_i cancels: shifting by one row gives exactly "rows before i".
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from .rollmad import rolling_mad_prev
from .zparams import MAD_TO_SIGMA, MIN_SCALE, ZParams  # noqa: F401 (re-exported)

ENGINE_COLUMNS = ("fast", "slow", "mix", "sigma_floor", "scale", "floor_used", "z_raw", "z")


def ew_mean(t_ms: pl.Series, v: pl.Series, half_life_sec: float) -> pl.Series:
    """EW mean Σ 2^(−(t_i−t_j)/h)·v_j / Σ 2^(−(t_i−t_j)/h) over rows j ≤ i (nulls skipped)."""
    hl = dt.timedelta(seconds=half_life_sec)
    frame = pl.DataFrame({"t": t_ms.cast(pl.Int64).cast(pl.Datetime("ms")), "v": v.cast(pl.Float64)})
    return frame.select(
        pl.col("v").fill_null(0.0).ewm_sum_by("t", half_life=hl)
        / pl.col("v").is_not_null().cast(pl.Float64).ewm_sum_by("t", half_life=hl)
    ).to_series()


def ew_mean_prev(t_ms: pl.Series, v: pl.Series, half_life_sec: float) -> pl.Series:
    """EW mean over rows strictly before each row (null at row 0)."""
    return ew_mean(t_ms, v, half_life_sec).shift(1)


def warmup_mask(t_ms: pl.Series, p: ZParams) -> pl.Series:
    """True where z must be null: the first ``warmup_rows`` rows, and the row ending a silence
    longer than ``silence_sec`` plus the following rows (``silence_warmup_rows`` in total)."""
    n = len(t_ms)
    idx = pl.int_range(0, n, eager=True)
    silence = (t_ms.cast(pl.Int64).diff() > int(round(p.silence_sec * 1000))).fill_null(False)
    if p.silence_warmup_rows > 0:
        after = silence.cast(pl.Int8).rolling_max(p.silence_warmup_rows, min_samples=1) > 0
    else:
        after = pl.repeat(False, n, eager=True)
    return ((idx < p.warmup_rows) | after).alias("warmup")


def sigma_floor_prev(x: np.ndarray, p: ZParams) -> np.ndarray:
    """k · 1.4826 · MAD(x over the previous ``floor_window`` rows); NaN at row 0."""
    return p.mad_multiplier * MAD_TO_SIGMA * rolling_mad_prev(x, p.floor_window)


def finish_z(x: pl.Series, mix: pl.Series | None, floor: pl.Series, null_z: pl.Series,
             p: ZParams, *, centre: pl.Series | None = None) -> pl.DataFrame:
    """scale = max(mix, floor, 1e-9), floor_used, z_raw = (x − centre)/scale, z = clip(±L).

    ``mix`` None is SCALE_MODE=mad: the floor alone is the scale (``floor_used`` true)."""
    cols = {"x": x, "sigma_floor": floor, "null_z": null_z}
    if mix is not None:
        cols["mix"] = mix
    if centre is not None:
        cols["centre"] = centre
    df = pl.DataFrame(cols)
    mix_e = pl.col("mix") if mix is not None else pl.lit(None, pl.Float64)
    centre_e = pl.col("centre") if centre is not None else pl.lit(0.0)
    scale = pl.max_horizontal(mix_e.fill_null(0.0), pl.col("sigma_floor").fill_null(0.0),
                              pl.lit(MIN_SCALE))
    floor_used = (pl.col("sigma_floor") >= mix_e).fill_null(False) if mix is not None else pl.lit(True)
    z_raw = pl.when(pl.col("null_z")).then(None).otherwise((pl.col("x") - centre_e) / scale)
    return df.select(
        mix_e.alias("mix"), pl.col("sigma_floor"), scale.alias("scale"),
        floor_used.alias("floor_used"), z_raw.alias("z_raw"),
    ).with_columns(pl.col("z_raw").clip(-p.winsor_limit, p.winsor_limit).alias("z"))


def robust_z(t_ms: pl.Series, x: pl.Series, p: ZParams) -> pl.DataFrame:
    """Engine columns (``ENGINE_COLUMNS``) for series ``x`` at non-decreasing times ``t_ms``."""
    x = x.cast(pl.Float64).fill_null(0.0)
    absx = x.abs()
    fast = ew_mean_prev(t_ms, absx, p.fast_half_life_sec).alias("fast")
    slow = ew_mean_prev(t_ms, absx, p.half_life_sec).alias("slow")
    if p.scale_mode == "hybrid":
        mix = p.fast_weight * fast + (1.0 - p.fast_weight) * slow
    elif p.scale_mode == "ewma":
        mix = slow
    elif p.scale_mode == "mad":
        mix = None
    else:
        raise ValueError(f"SCALE_MODE {p.scale_mode!r}")
    floor = pl.Series("sigma_floor", sigma_floor_prev(x.to_numpy(), p), nan_to_null=True)
    out = finish_z(x, mix, floor, warmup_mask(t_ms, p), p)
    return pl.DataFrame([fast, slow]).hstack(out)
