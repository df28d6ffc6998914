"""The study of one date × symbol partition as long-form rows (docs/research.md).

Input: the five derived tables of the date (and the next date's prices, for horizons past
midnight). Output: one row per figure — ``measure``, ``signal``, ``direction``, ``regime``,
``horizon_sec``, ``value``, ``ci_low``, ``ci_high``, ``t_stat``, ``n`` — see
:mod:`.table` for the schema and :func:`compute_study` for the measures. Row order is fixed by
the loops below, and every number comes from numpy on time-ordered arrays, so the table is a
function of the input tables only.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from ..schemas import REGIME_LABELS
from ..storage.layout import day_bounds_ms
from . import stats
from .grid import UNKNOWN_REGIME, asof_labels, asof_values, grid_times
from .returns import PricePath

HORIZONS_SEC = (1, 10, 60, 300)
IC_SIGNALS = (("ofi_z", "ofi"), ("z_cvd", "cvd"), ("score_z", "fusion"))   # (column, table)
EVENT_TYPES = ("fusion_long", "fusion_short", "ofi_extreme", "cvd_extreme",
               "divergence_bullish", "divergence_bearish")
DIRECTIONS = ("up", "down", "both")    # "both": returns signed by the event's direction
NA = "na"
ALL = "all"


def regimes_of(labels: np.ndarray) -> list[str]:
    """``all``, the known labels, then any other label found (sorted): a fixed order."""
    found = set(labels.tolist()) if len(labels) else set()
    extra = sorted(found - set(REGIME_LABELS) - {UNKNOWN_REGIME})
    known = [r for r in REGIME_LABELS if r in found]
    return [ALL, *known, *extra, *([UNKNOWN_REGIME] if UNKNOWN_REGIME in found else [])]


def _row(measure: str, signal: str, direction: str, regime: str, horizon: int | None,
         value: float, lo: float = math.nan, hi: float = math.nan, t: float = math.nan,
         n: int = 0) -> dict:
    def f(x: float) -> float | None:
        return None if x is None or not math.isfinite(x) else float(x)
    return {"measure": measure, "signal": signal, "direction": direction, "regime": regime,
            "horizon_sec": horizon, "value": f(value), "ci_low": f(lo), "ci_high": f(hi),
            "t_stat": f(t), "n": int(n)}


def signal_events(events: pl.DataFrame) -> pl.DataFrame:
    """Signal rows of ``events`` in time order with ``direction`` (+1 up/bullish, −1
    down/bearish) and ``regime`` from meta_json."""
    if len(events) == 0:
        return pl.DataFrame(schema={"ts_ms": pl.Int64, "event_type": pl.String,
                                    "dir": pl.Int8, "regime": pl.String})
    meta = pl.col("meta_json")
    df = events.with_columns(
        meta.str.json_path_match("$.category").alias("category"),
        meta.str.json_path_match("$.direction").alias("direction"),
        meta.str.json_path_match("$.regime").fill_null(UNKNOWN_REGIME).alias("regime"),
    ).filter(pl.col("category") == "signal")
    up = (pl.col("direction") == "up") | (pl.col("event_type") == "divergence_bullish")
    down = (pl.col("direction") == "down") | (pl.col("event_type") == "divergence_bearish")
    return df.select(
        pl.col("ts_ms").cast(pl.Int64), "event_type",
        pl.when(up).then(1).when(down).then(-1).otherwise(0).cast(pl.Int8).alias("dir"),
        "regime",
    ).filter(pl.col("dir") != 0).sort(["ts_ms", "event_type", "dir"], maintain_order=True)


def ic_rows(tables: dict[str, pl.DataFrame], path: PricePath, day_start: int, day_end: int
            ) -> list[dict]:
    """Spearman IC of each z signal (as of each whole second) with the forward return."""
    if len(path.clock) == 0:
        return []
    t = grid_times(int(path.clock[0]), _last_today(path), day_start, day_end)
    regime_src = tables["fusion"] if len(tables["fusion"]) else tables["cvd"]
    labels = asof_labels(regime_src, "regime", t)
    regimes = regimes_of(labels)
    xs = {col: asof_values(tables[tab], col, t) for col, tab in IC_SIGNALS}
    rows = []
    for h in HORIZONS_SEC:
        y, past_midnight = path.forward(t, h)
        rows.append(_row("null_forward_returns", "grid", NA, ALL, h, float(np.isnan(y).sum()),
                         n=len(y)))
        rows.append(_row("null_past_midnight", "grid", NA, ALL, h, float(past_midnight.sum()),
                         n=len(y)))
        for col, _ in IC_SIGNALS:
            for reg in regimes:
                mask = np.ones(len(t), bool) if reg == ALL else labels == reg
                ic, lo, hi, ts, n = stats.spearman_grid(xs[col], y, mask, h)
                rows.append(_row("ic", col, NA, reg, h, ic, lo, hi, ts, n))
    return rows


def _last_today(path: PricePath) -> int:
    today = path.clock[path.clock < path.day_end]
    return int(today[-1]) if len(today) else -1


def event_rows(events: pl.DataFrame, path: PricePath) -> list[dict]:
    """Count and forward-return figures per event type × direction × regime × horizon."""
    ev = signal_events(events)
    t_all = ev["ts_ms"].to_numpy()
    rets = {h: path.forward(t_all, h) for h in HORIZONS_SEC}
    rows = []
    types = [e for e in EVENT_TYPES if e in set(ev["event_type"].to_list())]
    types += sorted(set(ev["event_type"].to_list()) - set(EVENT_TYPES))
    for etype in types:
        is_type = (ev["event_type"] == etype).to_numpy()
        dirs = ev["dir"].to_numpy().astype(np.float64)
        labels = np.asarray(ev["regime"].to_list(), dtype=object)
        for h in HORIZONS_SEC:
            y, pm = rets[h]
            rows.append(_row("null_forward_returns", etype, "both", ALL, h,
                             float(np.isnan(y[is_type]).sum()), n=int(is_type.sum())))
            rows.append(_row("null_past_midnight", etype, "both", ALL, h,
                             float(pm[is_type].sum()), n=int(is_type.sum())))
        for direction in DIRECTIONS:
            sel_dir = is_type & (dirs == {"up": 1, "down": -1}.get(direction, dirs))
            for reg in regimes_of(labels[sel_dir]):
                sel = sel_dir & ((labels == reg) if reg != ALL else True)
                if not sel.any():
                    continue
                rows.append(_row("event_count", etype, direction, reg, None,
                                 float(sel.sum()), n=int(sel.sum())))
                for h in HORIZONS_SEC:
                    rows += _event_figures(etype, direction, reg, h, t_all[sel],
                                           rets[h][0][sel], dirs[sel])
    return rows


def _event_figures(etype: str, direction: str, reg: str, h: int, t_ms: np.ndarray,
                   y: np.ndarray, d: np.ndarray) -> list[dict]:
    ok = np.isfinite(y)
    t_sec = t_ms[ok] / 1000.0
    r = y[ok] * (d[ok] if direction == "both" else 1.0)
    n = len(r)
    m, lo, hi, ts = stats.mean_stats(t_sec, r, h)
    med = float(np.median(r)) if n else math.nan
    # hit: the return has the event's sign (a zero return counts one half)
    s = np.sign(r * (1.0 if direction == "both" else d[ok]))
    hit = np.where(s > 0, 1.0, np.where(s == 0, 0.5, 0.0))
    hm, hlo, hhi, hts = stats.mean_stats(t_sec, hit, h, null=0.5)
    return [_row("event_mean_bps", etype, direction, reg, h, m, lo, hi, ts, n),
            _row("event_median_bps", etype, direction, reg, h, med, n=n),
            _row("hit_rate", etype, direction, reg, h, hm, hlo, hhi, hts, n)]


def compute_study(tables: dict[str, pl.DataFrame], date: str,
                  next_prices: pl.DataFrame | None = None) -> list[dict]:
    """All rows of the partition's study (IC rows, then event rows)."""
    day_start, day_end = day_bounds_ms(date)
    path = PricePath.of(tables["prices"], next_prices, day_end)
    return ic_rows(tables, path, day_start, day_end) + event_rows(tables["events"], path)
