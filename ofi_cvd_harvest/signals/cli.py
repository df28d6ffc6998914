"""``ofi-cvd-harvest derive``: build the derived partitions from raw files (no Dagster needed).

Useful for a backfill after a formula change or to inspect a capture from a shell. Every
partition goes through the same DQ gate as the Dagster multi-asset
(:func:`ofi_cvd_harvest.gate.run.gate_partition`): published only if every blocking check
passes, otherwise quarantined (named at the end; exit status 1). Each partition stands alone:
one that fails is named with the reason (a damaged raw file is named with its own reason, left
out of the derivation and fails ``raw_files_readable``, see docs/dq.md "Raw files"), the others
are still derived, and the exit status is 1 at the end with a summary (2: bad arguments).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time

from .. import schemas
from ..settings import load_settings
from ..storage import layout
from ..storage.fs import Storage
from ..capture.housekeeping import DERIVED_TMP_AGE_SEC
from ..gate.run import QUARANTINED, gate_partition
from ..gate.verdict import Acceptance, who
from ..progress import Progress
from ..storage.objectstore import data_root
from .derive import Window
from .rawread import partition_files

log = logging.getLogger(__name__)

_DATE_DIR = re.compile(r"/raw/date=(\d{4}-\d{2}-\d{2})/symbol=([A-Z0-9]+)/")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="settings file (default config/system.yaml or $OFI_CVD_CONFIG)")
    p.add_argument("--data-dir", help="data root holding raw/ and ofi_cvd/ (default: settings data_dir)")
    p.add_argument("--date", action="append",
                   help="UTC date YYYY-MM-DD (repeatable); default: every date found under raw/")
    p.add_argument("--symbols", help="comma-separated symbols (default: the configured symbols)")
    p.add_argument("--kinds", default=",".join(schemas.DERIVED_KINDS),
                   help="derived tables to write (default: all five)")
    p.add_argument("--dry-run", action="store_true",
                   help="compute and check, print the verdict, publish nothing")
    p.add_argument("--publish-on-fail", action="store_true",
                   help="publish even if blocking checks fail (an explicit acceptance, recorded "
                        "in quarantine/date=…/symbol=…/dq.json)")


def raw_partitions(storage: Storage, symbols: list[str]) -> list[tuple[str, str]]:
    """(date, symbol) pairs that have raw files, for the wanted ``symbols``."""
    found = set()
    for path in storage.list_files("raw"):
        m = _DATE_DIR.search(path.replace("\\", "/"))
        if m and m.group(2) in symbols:
            found.add((m.group(1), m.group(2)))
    return sorted(found)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.data_dir:
        settings = settings.replace(data_dir=data_root(args.data_dir))
    symbols = ([s.strip().upper() for s in args.symbols.split(",") if s.strip()]
               if args.symbols else list(settings.symbols))
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in schemas.DERIVED_KINDS]
    if bad:
        print(f"ofi-cvd-harvest derive: unknown kind(s) {', '.join(bad)}")
        return 2
    storage = Storage(settings.data_dir)
    try:   # a derivation killed mid-write leaves its temp file; spare ones still being written
        if storage.local:   # an object store never holds temp objects (one PUT per table)
            storage.remove_stale_tmp("ofi_cvd", older_than_sec=DERIVED_TMP_AGE_SEC)
    except OSError as exc:
        log.warning("cannot scan for stale temp files: %s", exc)
    for d in args.date or []:
        if not layout.DATE_RE.match(d):
            print(f"ofi-cvd-harvest derive: bad --date {d!r} (YYYY-MM-DD)")
            return 2
    parts = ([(d, s) for d in args.date for s in symbols] if args.date
             else raw_partitions(storage, symbols))
    if not parts:
        print(f"no raw data under {storage.path('raw')} for {', '.join(symbols)}")
        return 1
    accept = (Acceptance(who(), "ofi-cvd-harvest derive --publish-on-fail")
              if args.publish_on_fail else None)
    quarantined: list[str] = []
    failed: list[str] = []
    progress = Progress(len(parts), label="derive")   # stderr: a line in place on a terminal
    for d, sym in progress.each(parts, lambda p: f"{p[0]} {p[1]}"):
        t0 = time.perf_counter()
        try:
            verdict = partition_files(storage, d, sym, Window.of(d, settings).regime_start)
            for path, reason in sorted(verdict.damaged.items()):
                print(f"{d} {sym}: damaged raw file left out: {path}: {reason}", file=sys.stderr)
            out = gate_partition(storage, settings, d, sym, kinds, run="ofi-cvd-harvest derive",
                                 dry_run=args.dry_run, accept=accept)
        except Exception as exc:   # one partition must not stop the others
            log.debug("derive %s %s failed", d, sym, exc_info=True)
            why = (str(exc).splitlines() or [""])[0][:300]
            print(f"{d} {sym}: FAILED: {type(exc).__name__}: {why}", file=sys.stderr)
            failed.append(f"{d}|{sym}")
            continue
        counts = " ".join(f"{kind}={out.described[kind]}" for kind in out.kinds)
        print(f"{d} {sym}: {counts} ({time.perf_counter() - t0:.1f} s): {out.summary()}")
        if out.status == QUARANTINED:
            quarantined.append(f"{d}|{sym}")
    if quarantined:
        print(f"quarantined (failed blocking DQ checks, not published): {', '.join(quarantined)}; "
              "see quarantine/date=…/symbol=…/dq.json, accept with `ofi-cvd-harvest publish`")
    if failed or quarantined:
        print(f"derive: {len(parts)} partitions, {len(failed)} failed"
              f"{' (' + ', '.join(failed) + ')' if failed else ''}, {len(quarantined)} quarantined",
              file=sys.stderr)
        return 1
    return 0
