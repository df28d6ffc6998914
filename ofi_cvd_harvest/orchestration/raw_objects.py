"""The raw-partitions scan on an object-store lake (docs/deploy.md, "Object storage").

On a local root :func:`.raw_assets.scan_raw` skips a stream directory whose mtime did not change.
An object store has no directories and no mtimes to skip by, and a year of the universe is
millions of objects, so here the scan lists only the prefixes that can change — today's, and
yesterday's during the first hour after midnight (its last files) — per symbol and stream,
starting after the last key seen (``StartAfter``): a due partition costs one LIST request per
stream and returns only the new objects, whose footers alone are read. Today's partitions are
due every ``REPORT_INTERVAL_SEC`` (raw_assets.py), so the scan costs about
3 × 3600 / 900 = 12 LIST requests per symbol-hour (docs/deploy.md, "Costs").
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage.fs import Storage


LATE_FILES_SEC = 3600.0   # yesterday's prefixes are listed this long after midnight


def _dates(now: float) -> list[str]:
    """Today, and yesterday during the first hour after midnight (its last files)."""
    t = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
    today = t.strftime("%Y-%m-%d")
    if t.hour * 3600 + t.minute * 60 + t.second < LATE_FILES_SEC:
        return [(t - dt.timedelta(days=1)).strftime("%Y-%m-%d"), today]
    return [today]


def _list_after(store, prefix: str, after: str) -> list[dict]:
    kw = {"Bucket": store.bucket, "Prefix": prefix}
    if after:
        kw["StartAfter"] = prefix + after
    out = []
    for page in store.client.get_paginator("list_objects_v2").paginate(**kw):
        out.extend(o for o in page.get("Contents", ()) if o["Key"].endswith(".parquet"))
    return out


def listed_symbols(storage: Storage, now: float) -> set[str]:
    """Symbol names under today's (and, after midnight, yesterday's) ``raw/date=…/`` prefix:
    one delimited LIST per date, however many objects (the raw sensor's new symbols)."""
    store, prefix = storage.object_store()
    found: set[str] = set()
    for date in _dates(now):
        rel = f"raw/date={date}/"
        base = f"{prefix}/{rel}" if prefix else rel
        pages = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=base, Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", ()):
                name = common["Prefix"][len(base):].rstrip("/")
                if name.startswith("symbol="):
                    found.add(name[len("symbol="):])
    return found


# (bucket, prefix) -> (last key, newest LastModified, when listed): raw keys sort by time
# (part-<ms>-<seq>), so the next look lists only what came after the last key seen (one LIST
# request), and the capture and derive sensors (same code server) share one look per minute
_seen: dict[tuple[str, str], tuple[str, float | None, float]] = {}
NEWEST_TTL_SEC = 60.0


def newest_mtime(storage: Storage, rel_dir: str, ttl: float = NEWEST_TTL_SEC) -> float | None:
    """Newest LastModified (epoch s) of the objects under ``rel_dir`` (None: none), at most
    ``ttl`` s old."""
    store, prefix = storage.object_store()
    base = f"{prefix}/{rel_dir}/" if prefix else f"{rel_dir}/"
    last, newest, listed = _seen.get((store.bucket, base), ("", None, float("-inf")))
    if time.monotonic() - listed < ttl:
        return newest
    objs = _list_after(store, base, last)
    if objs:
        newest = max([o["LastModified"].timestamp() for o in objs] + ([newest] if newest else []))
        last = objs[-1]["Key"][len(base):]
    _seen[(store.bucket, base)] = (last, newest, time.monotonic())
    return newest


def scan_raw_objects(storage: Storage, cursor: str | None, now: float, report_interval_sec: float,
                     symbols: list[str], streams: list[str], make_update) -> tuple[list, str]:
    """Like :func:`.raw_assets.scan_raw` (same cursor entries: ``n``, ``rows``, ``last``, ``r``)
    over today's and yesterday's prefixes only; ``make_update(**fields)`` builds an update."""
    state: dict[str, dict] = json.loads(cursor) if cursor else {}
    store, prefix = storage.object_store()
    today = _dates(now)[-1]
    updates = []
    for date in _dates(now):
        for symbol in symbols:
            for stream in streams:
                key = f"{stream}|{date}|{symbol}"
                prev = state.get(key, {})
                due = not prev or date < today or now - float(prev.get("r", 0)) >= report_interval_sec
                if not due:
                    continue
                rel = f"raw/date={date}/symbol={symbol}/stream={stream}/"
                base = f"{prefix}/{rel}" if prefix else rel
                new = _list_after(store, base, prev.get("last", ""))
                if not new:
                    continue
                rows, size = int(prev.get("rows", 0)), int(prev.get("bytes", 0))
                for o in new:
                    try:
                        with storage.fs.open_input_file(f"{store.bucket}/{o['Key']}") as f:
                            rows += pq.ParquetFile(f).metadata.num_rows
                    except (OSError, pa.ArrowException):
                        pass   # damaged: counted as 0 rows; raw_files_readable names it
                    size += int(o["Size"])
                last = new[-1]["Key"][len(base):]
                n = int(prev.get("n", 0)) + len(new)
                state[key] = {"n": n, "rows": rows, "bytes": size, "last": last, "r": now}
                updates.append(make_update(stream=stream, date=date, symbol=symbol, files=n,
                                           bytes=size, rows=rows, latest_file=last,
                                           path=f"{storage.url}/{rel.rstrip('/')}"))
    return updates, json.dumps(state, sort_keys=True, separators=(",", ":"))
