"""Signal events (docs/signals.md "Events") and the partition's ops events, as ``events`` rows.

Every signal type is a state machine per direction with time in it, because a per-row
hysteresis that re-arms on the next ordinary trade fired on 5–7 % of all trades (noise):

* **fire** when z is past the threshold while armed (armed at the start of the window);
* **re-arm** at the first row where |z| has stayed below the re-arm level for ``rearm_sec`` of
  event time (measured from the first row of that below-run to this row) **and** at least
  ``cooldown_sec`` have passed since this type and direction last fired. Null z (warm-up)
  neither breaks nor extends a below-run.

The per-row work is vectorised (candidate rows, re-arm-ready rows); only the hops from one
event to the next are sequential — a binary search each, so the loop runs once per *event*.
Divergence: price sets a new low (high) against the previous ``divergence_window_sec`` (rows
strictly earlier in time) while the cumulative delta does not; an episode fires on its first
row, and an episode that starts within ``divergence_cooldown_sec`` of the last event of that
direction is skipped. Times are the engine clock ``t`` (running max of event time), which also
stamps the event, so event times never go back and the cool-down holds in the output table.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import polars as pl

from ..settings import SignalSettings

EVENT_COLUMNS = ["ts_ms", "event_type", "meta_json"]


def _hops(starts: np.ndarray, t: np.ndarray, cooldown_ms: int,
          ready: np.ndarray | None = None) -> list[int]:
    """Sequential part of the machine, one iteration per fire: fire at the first candidate
    (``starts``, ascending row indices) at or after the armed position; then, if ``ready`` is
    given, re-arm at the first ready row after the fire whose time is ≥ fire + cooldown, else
    the next candidate must itself be ≥ fire + cooldown."""
    fires: list[int] = []
    pos = 0
    while True:
        i = int(np.searchsorted(starts, pos))
        if i == len(starts):
            return fires
        k = int(starts[i])
        fires.append(k)
        after = max(int(np.searchsorted(t, t[k] + cooldown_ms, side="left")), k + 1)
        if ready is None:
            pos = after
            continue
        j = int(np.searchsorted(ready, after))
        if j == len(ready):
            return fires
        pos = int(ready[j]) + 1


def threshold_fires(t_ms: pl.Series, z: pl.Series, threshold: float, rearm: float,
                    rearm_sec: float, cooldown_sec: float, direction: int) -> np.ndarray:
    """Row indices where a ``direction`` (+1: z > +thr, −1: z < −thr) event fires.

    ``t_ms`` must be non-decreasing (the engine clock); ``rearm < threshold``."""
    t = t_ms.cast(pl.Int64).to_numpy()
    zz = z.cast(pl.Float64).to_numpy()          # null -> NaN
    n = len(zz)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    valid = ~np.isnan(zz)
    cand = valid & ((zz > threshold) if direction > 0 else (zz < -threshold))
    below = valid & (np.abs(np.where(valid, zz, np.inf)) < rearm)
    idx = np.arange(n)
    # a below-run starts at the first below row after the last valid row that is not below
    last_break = np.maximum.accumulate(np.where(valid & ~below, idx, -1))
    next_below = np.minimum.accumulate(np.where(below, idx, n - 1)[::-1])[::-1]
    run_start = next_below[np.minimum(last_break + 1, n - 1)]
    ready = below & (t - t[run_start] >= int(round(rearm_sec * 1000)))
    fires = _hops(np.flatnonzero(cand), t, int(round(cooldown_sec * 1000)), np.flatnonzero(ready))
    return np.asarray(fires, dtype=np.int64)


def _encode(rows: list[dict]) -> list[str]:
    """JSON object strings; ops rows are rare, so a loop over them (not over rows) is fine."""
    return [orjson.dumps(r).decode() for r in rows]


def _events(df: pl.DataFrame, rows: np.ndarray, event_type: str, meta_cols: list[str],
            extra: dict) -> pl.DataFrame:
    """The fired ``rows`` as events stamped with the engine clock ``t``; meta_json =
    {"category": "signal", <meta_cols>, <extra>, "since_prev_sec": s since the previous event
    of this type and direction in the window (null for the first)}."""
    fired = df[pl.Series(rows, dtype=pl.Int64)] if len(rows) else df.clear()
    fired = fired.with_columns((pl.col("t").cast(pl.Int64).diff() / 1000.0).alias("since_prev_sec"))
    meta = pl.struct(pl.lit("signal").alias("category"), *[pl.col(c) for c in meta_cols],
                     *[pl.lit(v).alias(k) for k, v in extra.items()],
                     pl.col("since_prev_sec")).struct.json_encode()
    return fired.select(pl.col("t").cast(pl.Int64).alias("ts_ms"),
                        pl.lit(event_type).alias("event_type"), meta.alias("meta_json"))


def threshold_events(df: pl.DataFrame, zcol: str, threshold: float, rearm: float,
                     up_type: str, down_type: str, meta_cols: list[str],
                     sig: SignalSettings) -> list[pl.DataFrame]:
    out = []
    for direction, etype in ((1, up_type), (-1, down_type)):
        rows = threshold_fires(df["t"], df[zcol], threshold, rearm, sig.rearm_sec,
                               sig.cooldown_sec, direction)
        out.append(_events(df, rows, etype, meta_cols,
                           {"direction": "up" if direction > 0 else "down", "threshold": threshold}))
    return out


def divergence_events(cvd: pl.DataFrame, sig: SignalSettings) -> list[pl.DataFrame]:
    """``divergence_bullish`` (price new low, CVD not) / ``divergence_bearish`` (mirror)."""
    if len(cvd) == 0:
        return []
    win = dt.timedelta(seconds=sig.divergence_window_sec)
    t0 = int(cvd["t"][0])
    df = cvd.select("ts_ms", "t", "price", "delta", "regime").with_columns(
        pl.col("delta").cum_sum().alias("cum_delta"),
        pl.col("t").cast(pl.Datetime("ms")).alias("tt"),
    ).with_columns(
        pl.col("price").rolling_min_by("tt", win, closed="left").alias("price_low"),
        pl.col("price").rolling_max_by("tt", win, closed="left").alias("price_high"),
        pl.col("cum_delta").rolling_min_by("tt", win, closed="left").alias("cvd_low"),
        pl.col("cum_delta").rolling_max_by("tt", win, closed="left").alias("cvd_high"),
    )
    ready = pl.col("t") >= t0 + int(sig.divergence_window_sec * 1000)
    bull = ready & (pl.col("price") < pl.col("price_low")) & (pl.col("cum_delta") >= pl.col("cvd_low"))
    bear = ready & (pl.col("price") > pl.col("price_high")) & (pl.col("cum_delta") <= pl.col("cvd_high"))
    df = df.with_columns(bull.fill_null(False).alias("bull"), bear.fill_null(False).alias("bear"))
    t = df["t"].cast(pl.Int64).to_numpy()
    cooldown_ms = int(round(sig.divergence_cooldown_sec * 1000))
    out = []
    for col, etype, ref in (("bull", "divergence_bullish", "price_low"),
                            ("bear", "divergence_bearish", "price_high")):
        start = (df[col] & ~df[col].shift(1).fill_null(False)).to_numpy()
        rows = np.asarray(_hops(np.flatnonzero(start), t, cooldown_ms), dtype=np.int64)
        out.append(_events(df, rows, etype, ["price", ref, "cum_delta",
                                             "cvd_low" if col == "bull" else "cvd_high", "regime"],
                           {"window_sec": sig.divergence_window_sec}))
    return out


def signal_events(cvd: pl.DataFrame, ofi: pl.DataFrame, fusion: pl.DataFrame,
                  sig: SignalSettings) -> pl.DataFrame:
    """All signal events over the computation window (callers keep the date's rows; computing
    from the window's anchor carries the machines' state across midnight)."""
    parts = threshold_events(fusion, "score_z", sig.fusion_threshold, sig.fusion_rearm,
                             "fusion_long", "fusion_short",
                             ["score_z", "score", "ofi_z", "z_cvd", "regime"], sig)
    parts += threshold_events(ofi, "ofi_z", sig.extreme_threshold, sig.extreme_rearm,
                              "ofi_extreme", "ofi_extreme", ["ofi_z", "ofi_value", "regime"], sig)
    parts += threshold_events(cvd, "z_cvd", sig.extreme_threshold, sig.extreme_rearm,
                              "cvd_extreme", "cvd_extreme", ["z_cvd", "delta", "cvd", "regime"], sig)
    parts += divergence_events(cvd, sig)
    return pl.concat(parts) if parts else empty_events()


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema={"ts_ms": pl.Int64, "event_type": pl.String, "meta_json": pl.String})


def ops_events(ops: pl.DataFrame) -> pl.DataFrame:
    """Raw ops rows as events: ``ts_ms`` = receipt time, meta_json gains ``"category":"ops"``
    (a non-object meta is kept under ``"raw"``)."""
    metas = []
    for m in ops["meta_json"].to_list():  # ops rows are rare (connects, gaps, resyncs …)
        try:
            obj = orjson.loads(m) if m else {}
        except orjson.JSONDecodeError:
            obj = {"raw": m}
        if not isinstance(obj, dict):
            obj = {"raw": obj}
        obj.pop("category", None)
        metas.append({"category": "ops", **obj})
    return pl.DataFrame({"ts_ms": ops["recv_ts_ms"], "event_type": ops["event_type"],
                         "meta_json": _encode(metas)},
                        schema={"ts_ms": pl.Int64, "event_type": pl.String, "meta_json": pl.String})


def events_table(signals: pl.DataFrame, ops: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """Signal + ops events in a deterministic order (time, then type, then meta)."""
    both = pl.concat([signals.select(EVENT_COLUMNS), ops_events(ops).select(EVENT_COLUMNS)])
    return both.sort(["ts_ms", "event_type", "meta_json"]).select(
        "ts_ms", pl.lit(symbol).alias("symbol"), "event_type", "meta_json")
