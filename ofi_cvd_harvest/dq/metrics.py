"""The DoD metrics (docs/dq.md) and the registry of every metric (DoD + integrity).

Each metric is one DuckDB query over the scope's Parquet files (see :mod:`.source`); thresholds
come from ``settings.acceptance`` (``config/system.yaml`` ``acceptance_criteria``), never from
here. ``partition_metrics`` evaluates one date × symbol partition (the Dagster checks);
``scope_metrics`` a symbol over several dates (the run report).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable

import duckdb

from ..settings import Settings
from . import integrity, readable
from .base import Evaluation, MetricResult, gate, iso_ms
from .source import Scope
from .window import MINUTE_MS

SIGNAL_EVENT_TYPES = ("fusion_long", "fusion_short", "ofi_extreme", "cvd_extreme",
                      "divergence_bullish", "divergence_bearish")
# an event is a signal when meta_json says so; events without a readable category fall back to type
CATEGORY_SQL = ("coalesce(try(json_extract_string(meta_json, '$.category')), CASE WHEN event_type IN ("
                + ", ".join(f"'{t}'" for t in SIGNAL_EVENT_TYPES) + ") THEN 'signal' ELSE 'ops' END)")
MAX_OFFENDERS = 20


def empty_bucket_rate(ev: Evaluation) -> MetricResult:
    thr, op = ev.settings.acceptance.max_empty_bucket_rate, "<"
    name = "empty_bucket_rate"
    if not ev.scope.has("prices"):
        return ev.missing(name, "prices", thr, op)
    w = ev.window
    if w is None or w.minutes == 0:
        return MetricResult(name, None, thr, False,
                            {"error": "covered window shorter than one minute", **ev.window_details()}, op)
    empty = [m for (m,) in ev.scope.sql(
        "WITH b AS (SELECT DISTINCT event_ts_ms // 60000 AS m FROM prices "
        "           WHERE event_ts_ms >= ? AND event_ts_ms < ?) "
        "SELECT r.range FROM range(?, ?) r LEFT JOIN b ON b.m = r.range "
        "WHERE b.m IS NULL ORDER BY 1",
        [w.start_ms, w.end_ms, w.start_ms // MINUTE_MS, w.end_ms // MINUTE_MS])]
    runs = _runs(empty)
    runs.sort(key=lambda r: (-(r[1] - r[0] + 1), r[0]))
    value = len(empty) / w.minutes
    return MetricResult(name, value, thr, gate(value, thr, op), {
        "empty_minutes": len(empty), "total_minutes": w.minutes,
        "empty_runs": [{"start": iso_ms(a * MINUTE_MS), "end": iso_ms((b + 1) * MINUTE_MS),
                        "minutes": b - a + 1} for a, b in runs[:MAX_OFFENDERS]],
        "first_empty_minutes": [iso_ms(m * MINUTE_MS) for m in empty[:MAX_OFFENDERS]],
        **ev.window_details()}, op)


def _runs(minutes: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs ``(first, last)`` of sorted minute numbers."""
    runs: list[tuple[int, int]] = []
    for m in minutes:
        if runs and m == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], m)
        else:
            runs.append((m, m))
    return runs


def _duplicates(ev: Evaluation, view: str) -> tuple[int, int, list[dict]]:
    rows, distinct = ev.scope.one(f"SELECT count(*), count(DISTINCT agg_trade_id) FROM {view}")
    top = ev.scope.sql(f"SELECT agg_trade_id, count(*) AS n FROM {view} GROUP BY 1 HAVING n > 1 "
                       f"ORDER BY n DESC, agg_trade_id LIMIT {MAX_OFFENDERS}")
    return rows, distinct, [{"agg_trade_id": a, "copies": n} for a, n in top]


def duplicate_rate(ev: Evaluation) -> MetricResult:
    """(rows − distinct agg_trade_id) / rows in raw ``agg_trade`` (what the dedup window let through)."""
    thr, op, name = ev.settings.acceptance.max_duplicate_rate, "<", "duplicate_rate"
    if not ev.scope.has("raw_agg_trade"):
        return ev.missing(name, "raw agg_trade", thr, op)
    rows, distinct, top = _duplicates(ev, "raw_agg_trade")
    value = (rows - distinct) / rows if rows else None
    return MetricResult(name, value, thr, gate(value, thr, op),
                        {"rows": rows, "distinct_ids": distinct, "duplicates": rows - distinct,
                         "most_duplicated": top}, op)


def prices_duplicates(ev: Evaluation) -> MetricResult:
    """``prices`` is one row per unique trade: any repeated ``agg_trade_id`` is an error."""
    name, op = "prices_duplicates", "=="
    if not ev.scope.has("prices"):
        return ev.missing(name, "prices", 0, op)
    rows, distinct, top = _duplicates(ev, "prices")
    value = rows - distinct
    return MetricResult(name, value, 0, value == 0,
                        {"rows": rows, "distinct_ids": distinct, "most_duplicated": top}, op)


class _Latency:
    """Latency distribution over ``ws`` rows of ``prices``, computed once for p50 and p99."""

    QS = (0.5, 0.9, 0.99, 0.999)

    def __init__(self, ev: Evaluation):
        self.ev = ev

    @cached_property
    def stats(self) -> dict:
        s = self.ev.scope
        n, qs, mx, mean, n_other = s.one(
            "SELECT count(latency_ms) FILTER (WHERE source = 'ws'), "
            f"quantile_cont(latency_ms, {list(self.QS)}) FILTER (WHERE source = 'ws'), "
            "max(latency_ms) FILTER (WHERE source = 'ws'), avg(latency_ms) FILTER (WHERE source = 'ws'), "
            "count(*) FILTER (WHERE source IS DISTINCT FROM 'ws') FROM prices")
        worst = s.sql("SELECT agg_trade_id, latency_ms, event_ts_ms FROM prices "
                      "WHERE source = 'ws' AND latency_ms IS NOT NULL "
                      f"ORDER BY latency_ms DESC, agg_trade_id LIMIT {MAX_OFFENDERS}")
        dist = {f"p{str(q * 100).rstrip('0').rstrip('.').replace('.', '')}": v
                for q, v in zip(self.QS, qs or [None] * len(self.QS))}
        return {"ws_rows": n, "non_ws_rows": n_other, "max": mx, "mean": mean, **dist,
                "worst": [{"agg_trade_id": a, "latency_ms": lat, "event_time": iso_ms(e)}
                          for a, lat, e in worst]}


def _latency_metric(ev: Evaluation, name: str, key: str, thr: float) -> MetricResult:
    op = "<"
    if not ev.scope.has("prices"):
        return ev.missing(name, "prices", thr, op)
    stats = ev.cache.setdefault("latency", _Latency(ev)).stats
    value = stats[key]
    details = dict(stats)
    if not stats["ws_rows"]:
        details["error"] = "no ws rows with latency_ms in prices"
    return MetricResult(name, value, thr, gate(value, thr, op), details, op)


def latency_p99(ev: Evaluation) -> MetricResult:
    return _latency_metric(ev, "latency_p99_ms", "p99", ev.settings.acceptance.max_latency_p99_ms)


def latency_p50(ev: Evaluation) -> MetricResult:
    return _latency_metric(ev, "latency_p50_ms", "p50", ev.settings.acceptance.max_latency_p50_ms)


def _signal_counts(ev: Evaluation) -> tuple[dict[str, int], int]:
    """Signal events by type and the number of ops events (one query pair, shared)."""
    if "signal_counts" not in ev.cache:
        by_type = dict(ev.scope.sql(f"SELECT event_type, count(*) FROM events WHERE {CATEGORY_SQL} = 'signal' "
                                    "GROUP BY 1 ORDER BY 1"))
        (ops_events,) = ev.scope.one(f"SELECT count(*) FROM events WHERE {CATEGORY_SQL} <> 'signal'")
        ev.cache["signal_counts"] = (by_type, ops_events)
    return ev.cache["signal_counts"]


def _event_rate(ev: Evaluation, name: str, thr: float, op: str
                ) -> tuple[dict[str, int], float, dict] | MetricResult:
    """What both event metrics share: signal counts by type, the covered hours and the details,
    or the failed result when there is no events table or no covered window."""
    if not ev.scope.has("events"):
        return ev.missing(name, "events", thr, op)
    by_type, ops_events = _signal_counts(ev)
    w = ev.window
    hours = w.hours if w else 0.0
    details = {"signal_events": sum(by_type.values()), "by_type": by_type, "ops_events": ops_events,
               "covered_hours": round(hours, 6), **ev.window_details()}
    if hours <= 0:
        details["error"] = "no covered window to scale by"
        return MetricResult(name, None, thr, False, details, op)
    return by_type, hours, details


def events_per_72h(ev: Evaluation) -> MetricResult:
    """Signal events scaled to 72 h by the covered hours (``count · 72 / hours``)."""
    thr, op, name = ev.settings.acceptance.min_events_per_72h, ">=", "events_per_72h"
    rate = _event_rate(ev, name, thr, op)
    if isinstance(rate, MetricResult):
        return rate
    _, hours, details = rate
    value = details["signal_events"] * 72.0 / hours
    details["scaled"] = hours < 72
    if hours < 72:
        details["note"] = f"extrapolated from {hours:.3g} h to 72 h"
    return MetricResult(name, value, thr, gate(value, thr, op), details, op)


def events_per_hour(ev: Evaluation) -> MetricResult:
    """Signal events per covered hour, in total (the value) and per type: above
    ``max_events_per_hour`` the signals look like noise. A warning, never blocking
    (:data:`WARN_METRICS`)."""
    thr, op, name = ev.settings.acceptance.max_events_per_hour, "<=", "events_per_hour"
    rate = _event_rate(ev, name, thr, op)
    if isinstance(rate, MetricResult):
        return rate
    by_type, hours, details = rate
    value = details["signal_events"] / hours
    details["by_type_per_hour"] = {k: v / hours for k, v in by_type.items()}
    if not gate(value, thr, op):
        details["warning"] = (f"{value:.4g} signal events per hour > {thr:g}: the signals look like "
                              "noise (see docs/signals.md, Events)")
    return MetricResult(name, value, thr, gate(value, thr, op), details, op)


WINSOR_QS = (0.5, 0.9, 0.99, 0.999)


def winsor_effect(ev: Evaluation) -> MetricResult:
    """``1 − std(z_cvd) / std(z_raw)``: how much winsorising tames the tails. Beside it: the share
    clipped and the |z_raw| percentiles. Gated only with ``Z_MODE=delta``: a level z rarely
    reaches the clip by construction, so with ``Z_MODE=level`` it is reported (``passed=None``)."""
    thr, op, name = ev.settings.acceptance.min_winsor_effect, ">=", "winsor_effect"
    if not ev.scope.has("cvd"):
        return ev.missing(name, "cvd", thr, op)
    n, sd_raw, sd_cvd, clipped, max_cvd, max_raw, qs = ev.scope.one(
        "SELECT count(*), stddev_samp(z_raw), stddev_samp(z_cvd), "
        "avg(CASE WHEN abs(z_cvd - z_raw) > 1e-12 THEN 1.0 ELSE 0.0 END), max(abs(z_cvd)), max(abs(z_raw)), "
        f"quantile_cont(abs(z_raw), {list(WINSOR_QS)}) "
        "FROM cvd WHERE z_raw IS NOT NULL AND z_cvd IS NOT NULL AND isfinite(z_raw) AND isfinite(z_cvd)")
    floor_rate, scale_qs = ev.scope.one(
        "SELECT avg(CASE WHEN floor_used THEN 1.0 ELSE 0.0 END), "
        "quantile_cont(scale, [0.1, 0.5, 0.9]) FROM cvd WHERE scale IS NOT NULL")
    value = 1.0 - sd_cvd / sd_raw if sd_raw else None
    z_mode = ev.settings.signals.z_mode
    pct = dict(zip(("p50", "p90", "p99", "p99_9"), qs or [None] * len(WINSOR_QS)))
    details = {"rows": n, "std_z_raw": sd_raw, "std_z_cvd": sd_cvd, "share_clipped": clipped,
               "abs_z_raw_percentiles": {**pct, "max": max_raw},
               "max_abs_z_cvd": max_cvd, "max_abs_z_raw": max_raw,
               "winsor_limit": ev.settings.signals.winsor_limit, "z_mode": z_mode,
               "floor_hit_rate": floor_rate,
               "scale_p10": (scale_qs or [None] * 3)[0], "scale_median": (scale_qs or [None] * 3)[1],
               "scale_p90": (scale_qs or [None] * 3)[2]}
    if value is None:
        details["error"] = "z_raw has no spread (fewer than 2 rows with z or constant z)"
    if z_mode != "delta":
        details["not_gated"] = (f"Z_MODE={z_mode}: the level z is scaled by the spread of recent "
                                "levels, so it rarely reaches the winsor limit by construction; "
                                "the effect is reported, gated only with Z_MODE=delta")
        return MetricResult(name, value, thr, None, details, op)
    return MetricResult(name, value, thr, gate(value, thr, op), details, op)


MetricFn = Callable[[Evaluation], MetricResult]

METRICS: dict[str, MetricFn] = {
    "empty_bucket_rate": empty_bucket_rate,
    "duplicate_rate": duplicate_rate,
    "prices_duplicates": prices_duplicates,
    "latency_p99_ms": latency_p99,
    "latency_p50_ms": latency_p50,
    "events_per_72h": events_per_72h,
    "events_per_hour": events_per_hour,
    "winsor_effect": winsor_effect,
    **integrity.METRICS,
    **readable.METRICS,
}
DOD_METRICS = ("empty_bucket_rate", "duplicate_rate", "latency_p99_ms", "latency_p50_ms",
               "events_per_72h", "winsor_effect", "events_per_hour")
# a failure of these is a warning (Dagster severity WARN, not blocking; not in the verdict)
WARN_METRICS = frozenset({"events_per_hour"})


def evaluate(ev: Evaluation, names: Iterable[str] | None = None) -> list[MetricResult]:
    """Run the named metrics (all by default)."""
    return evaluate_fns(ev, [(n, METRICS[n]) for n in (names or METRICS)])


def evaluate_fns(ev: Evaluation, fns: Iterable[tuple[str, MetricFn]]) -> list[MetricResult]:
    """Run ``(name, metric)`` pairs (the gate's registry passes its own). A query the data
    cannot answer (a missing or mistyped column, say) fails that metric with the engine's
    message instead of aborting all."""
    out = []
    for name, fn in fns:
        try:
            out.append(fn(ev))
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.IOException):
                raise
            out.append(MetricResult(name, None, None, False, {"error": f"{type(exc).__name__}: {exc}"}))
    return out


def scope_metrics(data_root: str | Path, settings: Settings, symbol: str, dates: Iterable[str],
                  names: Iterable[str] | None = None, *, raw_root: str | Path | None = None,
                  derived_root: str | Path | None = None,
                  derived_roots: dict[str, Path] | None = None) -> list[MetricResult]:
    """Metrics for ``symbol`` over ``dates`` (data root holds ``raw/`` and ``ofi_cvd/``;
    ``derived_roots``: a derived root per date, see :class:`.source.Scope`)."""
    scope = Scope(data_root, symbol, tuple(dates), raw_root=raw_root or None,
                  derived_root=derived_root or None,   # Scope makes Paths or LakeUrls
                  derived_roots=dict(derived_roots or {}))
    try:
        return evaluate(Evaluation(scope, settings), names)
    finally:
        scope.close()


def partition_metrics(data_dir: str | Path, settings: Settings, date: str, symbol: str,
                      names: Iterable[str] | None = None, *,
                      derived_root: str | Path | None = None) -> list[MetricResult]:
    """Metrics of one date × symbol partition (what the blocking asset checks gate on);
    ``derived_root`` reads the derived tables from elsewhere (the gate's staged tables)."""
    return scope_metrics(data_dir, settings, symbol, [date], names, derived_root=derived_root)
