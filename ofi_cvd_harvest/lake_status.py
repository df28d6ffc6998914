"""``ofi-cvd-harvest status``: what is in the lake, in one look (docs/reading.md "Status").

* captured — per UTC date × symbol: files, rows and bytes per raw stream, the newest file and
  its age (a capture that stopped writing shows here first);
* published — per date × symbol: rows and bytes per derived table, when it was published, and
  who accepted it if it failed its checks (``dq.json`` status ``accepted``);
* quarantined — partitions held back by the DQ gate, with the failed checks from ``dq.json``;
* not derived — raw partitions with neither a published nor a quarantined version;
* the last DQ reports (``artifacts/dq_reports/dq_*.json``) and their verdicts.

Rows come from the Parquet footers (no data pages are read). Listing goes through
:mod:`ofi_cvd_harvest.read`, so the layout is known in one place. ``--json`` prints the same as
one JSON document for scripts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import read, schemas
from .storage.fs import Storage

FORMAT = 1
DQ_REPORTS = 5     # the latest reports shown


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).isoformat(timespec="seconds")


def _files_facts(storage: Storage, paths: tuple[str, ...]) -> dict[str, Any]:
    infos = storage.fs.get_file_info(list(paths))
    rows, unreadable = 0, []
    for p in paths:
        try:
            with storage.fs.open_input_file(p) as f:
                rows += pq.ParquetFile(f).metadata.num_rows
        except Exception:   # a damaged file is counted, named, and does not stop the report
            unreadable.append(p)
    mtimes = [i.mtime.timestamp() for i in infos if i.type == pafs.FileType.File and i.mtime]
    out = {"files": len(paths), "rows": rows, "bytes": sum(i.size or 0 for i in infos),
           "newest_mtime": max(mtimes) if mtimes else None}
    if unreadable:
        out["unreadable"] = unreadable
    return out


def _verdict(root: Path, date: str, symbol: str) -> dict | None:
    try:
        out = json.loads((root / read.QUARANTINE_DIR / f"date={date}" / f"symbol={symbol}"
                          / "dq.json").read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def _dq_reports(artifacts: Path | None, n: int = DQ_REPORTS) -> list[dict[str, Any]]:
    if artifacts is None:
        return []
    out = []
    for path in sorted((artifacts / "dq_reports").glob("dq_*.json"), reverse=True)[:n]:
        try:
            rep = json.loads(path.read_text())
            overall = rep.get("overall", {})
            out.append({"path": str(path), "generated_at": rep.get("generated_at"),
                        "verdict": overall.get("verdict"), "failed": overall.get("failed", []),
                        "warnings": overall.get("warnings", []),
                        "symbols": rep.get("symbols", []), "dates": rep.get("dates", [])})
        except (OSError, ValueError, AttributeError) as exc:
            out.append({"path": str(path), "verdict": None, "error": f"unreadable: {exc}"})
    return out


def collect(data_dir, artifacts_dir=None, now: float | None = None) -> dict[str, Any]:
    """The status document (what ``--json`` prints)."""
    now = time.time() if now is None else now
    storage = Storage(data_dir)
    root = Path(storage.root)
    captured: dict[tuple[str, str], dict] = {}
    for stream in schemas.RAW_STREAMS:
        for p in read.parts(read.RAW_PREFIX + stream, storage=storage):
            e = captured.setdefault((p.date, p.symbol), {"date": p.date, "symbol": p.symbol,
                                                         "streams": {}})
            e["streams"][stream] = _files_facts(storage, p.files)
    for e in captured.values():
        newest = [s.pop("newest_mtime") for s in e["streams"].values()]
        newest = [t for t in newest if t is not None]
        e["bytes"] = sum(s["bytes"] for s in e["streams"].values())
        e["last_file_at"] = _iso(max(newest)) if newest else None
        e["last_file_age_sec"] = round(now - max(newest), 1) if newest else None
    published: dict[tuple[str, str], dict] = {}
    quarantined: dict[tuple[str, str], dict] = {}
    for kind in schemas.DERIVED_KINDS:
        published_parts = read.parts(kind, storage=storage)
        quarantined_parts = [p for p in read.parts(kind, storage=storage, include_quarantine=True)
                             if p.quarantined]
        for target, found in ((published, published_parts), (quarantined, quarantined_parts)):
            for p in found:
                e = target.setdefault((p.date, p.symbol), {"date": p.date, "symbol": p.symbol,
                                                           "tables": {}})
                facts = _files_facts(storage, p.files)
                facts["written_at"] = _iso(facts.pop("newest_mtime"))
                e["tables"][kind] = facts
    for key, e in published.items():
        v = _verdict(root, *key) if storage.local else None
        e["rows"] = sum(t["rows"] for t in e["tables"].values())
        e["accepted"] = (v or {}).get("accepted") if (v or {}).get("status") == "accepted" else None
        e["newer_version_quarantined"] = key in quarantined
    for key, e in quarantined.items():
        v = (_verdict(root, *key) if storage.local else None) or {}
        e.update({"status": v.get("status"), "failed_checks": v.get("failed_checks", []),
                  "warnings": v.get("warnings", []), "since": v.get("time"), "run": v.get("run"),
                  "consecutive_failures": v.get("consecutive_failures"),
                  "verdict_path": str(root / read.QUARANTINE_DIR / f"date={key[0]}"
                                      / f"symbol={key[1]}" / "dq.json"),
                  "published_version": key in published})
    pending = sorted(k for k in captured if k not in published and k not in quarantined)
    return {
        "format": FORMAT, "generated_at": _iso(now), "data_dir": str(root),
        "captured": [captured[k] for k in sorted(captured)],
        "published": [published[k] for k in sorted(published)],
        "quarantined": [quarantined[k] for k in sorted(quarantined)],
        "not_derived": [{"date": d, "symbol": s} for d, s in pending],
        "dq_reports": _dq_reports(Path(artifacts_dir) if artifacts_dir else None),
        "totals": {
            "raw_bytes": sum(e["bytes"] for e in captured.values()),
            "raw_partitions": len(captured), "published_partitions": len(published),
            "quarantined_partitions": len(quarantined), "not_derived_partitions": len(pending),
        },
    }


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _age(sec: float | None) -> str:
    if sec is None:
        return "-"
    if sec < 120:
        return f"{sec:.0f} s"
    return f"{sec / 60:.0f} min" if sec < 7200 else f"{sec / 3600:.1f} h"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [head] + [[str(c) for c in r] for r in rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.rjust(w) if i > 1 else c.ljust(w)   # noqa: E731
                              for i, (c, w) in enumerate(zip(r, width)))
    return [fmt(cells[0])] + [fmt(r) for r in cells[1:]]


def render(doc: dict[str, Any]) -> str:
    out = [f"lake {doc['data_dir']} at {doc['generated_at']}"]
    out.append(f"\ncaptured (raw): {len(doc['captured'])} partitions, {_mb(doc['totals']['raw_bytes'])}")
    rows = [[e["date"], e["symbol"],
             *(f"{e['streams'].get(s, {}).get('rows', 0):,}" for s in schemas.RAW_STREAMS),
             sum(s["files"] for s in e["streams"].values()), _mb(e["bytes"]), _age(e["last_file_age_sec"])]
            for e in doc["captured"]]
    if rows:
        out += _table(["date", "symbol", "trades", "book rows", "ops rows", "files", "size",
                       "last file age"], rows)
    out.append(f"\npublished (derived, passed the DQ gate or accepted): {len(doc['published'])} partitions")
    rows = [[e["date"], e["symbol"], *(f"{e['tables'].get(k, {}).get('rows', '-'):,}"
                                       if k in e["tables"] else "-" for k in schemas.DERIVED_KINDS),
             max((t["written_at"] or "" for t in e["tables"].values()), default=""),
             ("accepted by " + e["accepted"]["by"]) if e.get("accepted") else
             ("newer version quarantined" if e["newer_version_quarantined"] else "")]
            for e in doc["published"]]
    if rows:
        out += _table(["date", "symbol", *schemas.DERIVED_KINDS, "published at", "note"], rows)
    out.append(f"\nquarantined (failed blocking DQ checks; see dq.json, accept with "
               f"`ofi-cvd-harvest publish`): {len(doc['quarantined'])} partitions")
    for e in doc["quarantined"]:
        out.append(f"  {e['date']} {e['symbol']}: failed {', '.join(e['failed_checks']) or '?'}"
                   f" since {e['since']} ({e['consecutive_failures']} in a row)"
                   f"{'; an older version is published' if e['published_version'] else ''}")
    if doc["not_derived"]:
        out.append("\nnot derived yet: " + ", ".join(f"{e['date']}|{e['symbol']}" for e in doc["not_derived"]))
    out.append(f"\nlast DQ reports: {len(doc['dq_reports'])}")
    for r in doc["dq_reports"]:
        failed = f" failed {', '.join(r['failed'])}" if r.get("failed") else ""
        out.append(f"  {Path(r['path']).name}: {r.get('verdict')}{failed}"
                   f" ({', '.join(r.get('symbols', []))} on {', '.join(r.get('dates', []))})")
    return "\n".join(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data root (default: settings data_dir)")
    p.add_argument("--artifacts-dir", help="artifacts root holding dq_reports/ (default: settings artifacts_dir)")
    p.add_argument("--config", help="settings file (default config/system.yaml or $OFI_CVD_CONFIG)")
    p.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def run(args: argparse.Namespace) -> int:
    data_dir, artifacts = args.data_dir, args.artifacts_dir
    if data_dir is None or artifacts is None:
        from .settings import load_settings
        s = load_settings(args.config)
        data_dir = data_dir or s.data_dir
        artifacts = artifacts or s.artifacts_dir
    if "://" not in str(data_dir) and not Path(data_dir).is_dir():
        print(f"ofi-cvd-harvest status: no data directory {data_dir}", file=sys.stderr)
        return 2
    doc = collect(data_dir, artifacts)
    print(json.dumps(doc, indent=1) if args.json else render(doc))
    return 0
