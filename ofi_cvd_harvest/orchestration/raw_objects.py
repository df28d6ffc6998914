"""The raw-partitions scan on an object-store lake (docs/deploy.md, "Object storage").

On a local root :func:`.raw_assets.scan_raw` skips a stream directory whose mtime did not change.
An object store has no directories and no mtimes to skip by, and a year of the universe is
millions of objects, so here the scan lists only the prefixes that can change — today's and
yesterday's (late files of a closed day: a spool emptying after an outage) — per symbol and
stream, starting after the last key seen (``StartAfter``): each tick costs one LIST request per
(date, symbol, stream) and returns only the new objects, whose footers alone are read.
"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage.fs import Storage


def _dates(now: float) -> list[str]:
    t = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
    return [(t - dt.timedelta(days=1)).strftime("%Y-%m-%d"), t.strftime("%Y-%m-%d")]


def _list_after(store, prefix: str, after: str) -> list[dict]:
    kw = {"Bucket": store.bucket, "Prefix": prefix}
    if after:
        kw["StartAfter"] = prefix + after
    out = []
    for page in store.client.get_paginator("list_objects_v2").paginate(**kw):
        out.extend(o for o in page.get("Contents", ()) if o["Key"].endswith(".parquet"))
    return out


def newest_mtime(storage: Storage, rel_dir: str) -> float | None:
    """Newest LastModified (epoch s) of the objects under ``rel_dir`` (None: none)."""
    store, prefix = storage.object_store()
    objs = _list_after(store, f"{prefix}/{rel_dir}/" if prefix else f"{rel_dir}/", "")
    return max((o["LastModified"].timestamp() for o in objs), default=None)


def scan_raw_objects(storage: Storage, cursor: str | None, now: float, report_interval_sec: float,
                     symbols: list[str], streams: list[str], make_update) -> tuple[list, str]:
    """Like :func:`.raw_assets.scan_raw` (same cursor entries: ``n``, ``rows``, ``last``, ``r``)
    over today's and yesterday's prefixes only; ``make_update(**fields)`` builds an update."""
    state: dict[str, dict] = json.loads(cursor) if cursor else {}
    store, prefix = storage.object_store()
    today = _dates(now)[1]
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
