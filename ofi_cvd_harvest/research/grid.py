"""The 1-second grid of the IC and the signal values on it (docs/research.md "IC")."""

from __future__ import annotations

import numpy as np
import polars as pl

UNKNOWN_REGIME = "unknown"


def grid_times(first_ms: int, last_ms: int, day_start: int, day_end: int) -> np.ndarray:
    """Whole seconds of the date from the first to the last trade (inclusive)."""
    lo = max(first_ms, day_start)
    hi = min(last_ms, day_end - 1)
    if hi < lo:
        return np.zeros(0, np.int64)
    k0 = -(-(lo - day_start) // 1000)
    k1 = (hi - day_start) // 1000
    return day_start + 1000 * np.arange(k0, k1 + 1, dtype=np.int64)


def _asof_index(df: pl.DataFrame, t_ms: np.ndarray) -> np.ndarray:
    """Row index of the last row with clock (running max of ``ts_ms``) ≤ t, −1 if none."""
    if len(df) == 0:
        return np.full(len(t_ms), -1)
    clock = np.maximum.accumulate(df["ts_ms"].cast(pl.Int64).to_numpy())
    return np.searchsorted(clock, t_ms, side="right") - 1


def asof_values(df: pl.DataFrame, col: str, t_ms: np.ndarray) -> np.ndarray:
    """``col`` of the last row at or before each t (NaN if none, or null there)."""
    idx = _asof_index(df, t_ms)
    out = np.full(len(t_ms), np.nan)
    if len(df):
        vals = df[col].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ok = idx >= 0
        out[ok] = vals[idx[ok]]
    return out


def asof_labels(df: pl.DataFrame, col: str, t_ms: np.ndarray) -> np.ndarray:
    """String ``col`` as of each t (``unknown`` if none or null)."""
    idx = _asof_index(df, t_ms)
    out = np.full(len(t_ms), UNKNOWN_REGIME, dtype=object)
    if len(df):
        vals = np.asarray(df[col].fill_null(UNKNOWN_REGIME).to_list(), dtype=object)
        ok = idx >= 0
        out[ok] = vals[idx[ok]]
    return out
