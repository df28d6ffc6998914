"""Publish (all tables or none), quarantine, and the explicit acceptance of a quarantined partition.

Publishing a partition's tables is a *journal* of renames (docs/dq.md, "Crash safety"): with the
area lock held, the list of ``(staged file, published file)`` moves and what to do with the
partition's quarantine is written to ``.staging/date=D/symbol=S/journal.json`` (fsynced, renamed
into place); then each table is moved by one atomic rename, in the fixed order of the list;
then the quarantine is cleared (or the acceptance recorded) and the journal deleted. A file is
never half-written (every staged file was fsynced under its final name before the journal
exists). If the process dies after the journal is written, the next gate call anywhere on the
data root (any run, ``derive`` or ``publish``) rolls the journal forward before doing anything
else — moves whose source is gone were done — so the partition ends all new; without a journal
nothing was moved and it stays all old. Between the crash and that next call a reader may see
some tables new and some old (each one whole).

Quarantining moves the run's staged partition directory (the selected tables + ``dq.json``) to
``quarantine/date=D/symbol=S`` in one rename, replacing the previous quarantined version.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from ..schemas import DERIVED_KINDS
from ..storage import layout
from . import verdict as vd
from .area import (STAGING_DIR, TRASH_PREFIX, RunStage, area_lock, fsync_dir, prune_empty,
                   quarantine_dir, remove_tree, stale_entries, staging_dir)

JOURNAL = "journal.json"
PAUSE_ENV = "OFI_CVD_GATE_PAUSE_AT"   # tests only: "staged" | "journal" | "moved:<kind>"
PAUSE_FILE_ENV = "OFI_CVD_GATE_PAUSE_FILE"


def pause_point(point: str) -> None:
    """Test hook: stop here (touching ``$OFI_CVD_GATE_PAUSE_FILE``) so a test can SIGKILL the
    process at a known point between staging and publishing. Inert unless the env var names
    this point."""
    if os.environ.get(PAUSE_ENV) != point:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(3600)


class NothingQuarantined(Exception):
    """``publish`` asked for a partition that has no quarantined tables."""


def _final_rel(date: str, symbol: str, kind: str) -> str:
    return layout.derived_file(date, symbol, kind)


def _write_journal(path: Path, journal: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{JOURNAL}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        json.dump(journal, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _apply(root: Path, journal: dict) -> None:
    """Do what the journal says; idempotent (a move whose source is gone was done)."""
    for src_rel, dst_rel in journal["moves"]:
        src, dst = root / src_rel, root / dst_rel
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)          # atomic: readers see the old file or the new one
            fsync_dir(dst.parent)
        for other in dst.parent.glob("*.parquet"):   # an older layout's files
            if other != dst:
                other.unlink(missing_ok=True)
        pause_point(f"moved:{Path(dst_rel).parent.name.removeprefix('kind=')}")
    q = quarantine_dir(root, journal["date"], journal["symbol"])
    record = journal.get("verdict")
    if record is None:                     # a clean derivation replaces any quarantined version
        remove_tree(q)
        prune_empty(q.parent, root)
    else:                                  # accepted: keep only the verdict, saying who and when
        for kind_dir in q.glob("kind=*"):
            remove_tree(kind_dir)
        vd.write(q / vd.NAME, record)


def _run_journal(root: Path, date: str, symbol: str, moves: list[tuple[str, str]],
                 record: dict | None) -> None:
    """With the area lock held: write the journal, apply it, delete it."""
    jpath = staging_dir(root, date, symbol) / JOURNAL
    journal = {"date": date, "symbol": symbol, "moves": [list(m) for m in moves],
               "verdict": record}
    _write_journal(jpath, journal)
    pause_point("journal")
    _apply(root, journal)
    jpath.unlink()
    fsync_dir(jpath.parent)


def recover(root: Path) -> dict[str, list[str]]:
    """Finish what crashed runs left: roll forward unfinished publishes (journals), remove
    staged tables of runs that are gone and trash of an interrupted quarantine swap. Returns
    ``{"rolled_forward": [partition, …], "removed": [path, …]}`` (logged by callers)."""
    out: dict[str, list[str]] = {"rolled_forward": [], "removed": []}
    base = root / STAGING_DIR
    if not base.is_dir():
        return out
    with area_lock(root):
        for jpath in sorted(base.glob(f"date=*/symbol=*/{JOURNAL}")):
            try:
                journal = json.loads(jpath.read_text())
            except (OSError, ValueError):   # never half-written (renamed into place): foreign
                jpath.unlink(missing_ok=True)
                continue
            _apply(root, journal)
            jpath.unlink()
            out["rolled_forward"].append(f"{journal['date']}|{journal['symbol']}")
        for entry in stale_entries(root):
            remove_tree(entry)
            out["removed"].append(str(entry.relative_to(root)))
            prune_empty(entry.parent, base)
        for part in sorted(base.glob("date=*/symbol=*")):
            prune_empty(part, base)
    return out


def publish(stage: RunStage, kinds: list[str], record: dict | None = None) -> dict[str, str]:
    """Move the staged ``kinds`` into ``ofi_cvd/`` (all or none, see the module doc). ``record``:
    the acceptance verdict to keep in ``dq.json``; None clears the partition's quarantine.
    Returns the published paths."""
    moves = [(stage.table_rel(k), _final_rel(stage.date, stage.symbol, k)) for k in kinds]
    with area_lock(stage.root):
        _run_journal(stage.root, stage.date, stage.symbol, moves, record)
    return {k: str(stage.root / dst) for k, (_, dst) in zip(kinds, moves)}


def quarantine(stage: RunStage, kinds: list[str], record: dict) -> dict[str, str]:
    """Move the staged ``kinds`` and ``record`` (dq.json) to ``quarantine/date=D/symbol=S``,
    replacing what was quarantined before; ``ofi_cvd/`` is not touched. Returns the paths."""
    root, src = stage.root, stage.partition
    for kind_dir in src.glob("kind=*"):
        if kind_dir.name.removeprefix("kind=") not in kinds:
            remove_tree(kind_dir)
    vd.write(src / vd.NAME, record)
    q = quarantine_dir(root, stage.date, stage.symbol)
    with area_lock(root):
        trash = None
        if q.exists():
            trash = staging_dir(root, stage.date, stage.symbol) / f"{TRASH_PREFIX}{uuid.uuid4().hex[:8]}"
            os.rename(q, trash)
        q.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, q)
        fsync_dir(q.parent)
        if trash is not None:
            remove_tree(trash)
    return {k: str(q / f"kind={k}" / "part-00000.parquet") for k in kinds}


def accept(root: Path, date: str, symbol: str, acceptance: vd.Acceptance) -> tuple[dict[str, str], dict]:
    """``ofi-cvd-harvest publish``: move the quarantined tables into ``ofi_cvd/`` (all or none)
    and record the acceptance in ``dq.json``. Returns (published paths, the new verdict)."""
    q = quarantine_dir(root, date, symbol)
    recover(root)
    with area_lock(root):
        record = vd.read(root, date, symbol)
        kinds = sorted(p.parent.name.removeprefix("kind=") for p in q.glob("kind=*/part-00000.parquet"))
        if not kinds:
            status = (record or {}).get("status")
            raise NothingQuarantined(
                f"no quarantined tables for {date}|{symbol} under {q}"
                + (f" (dq.json says {status!r})" if status else ""))
        kinds = [k for k in DERIVED_KINDS if k in kinds]   # the fixed publishing order
        record = dict(record or {"partition": f"{date}|{symbol}", "date": date, "symbol": symbol})
        record["status"] = "accepted"
        record["accepted"] = acceptance.record(record.get("failed_checks", []))
        record["tables"] = kinds
        moves = [(str((q / f"kind={k}" / "part-00000.parquet").relative_to(root)),
                  _final_rel(date, symbol, k)) for k in kinds]
        _run_journal(root, date, symbol, moves, record)
    return {k: str(root / _final_rel(date, symbol, k)) for k in kinds}, record


__all__ = ["JOURNAL", "NothingQuarantined", "accept", "publish", "quarantine", "recover"]
