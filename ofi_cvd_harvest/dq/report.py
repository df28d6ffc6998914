"""The DQ report of a capture run: ``dq_YYYYMMDD_HHMM.json`` plus a human-readable summary.

Per symbol (over all the run's dates) and overall: completeness, dedup, latency distribution,
signal counts, consistency (winsor effect, floor hit rate, scale), book gaps, coverage hours,
clock drift, every criterion's value / threshold / pass and the verdict. The figures are the same
metric results the Dagster checks gate on (:mod:`.metrics`), regrouped for reading. The overall
value of a criterion is the worst symbol's value; the overall verdict passes only if every gated
metric of every symbol passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

from ..settings import Settings
from .base import MetricResult
from .metrics import DOD_METRICS, WARN_METRICS, scope_metrics


def _get(ms: dict[str, MetricResult], name: str, key: str | None = None) -> Any:
    r = ms.get(name)
    if r is None:
        return None
    return r.value if key is None else r.details.get(key)


def symbol_section(results: list[MetricResult]) -> dict[str, Any]:
    """One symbol's report section from its metric results."""
    ms = {r.name: r for r in results}
    window = _get(ms, "empty_bucket_rate", "window") or _get(ms, "missing_trades", "window")
    lat = ms.get("latency_p99_ms")
    gated = [r for r in results if r.passed is not None and r.name not in WARN_METRICS]
    warned = [r for r in results if r.passed is False and r.name in WARN_METRICS]
    return {
        "coverage_hours": window["hours"] if window else 0.0,
        "window": window,
        "completeness": {
            "empty_bucket_rate": _get(ms, "empty_bucket_rate"),
            "empty_minutes": _get(ms, "empty_bucket_rate", "empty_minutes"),
            "total_minutes": _get(ms, "empty_bucket_rate", "total_minutes"),
            "empty_runs": _get(ms, "empty_bucket_rate", "empty_runs"),
            "missing_trades": _get(ms, "missing_trades"),
            "missing_ranges": _get(ms, "missing_trades", "largest_ranges"),
        },
        "dedup": {
            "raw_rows": _get(ms, "duplicate_rate", "rows"),
            "raw_distinct_ids": _get(ms, "duplicate_rate", "distinct_ids"),
            "duplicate_rate": _get(ms, "duplicate_rate"),
            "prices_rows": _get(ms, "prices_duplicates", "rows"),
            "prices_duplicates": _get(ms, "prices_duplicates"),
        },
        "latency_ms": ({k: v for k, v in lat.details.items() if k not in ("worst", "error")}
                       if lat else None),
        "signals": {
            "signal_events": _get(ms, "events_per_72h", "signal_events"),
            "by_type": _get(ms, "events_per_72h", "by_type"),
            "ops_events": _get(ms, "events_per_72h", "ops_events"),
            "events_per_72h": _get(ms, "events_per_72h"),
            "scaled_from_hours": _get(ms, "events_per_72h", "covered_hours"),
            "events_per_hour": _get(ms, "events_per_hour"),
            "by_type_per_hour": _get(ms, "events_per_hour", "by_type_per_hour"),
            "max_events_per_hour": ms["events_per_hour"].threshold if "events_per_hour" in ms else None,
        },
        "consistency": {
            "winsor_effect": _get(ms, "winsor_effect"),
            **{k: _get(ms, "winsor_effect", k) for k in (
                "share_clipped", "floor_hit_rate", "scale_median", "scale_p10", "scale_p90",
                "std_z_raw", "std_z_cvd", "max_abs_z_cvd", "abs_z_raw_percentiles", "z_mode",
                "not_gated")},
        },
        "book": {
            "rows": _get(ms, "book_pu_gaps", "rows"),
            "gap_rows": _get(ms, "book_pu_gaps", "gap_rows"),
            "chain_breaks": _get(ms, "book_pu_gaps", "chain_breaks"),
            "unflagged_breaks": _get(ms, "book_pu_gaps", "unflagged_breaks"),
            "crossed_rows": _get(ms, "crossed_book_rows"),
        },
        "regimes": _get(ms, "regime_labels_seen", "counts"),
        "clock_drift": {"events": _get(ms, "clock_drift_events"),
                        "max_abs_drift_ms": _get(ms, "clock_drift_events", "max_abs_drift_ms")},
        "criteria": {r.name: {"value": r.as_dict()["value"], "threshold": r.threshold, "op": r.op,
                              "passed": r.passed,
                              "severity": "warn" if r.name in WARN_METRICS else "error"}
                     for r in results if r.passed is not None},
        "failed": [r.name for r in gated if not r.passed],
        "warnings": [r.name for r in warned],
        "verdict": "PASS" if all(r.passed for r in gated) else "FAIL",
        "metrics": [r.as_dict() for r in results],
    }


def _worst(values: list[tuple[str, Any]], op: str) -> tuple[str | None, Any]:
    known = [(s, v) for s, v in values if v is not None]
    if not known:
        return None, None
    return (min if op == ">=" else max)(known, key=lambda sv: sv[1])


def overall_section(sections: dict[str, dict]) -> dict[str, Any]:
    """Worst value per criterion across symbols, pooled totals and the run's verdict."""
    names: list[str] = []
    for sec in sections.values():
        names += [n for n in sec["criteria"] if n not in names]
    criteria = {}
    for n in names:
        entries = [(s, sec["criteria"][n]) for s, sec in sections.items() if n in sec["criteria"]]
        op = entries[0][1]["op"]
        sym, val = _worst([(s, e["value"]) for s, e in entries], op)
        criteria[n] = {"value": val, "worst_symbol": sym, "threshold": entries[0][1]["threshold"],
                       "severity": entries[0][1].get("severity", "error"),
                       "op": op, "passed": all(e["passed"] for _, e in entries)}
    total = lambda path: sum((sec[path[0]].get(path[1]) or 0) for sec in sections.values())  # noqa: E731
    return {
        "coverage_hours": max((sec["coverage_hours"] for sec in sections.values()), default=0.0),
        "totals": {"raw_rows": total(("dedup", "raw_rows")), "prices_rows": total(("dedup", "prices_rows")),
                   "signal_events": total(("signals", "signal_events")),
                   "empty_minutes": total(("completeness", "empty_minutes")),
                   "missing_trades": total(("completeness", "missing_trades")),
                   "book_gap_rows": total(("book", "gap_rows"))},
        "criteria": criteria,
        "dod": {n: criteria[n] for n in DOD_METRICS if n in criteria},
        "failed": sorted({f"{s}:{n}" for s, sec in sections.items() for n in sec["failed"]}),
        "warnings": sorted({f"{s}:{n}" for s, sec in sections.items() for n in sec.get("warnings", [])}),
        "verdict": "PASS" if sections and all(sec["verdict"] == "PASS" for sec in sections.values()) else "FAIL",
    }


def evaluations(symbols: list[str], dates: list[str]) -> int:
    """How many scopes :func:`build_report` evaluates (the CLI's progress total)."""
    return len(symbols) * (1 + (len(dates) if len(dates) > 1 else 0))


def build_report(base_dir: Path, raw_dir: Path, settings: Settings, symbols: list[str],
                 dates: list[str], progress=None, *,
                 derived_roots: dict[tuple[str, str], Path] | None = None) -> dict[str, Any]:
    """Evaluate every symbol over ``dates`` (raises ``UnusableInput`` for unreadable data).
    ``progress``: an ``ofi_cvd_harvest.progress.Progress`` told about each evaluation.
    ``derived_roots[(symbol, date)]`` reads that partition's derived tables from another root
    than ``base_dir`` (the precheck reads a quarantined partition from ``quarantine/``)."""
    roots = dict(derived_roots or {})

    def section(sym: str, days: list[str]) -> dict[str, Any]:
        name = f"{sym} {days[0] if len(days) == 1 else f'{days[0]}..{days[-1]}'}"
        if progress is not None:
            progress.start(name)
        out = symbol_section(scope_metrics(
            base_dir.parent, settings, sym, days, raw_root=raw_dir, derived_root=base_dir,
            derived_roots={d: roots[(sym, d)] for d in days if (sym, d) in roots}))
        if progress is not None:
            progress.step(name)
        return out

    sections = {sym: section(sym, dates) for sym in symbols}
    if len(dates) > 1:   # which day failed: the same verdicts the per-partition checks reach
        for sym, sec in sections.items():
            sec["by_date"] = {}
            for d in dates:
                day = section(sym, [d])
                sec["by_date"][d] = {k: day[k] for k in ("verdict", "failed", "coverage_hours")}
    return {
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "base_dir": str(base_dir),
        **({"derived_roots": {f"{d}|{s}": str(p) for (s, d), p in sorted(roots.items())}}
           if roots else {}),
        "raw_dir": str(raw_dir),
        "dates": list(dates),
        "symbols": list(symbols),
        "thresholds": dataclasses.asdict(settings.acceptance),
        "per_symbol": sections,
        "overall": overall_section(sections),
    }


def _clean(x: Any) -> Any:
    """JSON-safe copy: non-finite floats (no spread, empty tables) become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_report(report: dict[str, Any], output_dir: Path, now: dt.datetime | None = None) -> Path:
    """Atomically write ``dq_YYYYMMDD_HHMM.json`` (UTC) under ``output_dir``; returns its path."""
    now = now or dt.datetime.now(dt.timezone.utc)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"dq_{now:%Y%m%d_%H%M}.json"
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(_clean(report), indent=2, default=str, allow_nan=False))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)     # a full disk must not leave a half report behind
        raise
    return path


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summary_text(report: dict[str, Any]) -> str:
    """The human-readable summary printed by ``validate`` and the precheck."""
    lines = [f"DQ report: {', '.join(report['symbols'])} on {', '.join(report['dates'])}"]
    for sym, sec in report["per_symbol"].items():
        lines.append(f"\n{sym}: {sec['verdict']}  (covered {sec['coverage_hours']:.3g} h, "
                     f"{_fmt(sec['dedup']['prices_rows'])} trades, "
                     f"{_fmt(sec['signals']['signal_events'])} signal events, "
                     f"{_fmt(sec['book']['gap_rows'])} book gaps)")
        for name, c in sec["criteria"].items():
            mark = "ok  " if c["passed"] else ("WARN" if c.get("severity") == "warn" else "FAIL")
            lines.append(f"  {mark} {name:<22} {_fmt(c['value']):>12}  (needs {c['op']} {_fmt(c['threshold'])})")
        ev = next((m for m in sec["metrics"] if m["name"] == "events_per_72h"), None)
        if ev and ev["details"].get("note"):
            lines.append(f"       events_per_72h {ev['details']['note']}")
        for m in sec["metrics"]:
            if m["name"] == "winsor_effect" and m["passed"] is None and m["details"].get("not_gated"):
                lines.append(f"  n/g  winsor_effect          {_fmt(m['value']):>12}  "
                             f"(reported, not gated: Z_MODE={m['details']['z_mode']})")
            if m["passed"] is False and "warning" in m["details"]:
                lines.append(f"       {m['name']}: {m['details']['warning']}")
            if m["passed"] is False and "error" in m["details"]:
                lines.append(f"       {m['name']}: {m['details']['error']}")
    lines.append(f"\nOVERALL: {report['overall']['verdict']}")
    if report["overall"]["failed"]:
        lines.append("failed: " + ", ".join(report["overall"]["failed"]))
    if report["overall"].get("warnings"):
        lines.append("warnings: " + ", ".join(report["overall"]["warnings"]))
    return "\n".join(lines)


def report_run(settings: Settings, symbols: list[str] | tuple[str, ...], dates: list[str],
               output_dir: Path | None = None, **extra: Any) -> tuple[Path, dict[str, Any]]:
    """Build and write the report of a run (for the capture job / CLI after a capture);
    ``extra`` keys (e.g. ``mode="precheck"``) are added to the document."""
    report = build_report(Path(settings.derived_dir), Path(settings.raw_dir), settings, list(symbols), dates)
    report.update(extra)
    path = write_report(report, Path(output_dir or Path(settings.artifacts_dir) / "dq_reports"))
    return path, report
