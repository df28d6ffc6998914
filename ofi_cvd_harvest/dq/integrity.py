"""Integrity checks beyond the original DoD (docs/dq.md): missing trades, exact schemas, crossed
books, monotonic timestamps, book ``pu`` gaps, regime labels and clock drift.

The gating ones must be exactly zero; ``book_pu_gaps``, ``regime_labels_seen`` and
``clock_drift_events`` are reported (``passed=None``): a dropped book message is a fact of the
exchange, not a defect of the partition.
"""

from __future__ import annotations

import os
from typing import Callable

import pyarrow as pa

from ..schemas import DERIVED_SCHEMAS, RAW_SCHEMAS, REGIME_LABELS
from .base import Evaluation, MetricResult, iso_ms

MAX_OFFENDERS = 20


def missing_trades(ev: Evaluation) -> MetricResult:
    """Holes in the ``agg_trade_id`` sequence of ``prices`` inside the covered window (after healing)."""
    name, op = "missing_trades", "=="
    if not ev.scope.has("prices"):
        return ev.missing(name, "prices", 0, op)
    w = ev.window
    if w is None:
        return MetricResult(name, None, 0, False, {"error": "no covered window"}, op)
    holes = ev.scope.sql(
        "WITH ids AS (SELECT DISTINCT agg_trade_id AS id FROM prices "
        "             WHERE event_ts_ms >= ? AND event_ts_ms < ?), "
        "g AS (SELECT lag(id) OVER (ORDER BY id) AS prev, id FROM ids) "
        "SELECT prev + 1, id - 1, id - prev - 1 FROM g WHERE id - prev > 1 ORDER BY 3 DESC, 1",
        [w.start_ms, w.end_ms])
    total = int(sum(n for _, _, n in holes))
    lo, hi = ev.scope.one("SELECT min(agg_trade_id), max(agg_trade_id) FROM prices "
                          "WHERE event_ts_ms >= ? AND event_ts_ms < ?", [w.start_ms, w.end_ms])
    return MetricResult(name, total, 0, total == 0, {
        "missing_ranges": len(holes),
        "largest_ranges": [{"from_id": a, "to_id": b, "count": n} for a, b, n in holes[:MAX_OFFENDERS]],
        "first_id": lo, "last_id": hi, **ev.window_details()}, op)


def _type_str(t: pa.DataType) -> str:
    """Logical type name: ``string``/``large_string`` and ``list``/``large_list`` (any item
    field name) are the same Parquet type, so they compare equal."""
    if pa.types.is_large_string(t) or pa.types.is_string(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_type_str(t.value_type)}>"
    return str(t)


def _columns(schema: pa.Schema) -> list[str]:
    return [f"{f.name}:{_type_str(f.type)}" for f in schema]


def _diff(expected: list[str], actual: list[str]) -> list[str]:
    out = [f"position {i}: expected {e}, found {a}"
           for i, (e, a) in enumerate(zip(expected, actual)) if e != a]
    out += [f"missing column {e}" for e in expected[len(actual):]]
    out += [f"unexpected column {a}" for a in actual[len(expected):]]
    return out


def _schema_metric(view: str, expected: pa.Schema) -> Callable[[Evaluation], MetricResult]:
    name = f"schema_{view}"

    def metric(ev: Evaluation) -> MetricResult:
        files = ev.scope.views.get(view, [])
        if not files:
            return ev.missing(name, view.replace("_", " ", 1) if view.startswith("raw_") else view, 0, "==")
        want = _columns(expected)
        bad = []
        for f in files:
            got = _columns(ev.scope.schema_of(f))
            if got != want:
                bad.append((f, got, _diff(want, got)))
        details = {"files_checked": len(files), "files_mismatched": len(bad), "expected": want}
        if bad:
            f, got, diffs = bad[0]
            details.update({"first_bad_file": os.path.relpath(f, ev.scope.data_root), "found": got,
                            "differences": diffs[:MAX_OFFENDERS],
                            "bad_files": [os.path.relpath(b[0], ev.scope.data_root) for b in bad[:5]]})
        return MetricResult(name, len(bad), 0, not bad, details, "==")

    metric.__name__ = name
    metric.__doc__ = f"Every {view} file has exactly the columns, order and types of the schema."
    return metric


def crossed_book(ev: Evaluation) -> MetricResult:
    """Raw book rows whose best bid is at or above the best ask (a broken local book)."""
    name, op = "crossed_book_rows", "=="
    if not ev.scope.has("raw_book"):
        return ev.missing(name, "raw book", 0, op)
    crossed, rows = ev.scope.one("SELECT count(*) FILTER (WHERE bid_px[1] >= ask_px[1]), count(*) FROM raw_book")
    worst = ev.scope.sql("SELECT event_ts_ms, final_update_id, bid_px[1], ask_px[1] FROM raw_book "
                         f"WHERE bid_px[1] >= ask_px[1] ORDER BY event_ts_ms LIMIT {MAX_OFFENDERS}")
    return MetricResult(name, crossed, 0, crossed == 0, {
        "rows": rows, "first_crossed": [{"event_time": iso_ms(e), "final_update_id": u, "best_bid": b,
                                         "best_ask": a} for e, u, b, a in worst]}, op)


# per derived kind: (column, gated?) checked for order along the table's defined row order.
# prices/cvd are ordered by agg_trade_id: ids must strictly increase and the trade time T must not go
# back; their event time E is reported only, because a REST-healed row carries E = T, which can be
# earlier than the E of the ws row before it.
ORDER_RULES: dict[str, tuple[tuple[str, bool], ...]] = {
    "prices": (("agg_trade_id", True), ("trade_ts_ms", True), ("event_ts_ms", False)),
    "cvd": (("agg_trade_id", True), ("ts_ms", False)),
    "ofi": (("ts_ms", True),),
    "fusion": (("ts_ms", True),),
    "events": (("ts_ms", True),),
}
STRICT = {"agg_trade_id"}


def _monotonic_metric(kind: str) -> Callable[[Evaluation], MetricResult]:
    name, rules = f"monotonic_{kind}", ORDER_RULES[kind]

    def metric(ev: Evaluation) -> MetricResult:
        if not ev.scope.has(kind):
            return ev.missing(name, kind, 0, "==")
        lags = ", ".join(f"{c} AS c{i}, lag({c}) OVER w AS p{i}" for i, (c, _) in enumerate(rules))
        bad = [f"c{i} {'<=' if c in STRICT else '<'} p{i}" for i, (c, _) in enumerate(rules)]
        counts = ", ".join(f"count(*) FILTER (WHERE {b})" for b in bad)
        base = (f"WITH t AS (SELECT {lags}, file_index, file_row_number FROM {kind} "
                "WINDOW w AS (ORDER BY file_index, file_row_number)) ")
        per_col = ev.scope.one(base + f"SELECT {counts} FROM t")
        gated = [i for i, (_, g) in enumerate(rules) if g]
        where = " OR ".join(bad[i] for i in gated)
        first = ev.scope.sql(base + "SELECT file_index, file_row_number, "
                             + ", ".join(f"p{i}, c{i}" for i in gated)
                             + f" FROM t WHERE {where} ORDER BY file_index, file_row_number LIMIT {MAX_OFFENDERS}")
        files = ev.scope.views[kind]
        value = int(sum(per_col[i] for i in gated))
        details = {"inversions": {c: int(per_col[i]) for i, (c, _) in enumerate(rules)},
                   "gated_columns": [rules[i][0] for i in gated],
                   "reported_only": [c for c, g in rules if not g],
                   "first_inversions": [
                       {"file": os.path.relpath(files[r[0]], ev.scope.data_root), "row": r[1],
                        **{rules[i][0]: {"previous": r[2 + 2 * j], "value": r[3 + 2 * j]}
                           for j, i in enumerate(gated)}} for r in first]}
        return MetricResult(name, value, 0, value == 0, details, "==")

    metric.__name__ = name
    return metric


def book_pu_gaps(ev: Evaluation) -> MetricResult:
    """Book ``pu``-chain breaks (reported): rows flagged ``gap`` and breaks recomputed from ids."""
    name = "book_pu_gaps"
    if not ev.scope.has("raw_book"):
        return ev.missing(name, "raw book", None, "", gating=False)
    base = ("WITH b AS (SELECT gap, prev_final_update_id AS pu, event_ts_ms, final_update_id, "
            "lag(final_update_id) OVER (ORDER BY file_index, file_row_number) AS prev_u FROM raw_book) ")
    gap_rows, breaks, unflagged, rows = ev.scope.one(
        base + "SELECT count(*) FILTER (WHERE gap), count(*) FILTER (WHERE pu <> prev_u), "
        "count(*) FILTER (WHERE pu <> prev_u AND NOT gap), count(*) FROM b")
    first = ev.scope.sql(base + "SELECT event_ts_ms, final_update_id, pu, prev_u FROM b WHERE gap OR pu <> prev_u "
                         f"ORDER BY event_ts_ms LIMIT {MAX_OFFENDERS}")
    return MetricResult(name, int(gap_rows), None, None, {
        "rows": rows, "gap_rows": gap_rows, "chain_breaks": breaks, "unflagged_breaks": unflagged,
        "first_gaps": [{"event_time": iso_ms(e), "final_update_id": u, "pu": pu, "previous_u": p}
                       for e, u, pu, p in first]}, "")


def regime_labels_seen(ev: Evaluation) -> MetricResult:
    """Which of the four regime labels occur (reported; all four are expected over a full run)."""
    name = "regime_labels_seen"
    views = [v for v in ("cvd", "ofi") if ev.scope.has(v)]
    if not views:
        return ev.missing(name, "cvd/ofi", len(REGIME_LABELS), ">=", gating=False)
    union = " UNION ALL ".join(f"SELECT regime FROM {v}" for v in views)
    counts = dict(ev.scope.sql(f"SELECT coalesce(regime, 'null'), count(*) FROM ({union}) GROUP BY 1 ORDER BY 1"))
    seen = [r for r in REGIME_LABELS if r in counts]
    return MetricResult(name, len(seen), len(REGIME_LABELS), None, {
        "counts": counts, "seen": seen, "not_seen": [r for r in REGIME_LABELS if r not in counts]}, ">=")


def clock_drift_events(ev: Evaluation) -> MetricResult:
    """Clock-drift ops events (reported) and the largest drift they carry."""
    name = "clock_drift_events"
    if not ev.scope.has("raw_ops"):
        return MetricResult(name, 0, None, None, {"note": "no ops files"}, "")
    rows = ev.scope.sql(
        "SELECT recv_ts_ms, event_type, meta_json, "
        "coalesce(try(json_extract_string(meta_json, '$.drift_ms')::DOUBLE), "
        "         try(json_extract_string(meta_json, '$.clock_drift_ms')::DOUBLE)) "
        "FROM raw_ops WHERE lower(event_type) LIKE '%drift%' OR lower(event_type) LIKE '%clock%' "
        "ORDER BY recv_ts_ms")
    drifts = [abs(d) for *_, d in rows if d is not None]
    return MetricResult(name, len(rows), None, None, {
        "max_abs_drift_ms": max(drifts) if drifts else None,
        "events": [{"time": iso_ms(t), "event_type": et, "meta_json": m} for t, et, m, _ in rows[:MAX_OFFENDERS]]},
        "")


METRICS: dict[str, Callable[[Evaluation], MetricResult]] = {
    "missing_trades": missing_trades,
    **{f"schema_{k}": _schema_metric(k, s) for k, s in DERIVED_SCHEMAS.items()},
    **{f"schema_raw_{k}": _schema_metric(f"raw_{k}", s) for k, s in RAW_SCHEMAS.items()},
    "crossed_book_rows": crossed_book,
    **{f"monotonic_{k}": _monotonic_metric(k) for k in ORDER_RULES},
    "book_pu_gaps": book_pu_gaps,
    "regime_labels_seen": regime_labels_seen,
    "clock_drift_events": clock_drift_events,
}
