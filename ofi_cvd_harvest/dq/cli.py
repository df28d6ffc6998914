"""``ofi-cvd-harvest validate``: the DQ gate over a run's derived + raw partitions.

The original guide's ``validate_ofi_cvd_harvest.py``. Exit status: 0 = every gated metric
passes, 1 = at least one fails, 2 = the input cannot be evaluated (missing directory, no data
for the requested dates/symbols, an unreadable derived file) or the report cannot be written
(output directory not creatable or writable, disk full) — each with a one-line reason on
stderr, so a script can tell "bad data" from "no data". A damaged *raw* file is a DQ failure
(``raw_files_readable``, exit 1), named in the report (docs/dq.md "Raw files").
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..settings import load_settings
from ..storage.layout import DATE_RE
from ..progress import Progress
from ..storage.objectstore import data_root
from .report import build_report, evaluations, summary_text, write_report
from .source import UnusableInput

PASS, FAIL, UNUSABLE = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-dir", type=data_root, default=None,
                   help="derived tables root, a directory or s3://bucket/prefix/ofi_cvd (default: $DATA_DIR/ofi_cvd); raw is its sibling raw/")
    p.add_argument("--raw-dir", type=data_root, default=None, help="raw root (default: <base-dir>/../raw)")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="where dq_YYYYMMDD_HHMM.json goes (default: $ARTIFACTS_DIR/dq_reports)")
    p.add_argument("--date", action="append", default=None,
                   help="UTC date YYYY-MM-DD (repeat or comma-separate; default: every date present)")
    p.add_argument("--symbols", default=None, help="comma-separated (default: every symbol present)")
    p.add_argument("--config", default=None, help="config file (default: config/system.yaml)")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")


def _partitions(base: Path, key: str) -> list[str]:
    return sorted(p.name.split("=", 1)[1] for p in base.glob(f"{key}=*") if p.is_dir())


def _discover(base: Path, dates: list[str] | None, symbols: list[str] | None) -> tuple[list[str], list[str]]:
    """Dates and symbols to evaluate; raises UnusableInput when the scope holds no derived file."""
    present_dates = _partitions(base, "date")
    if not present_dates:
        raise UnusableInput(f"no date=YYYY-MM-DD partitions under {base}")
    dates = dates or present_dates
    missing = [d for d in dates if d not in present_dates]
    if missing:
        raise UnusableInput(f"no data for date {', '.join(missing)} under {base} "
                            f"(present: {', '.join(present_dates)})")
    present_syms = sorted({s for d in dates for s in _partitions(base / f"date={d}", "symbol")})
    symbols = symbols or present_syms
    if not symbols:
        raise UnusableInput(f"no symbol=… partitions under {base} for {', '.join(dates)}")
    for sym in symbols:
        if not any(any((base / f"date={d}" / f"symbol={sym}").glob("kind=*/*.parquet")) for d in dates):
            raise UnusableInput(f"no data for symbol {sym} under {base} on {', '.join(dates)}"
                                f" (present: {', '.join(present_syms) or 'none'})")
    return dates, symbols


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    base = data_root(args.base_dir or settings.derived_dir)
    raw = data_root(args.raw_dir or base.parent / "raw")
    out_dir = Path(args.output_dir or settings.artifacts_dir / "dq_reports")
    dates = _split(args.date)
    symbols = [s.upper() for s in _split([args.symbols] if args.symbols else None) or []] or None
    try:
        for d in dates or []:
            if not DATE_RE.match(d):
                raise UnusableInput(f"invalid --date {d!r} (expected YYYY-MM-DD)")
        for s in symbols or []:
            if not re.match(r"^[A-Z0-9]{2,20}$", s):
                raise UnusableInput(f"invalid symbol {s!r}")
        if not base.is_dir():
            raise UnusableInput(f"base directory {base} does not exist")
        if not raw.is_dir():
            raise UnusableInput(f"raw directory {raw} does not exist (the DoD needs raw agg_trade/book/ops)")
        dates, symbols = _discover(base, dates, symbols)
        if args.quiet:
            report = build_report(base, raw, settings, symbols, dates)
        else:   # stderr: a line in place on a terminal, plain lines otherwise
            with Progress(evaluations(symbols, dates), "evaluations", "validate") as progress:
                report = build_report(base, raw, settings, symbols, dates, progress=progress)
    except UnusableInput as exc:
        print(f"validate: unusable input: {exc}", file=sys.stderr)
        return UNUSABLE
    try:
        path = write_report(report, out_dir)
    except OSError as exc:
        print(f"validate: unusable output: cannot write the report under {out_dir}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return UNUSABLE
    verdict = report["overall"]["verdict"]
    if args.quiet:
        print(f"{verdict} {path}")
    else:
        print(summary_text(report))
        print(f"report: {path}")
    return PASS if verdict == "PASS" else FAIL
