"""``ofi-cvd-harvest capture --precheck-only`` (SPEC §7): a short capture, then the DoD verdict.

Captures for ``precheck_minutes``, derives the captured partitions, evaluates every metric with
the same engine as the asset checks, writes a report (``"mode": "precheck"``) and prints the
verdict; the exit status is non-zero on failure, so a 72-hour run is only started on a setup that
already meets the gate. A criterion defined over 72 hours cannot be judged on minutes: events per
72 h is extrapolated from the covered window and *marked* as extrapolated in the output (it still
gates, on the scaled figure), never silently passed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from ..settings import Settings
from .report import build_report, summary_text, write_report
from .source import UnusableInput

PASS, FAIL, UNUSABLE = 0, 1, 2
SCALED_CRITERIA = ("events_per_72h",)


def _dates(settings: Settings, symbol: str, start_s: float, end_s: float) -> list[str]:
    """UTC dates of the run that hold raw files for ``symbol``."""
    d0 = dt.datetime.fromtimestamp(start_s, tz=dt.timezone.utc).date()
    d1 = dt.datetime.fromtimestamp(end_s, tz=dt.timezone.utc).date()
    days = [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]
    return [d for d in days
            if any((Path(settings.raw_dir) / f"date={d}" / f"symbol={symbol}").glob("stream=*/*.parquet"))]


def derive_captured(settings: Settings, dates_by_symbol: dict[str, list[str]]) -> list[str]:
    """Derive and write the five tables of every captured partition; returns the written paths."""
    from ..signals.derive import derive_all, write_kind
    from ..storage.fs import Storage

    storage = Storage(settings.data_dir)
    paths = []
    for symbol, dates in dates_by_symbol.items():
        for date in dates:
            for kind, df in derive_all(storage, settings, date, symbol).items():
                paths.append(write_kind(storage, date, symbol, kind, df))
    return paths


def mark_scaled(report: dict[str, Any], minutes: float) -> None:
    """Flag the criteria that are extrapolated from a short window, per symbol and overall."""
    note = f"extrapolated from a {minutes:g}-minute precheck; judged on the scaled value"
    for sec in [*report["per_symbol"].values(), report["overall"]]:
        for name in SCALED_CRITERIA:
            if name in sec["criteria"]:
                sec["criteria"][name]["scaled"] = True
                sec["criteria"][name]["note"] = note
    report["scaled_criteria"] = list(SCALED_CRITERIA)


def evaluate(settings: Settings, dates_by_symbol: dict[str, list[str]], minutes: float,
             output_dir: Path | None = None) -> tuple[int, dict[str, Any] | None, Path | None]:
    """DoD over what was captured: ``(exit status, report, report path)``."""
    symbols = [s for s, d in dates_by_symbol.items() if d]
    missing = [s for s, d in dates_by_symbol.items() if not d]
    if missing:
        print(f"precheck: no data captured for {', '.join(missing)}", file=sys.stderr)
        return UNUSABLE, None, None
    dates = sorted({d for ds in dates_by_symbol.values() for d in ds})
    try:
        report = build_report(Path(settings.derived_dir), Path(settings.raw_dir), settings, symbols, dates)
    except UnusableInput as exc:
        print(f"precheck: unusable input: {exc}", file=sys.stderr)
        return UNUSABLE, None, None
    report.update(mode="precheck", precheck_minutes=minutes)
    mark_scaled(report, minutes)
    path = write_report(report, Path(output_dir or Path(settings.artifacts_dir) / "dq_reports"))
    print(summary_text(report))
    for name in SCALED_CRITERIA:
        print(f"note: {name} is not judgeable on {minutes:g} minutes; it is extrapolated to 72 h "
              f"and marked 'scaled' in the report")
    verdict = report["overall"]["verdict"]
    print(f"PRECHECK: {verdict}  (report: {path})")
    return (PASS if verdict == "PASS" else FAIL), report, path


def run_precheck(settings: Settings, args: argparse.Namespace | None = None) -> int:
    """Capture ``precheck_minutes``, derive, evaluate; 0 pass, 1 fail, 2 nothing usable captured."""
    from ..capture.runner import run_capture_sync

    minutes = settings.precheck_minutes
    print(f"precheck: capturing {', '.join(settings.symbols)} for {minutes:g} min from "
          f"{settings.ws_base_url} into {settings.data_dir} ...", flush=True)
    start = time.time()
    summary = run_capture_sync(settings, run_seconds=minutes * 60.0)
    end = time.time()
    for sym, s in getattr(summary, "symbols", {}).items():
        print(f"  {sym}: trades={getattr(s, 'trades_written', '?')} book_rows={getattr(s, 'book_rows', '?')} "
              f"duplicates={getattr(s, 'duplicates', '?')} gaps={getattr(s, 'trade_gaps_detected', '?')}")
    dates = {sym: _dates(settings, sym, start - 1, end + 1) for sym in settings.symbols}
    derive_captured(settings, dates)
    rc, _, _ = evaluate(settings, dates, minutes)
    return rc
