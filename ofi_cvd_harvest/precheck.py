"""The precheck (``capture --precheck-only``, ``precheck: true`` in ``capture_job``): capture a few
minutes → derive through the DQ gate → the DoD verdict (docs/dq.md, "Precheck").

An application flow like :mod:`.demo`, above the packages it composes (``capture``, ``gate``,
``dq``), so none of them imports another's flow: the capture CLI and the Dagster capture op
both call it. Every captured partition goes through
:func:`~ofi_cvd_harvest.gate.run.gate_partition`, so ``data/ofi_cvd/`` receives only tables that
passed; a failing partition is quarantined with its ``dq.json``. The report is then evaluated
where the gate left each partition (published → ``ofi_cvd/``, quarantined → ``quarantine/``):
a precheck exists to show the DoD figures, most of all when they fail.

A criterion defined over 72 hours cannot be judged on minutes: events per 72 h is extrapolated
from the covered window and *marked* as extrapolated in the output (it still gates, on the scaled
figure), never silently passed. Exit status: 0 pass, 1 fail, 2 nothing usable captured.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .settings import Settings

if TYPE_CHECKING:   # the gate (and its polars/duckdb) loads only when the flow runs
    from .gate.run import GateOutcome

PASS, FAIL, UNUSABLE = 0, 1, 2
SCALED_CRITERIA = ("events_per_72h",)
RUN_NAME = "ofi-cvd-harvest precheck"

Say = Callable[[str], None]


def _err(line: str) -> None:
    print(line, file=sys.stderr)


def captured_dates(settings: Settings, symbol: str, start_s: float, end_s: float) -> list[str]:
    """UTC dates between ``start_s`` and ``end_s`` that hold raw files for ``symbol``."""
    d0 = dt.datetime.fromtimestamp(start_s, tz=dt.timezone.utc).date()
    d1 = dt.datetime.fromtimestamp(end_s, tz=dt.timezone.utc).date()
    days = [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]
    return [d for d in days
            if any((Path(settings.raw_dir) / f"date={d}" / f"symbol={symbol}").glob("stream=*/*.parquet"))]


def gate_captured(settings: Settings, dates_by_symbol: dict[str, list[str]], *,
                  run: str = RUN_NAME, say: Say = print) -> list[GateOutcome]:
    """Derive every captured partition through the gate (publish or quarantine); one line each.
    Returns the :class:`~ofi_cvd_harvest.gate.run.GateOutcome` list."""
    from .gate.run import gate_partition
    from .storage.fs import Storage

    storage = Storage(settings.data_dir)
    outcomes = []
    for symbol, dates in dates_by_symbol.items():
        for date in dates:
            out = gate_partition(storage, settings, date, symbol, run=run)
            rows = ", ".join(f"{k} {out.described[k]}" for k in out.kinds)
            say(f"  {date} {symbol}: {rows}: {out.summary()}")
            outcomes.append(out)
    return outcomes


def landed_roots(settings: Settings, outcomes: list[GateOutcome]) -> dict[tuple[str, str], Path]:
    """Where each gated partition's tables are: ``ofi_cvd/`` or ``quarantine/`` (same shape)."""
    from .gate.area import QUARANTINE_DIR

    return {(o.symbol, o.date): (Path(settings.derived_dir) if o.published
                                 else Path(settings.data_dir) / QUARANTINE_DIR)
            for o in outcomes}


def gated_report(settings: Settings, outcomes: list[GateOutcome], **extra: Any) -> dict[str, Any]:
    """The DQ report (dq/report.py) over the gated partitions wherever they landed, with the
    gate's per-partition status under ``"gate"`` and ``extra`` keys. Raises ``UnusableInput``
    for unreadable data."""
    from .dq.report import build_report

    symbols = list(dict.fromkeys(o.symbol for o in outcomes))
    dates = sorted({o.date for o in outcomes})
    report = build_report(Path(settings.derived_dir), Path(settings.raw_dir), settings, symbols,
                          dates, derived_roots=landed_roots(settings, outcomes))
    report["gate"] = {f"{o.date}|{o.symbol}": {"status": o.status, "failed": o.failed,
                                               "warnings": o.warnings, "dq_json": o.verdict_path}
                      for o in outcomes}
    report.update(extra)
    return report


def report_dir(settings: Settings) -> Path:
    return Path(settings.artifacts_dir) / "dq_reports"


def mark_scaled(report: dict[str, Any], minutes: float) -> None:
    """Flag the criteria that are extrapolated from a short window, per symbol and overall."""
    note = f"extrapolated from a {minutes:g}-minute precheck; judged on the scaled value"
    for sec in [*report["per_symbol"].values(), report["overall"]]:
        for name in SCALED_CRITERIA:
            if name in sec["criteria"]:
                sec["criteria"][name]["scaled"] = True
                sec["criteria"][name]["note"] = note
    report["scaled_criteria"] = list(SCALED_CRITERIA)


@dataclass
class PrecheckResult:
    status: int                                   # PASS | FAIL | UNUSABLE
    outcomes: list[GateOutcome] = field(default_factory=list)   # one per captured partition
    report: dict[str, Any] | None = None
    path: Path | None = None

    @property
    def quarantined(self) -> list[str]:
        return [f"{o.date}|{o.symbol}" for o in self.outcomes if not o.published]

    def facts(self) -> dict[str, Any]:
        """Plain data for the Dagster op's metadata and log."""
        out: dict[str, Any] = {"status": self.status, "report": str(self.path) if self.path else None,
                               "gate": {f"{o.date}|{o.symbol}": o.status for o in self.outcomes}}
        if self.report:
            out["verdict"] = self.report["overall"]["verdict"]
            out["per_symbol"] = {s: sec.get("verdict") for s, sec in self.report["per_symbol"].items()}
            failed = {s: [n for n, c in sec["criteria"].items() if c.get("passed") is False]
                      for s, sec in self.report["per_symbol"].items()}
            out["failed"] = {k: v for k, v in failed.items() if v}
        if self.quarantined:
            out["quarantined"] = {f"{o.date}|{o.symbol}": o.verdict_path
                                  for o in self.outcomes if not o.published}
        return out


def evaluate(settings: Settings, dates_by_symbol: dict[str, list[str]], outcomes: list[GateOutcome],
             minutes: float, output_dir: Path | None = None, *,
             say: Say = print, err: Say = _err) -> PrecheckResult:
    """The verdict over the gated partitions: report (``"mode": "precheck"``), printed summary.
    PASS only if the report passes and no partition was quarantined."""
    from .dq.report import summary_text, write_report
    from .dq.source import UnusableInput

    missing = [s for s, d in dates_by_symbol.items() if not d]
    if missing:
        err(f"precheck: no data captured for {', '.join(missing)}")
        return PrecheckResult(UNUSABLE, outcomes)
    try:
        report = gated_report(settings, outcomes, mode="precheck", precheck_minutes=minutes)
    except UnusableInput as exc:
        err(f"precheck: unusable input: {exc}")
        return PrecheckResult(UNUSABLE, outcomes)
    mark_scaled(report, minutes)
    path = write_report(report, Path(output_dir or report_dir(settings)))
    result = PrecheckResult(FAIL, outcomes, report, path)
    say(summary_text(report))
    for name in SCALED_CRITERIA:
        say(f"note: {name} is not judgeable on {minutes:g} minutes; it is extrapolated to 72 h "
            f"and marked 'scaled' in the report")
    for o in outcomes:
        if not o.published:
            say(f"quarantined {o.date}|{o.symbol} ({', '.join(o.failed)} failed): {o.verdict_path}")
    passed = report["overall"]["verdict"] == "PASS" and not result.quarantined
    result.status = PASS if passed else FAIL
    say(f"PRECHECK: {'PASS' if passed else 'FAIL'}  (report: {path})")
    return result


def check_captured(settings: Settings, start_s: float, end_s: float, *, run: str = RUN_NAME,
                   say: Say = print, err: Say = _err) -> PrecheckResult:
    """What follows the capture: gate the partitions captured between ``start_s`` and
    ``end_s``, then :func:`evaluate` (the Dagster op runs the capture itself, then this;
    ``run`` names it in ``dq.json``)."""
    dates = {sym: captured_dates(settings, sym, start_s - 1, end_s + 1) for sym in settings.symbols}
    outcomes = gate_captured(settings, dates, run=run, say=say)
    return evaluate(settings, dates, outcomes, settings.precheck_minutes, say=say, err=err)


def run_precheck(settings: Settings) -> int:
    """Capture ``precheck_minutes``, gate, evaluate; 0 pass, 1 fail, 2 nothing usable captured."""
    from .capture.runner import run_capture_sync
    from .gate.area import GateStorageError, local_root
    from .storage.fs import Storage

    try:   # the gate needs a local data root: say so before capturing, not after
        local_root(Storage(settings.data_dir))
    except GateStorageError as exc:
        _err(f"precheck: {exc}")
        return UNUSABLE
    minutes = settings.precheck_minutes
    print(f"precheck: capturing {', '.join(settings.symbols)} for {minutes:g} min from "
          f"{settings.ws_base_url} into {settings.data_dir} ...", flush=True)
    start = time.time()
    summary = run_capture_sync(settings, run_seconds=minutes * 60.0)
    end = time.time()
    for sym, s in summary.symbols.items():
        print(f"  {sym}: trades={s.trades_written} book_rows={s.book_rows} "
              f"duplicates={s.duplicates} gaps={s.trade_gaps_detected}")
    print("precheck: deriving the captured partitions through the DQ gate", flush=True)
    return check_captured(settings, start, end).status
