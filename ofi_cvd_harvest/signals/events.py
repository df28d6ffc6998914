"""Signal events (SPEC §5.6) and the partition's ops events, as ``events`` rows.

Hysteresis without a row loop: per direction, a row is a *trigger* candidate when z is past
the threshold and a *re-arm* when |z| < re-arm level; the state before row i is the kind of
the last marked row before i (forward fill), armed at the start. A candidate fires when armed;
candidates that do not fire keep the state disarmed, exactly like the sequential machine.
Null z (warm-up) leaves the state unchanged. Divergence: price sets a new low (high) against
the previous ``divergence_window_sec`` — rows strictly earlier in time — while the cumulative
delta does not; it fires on the row where that condition starts (one event per episode), and
only once a full window of history exists.
"""

from __future__ import annotations

import datetime as dt

import orjson
import polars as pl

from ..settings import SignalSettings

EVENT_COLUMNS = ["ts_ms", "event_type", "meta_json"]


def hysteresis_fire(z: pl.Series, threshold: float, rearm: float, direction: int) -> pl.Series:
    """Boolean Series: rows where a ``direction`` (+1 above +thr, −1 below −thr) event fires."""
    cand = (z > threshold) if direction > 0 else (z < -threshold)
    reset = z.abs() < rearm
    mark = pl.select(
        pl.when(cand.fill_null(False)).then(pl.lit(-1, pl.Int8))
        .when(reset.fill_null(False)).then(pl.lit(1, pl.Int8))
        .otherwise(None)
    ).to_series()
    armed = (mark.shift(1).forward_fill().fill_null(1)) == 1
    return (cand.fill_null(False) & armed).alias("fire")


def _encode(rows: list[dict]) -> list[str]:
    """JSON object strings; events are rare, so a loop over *events* (not rows) is fine."""
    return [orjson.dumps(r).decode() for r in rows]


def _events(df: pl.DataFrame, fire: pl.Series, event_type: str, meta_cols: list[str],
            extra: dict) -> pl.DataFrame:
    """Rows where ``fire``: meta_json = {"category": "signal", <meta_cols>, <extra>}."""
    meta = pl.struct(pl.lit("signal").alias("category"), *[pl.col(c) for c in meta_cols],
                     *[pl.lit(v).alias(k) for k, v in extra.items()]).struct.json_encode()
    return df.filter(fire).select(
        pl.col("ts_ms").cast(pl.Int64), pl.lit(event_type).alias("event_type"),
        meta.alias("meta_json"))


def threshold_events(df: pl.DataFrame, zcol: str, threshold: float, rearm: float,
                     up_type: str, down_type: str, meta_cols: list[str]) -> list[pl.DataFrame]:
    out = []
    for direction, etype in ((1, up_type), (-1, down_type)):
        fire = hysteresis_fire(df[zcol], threshold, rearm, direction)
        out.append(_events(df, fire, etype, meta_cols,
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
    out = []
    for col, etype, ref in (("bull", "divergence_bullish", "price_low"),
                            ("bear", "divergence_bearish", "price_high")):
        fire = df[col] & ~df[col].shift(1).fill_null(False)
        out.append(_events(df, fire, etype, ["price", ref, "cum_delta",
                                             "cvd_low" if col == "bull" else "cvd_high", "regime"],
                           {"window_sec": sig.divergence_window_sec}))
    return out


def signal_events(cvd: pl.DataFrame, ofi: pl.DataFrame, fusion: pl.DataFrame,
                  sig: SignalSettings) -> pl.DataFrame:
    """All signal events over the computation window (callers keep the date's rows)."""
    parts = threshold_events(fusion, "score_z", sig.fusion_threshold, sig.fusion_rearm,
                             "fusion_long", "fusion_short", ["score_z", "score", "ofi_z", "z_cvd", "regime"])
    parts += threshold_events(ofi, "ofi_z", sig.extreme_threshold, sig.extreme_rearm,
                              "ofi_extreme", "ofi_extreme", ["ofi_z", "ofi_value", "regime"])
    parts += threshold_events(cvd, "z_cvd", sig.extreme_threshold, sig.extreme_rearm,
                              "cvd_extreme", "cvd_extreme", ["z_cvd", "delta", "cvd", "regime"])
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
