"""The multi-day view: daily studies of a symbol combined into one table (docs/research.md).

Per (measure, signal, direction, regime, horizon): counts add up; IC, mean return and hit rate
are n-weighted means of the daily values with a standard error from the daily intervals
(half-width / 1.96 — conservative where a day used a larger fixed-b value), days taken as
independent; medians become the n-weighted mean of the daily medians. ``date`` becomes
``first/last``. Sums are ``math.fsum`` (exactly rounded), so the result does not depend on the
order or threading of any reduction.
"""

from __future__ import annotations

import math

import polars as pl

from ..storage.fs import Storage
from .io import read_studies
from .stats import Z95

KEYS = ["symbol", "measure", "signal", "direction", "regime", "horizon_sec"]
SUMMED = ("event_count", "null_forward_returns", "null_past_midnight")
NULL_VALUE = {"hit_rate": 0.5}


def _combine(measure: str, rows: list[dict]) -> dict:
    n_total = sum(r["n"] for r in rows)
    if measure in SUMMED:
        vals = [r["value"] for r in rows if r["value"] is not None]
        return {"value": math.fsum(vals) if vals else None, "ci_low": None, "ci_high": None,
                "t_stat": None, "n": n_total}
    used = [r for r in rows if r["value"] is not None and r["n"] > 0]
    w_sum = math.fsum(r["n"] for r in used)
    if not used or w_sum <= 0:
        return {"value": None, "ci_low": None, "ci_high": None, "t_stat": None, "n": n_total}
    value = math.fsum(r["n"] * r["value"] for r in used) / w_sum
    out = {"value": value, "ci_low": None, "ci_high": None, "t_stat": None, "n": n_total}
    if all(r["ci_low"] is not None and r["ci_high"] is not None for r in used):
        var = math.fsum((r["n"] * (r["ci_high"] - r["ci_low"]) / (2 * Z95)) ** 2 for r in used)
        se = math.sqrt(var) / w_sum
        if se > 0:
            out.update(ci_low=value - Z95 * se, ci_high=value + Z95 * se,
                       t_stat=(value - NULL_VALUE.get(measure, 0.0)) / se)
    return out


def aggregate(df: pl.DataFrame) -> pl.DataFrame:
    """Combine daily study rows (any number of dates) into one row per key, in a fixed order
    (keys in their first appearance after sorting by date and key)."""
    if len(df) == 0:
        return df
    span = f"{df['date'].min()}/{df['date'].max()}"
    groups: dict[tuple, list[dict]] = {}
    for r in df.sort(["date", *KEYS], nulls_last=True).iter_rows(named=True):
        groups.setdefault(tuple(r[k] for k in KEYS), []).append(r)
    out = [{"date": span, **dict(zip(KEYS, key)), **_combine(key[1], rows)}
           for key, rows in groups.items()]
    return pl.DataFrame(out, schema=df.schema)


def multiday(storage: Storage, symbol: str, last_days: int | None = None) -> pl.DataFrame:
    """The aggregate of the stored daily studies of ``symbol`` (the last ``last_days`` dates
    present, or all)."""
    df = read_studies(storage, symbol)
    if last_days is not None and len(df):
        keep = sorted(set(df["date"].to_list()))[-last_days:]
        df = df.filter(pl.col("date").is_in(keep))
    return aggregate(df)
