"""Raw capture tables declared to Dagster as external assets, and the scan that reports them.

The capture writes ``raw/date=…/symbol=…/stream=…/part-*.parquet`` itself (it is a long-running
job, not a materialisation), so ``raw_agg_trade``, ``raw_book`` and ``raw_ops`` are
:class:`dagster.AssetSpec` s with the shared date×symbol partitions. :func:`scan_raw` compares
the raw tree against a cursor and says which partitions gained files; the
``raw_partitions_sensor`` (sensors.py) turns that into ``AssetMaterialization`` events so the
UI shows the raw partitions filling and the derived assets become "stale" downstream of them.

The scan is cheap on purpose: a stream directory whose mtime did not change (a rename into it
changes it) is not listed again, and row counts are read from the footers of new files only.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..schemas import RAW_STREAMS
from ..settings import SYMBOL_RE, load_settings
from ..storage import layout
from ..storage.fs import Storage
from .columns import column_schema
from .partitions import PARTITIONS_START_DATE, configured_symbols, date_symbol_partitions

RAW_ASSET_KEYS = {stream: f"raw_{stream}" for stream in RAW_STREAMS}
RAW_GROUP = "raw"
# A partition that keeps growing is re-reported at most this often (the UI does not need an
# event per 60 s file); a change to a closed day (date < today UTC) is reported at once.
REPORT_INTERVAL_SEC = 900.0

_DESCRIPTIONS = {
    "agg_trade": "aggTrade rows written by the capture (ws + REST-healed), docs/reading.md raw_agg_trade.",
    "book": "Order book rows (top-N snapshot per depth message, gap flags), docs/reading.md raw_book.",
    "ops": "Capture operations log: connects, gaps, resyncs, clock drift, errors, docs/reading.md raw_ops.",
}


raw_specs = [
    dg.AssetSpec(
        RAW_ASSET_KEYS[stream],
        partitions_def=date_symbol_partitions,
        group_name=RAW_GROUP,
        description=_DESCRIPTIONS[stream] + " Written by capture_job; reported by raw_partitions_sensor.",
        kinds={"parquet"},
        metadata={
            "dagster/column_schema": column_schema(stream),
            "layout": f"data/raw/date=YYYY-MM-DD/symbol=SYM/stream={stream}/part-*.parquet",
        },
    )
    for stream in RAW_STREAMS
]


@dataclass(frozen=True)
class RawPartitionUpdate:
    """One stream directory that changed since the cursor and is due to be reported."""

    stream: str
    date: str
    symbol: str
    files: int
    bytes: int
    rows: int
    latest_file: str
    path: str

    @property
    def asset_key(self) -> str:
        return RAW_ASSET_KEYS[self.stream]

    @property
    def partition_key(self) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({"date": self.date, "symbol": self.symbol})

    def materialization(self) -> dg.AssetMaterialization:
        return dg.AssetMaterialization(
            asset_key=self.asset_key,
            partition=self.partition_key,
            metadata={
                "files": self.files,
                "rows": self.rows,
                "bytes": self.bytes,
                "latest_file": self.latest_file,
                "path": dg.MetadataValue.path(self.path),
            },
        )


def _subdirs(fs: pafs.FileSystem, path: str, prefix: str) -> list[pafs.FileInfo]:
    sel = pafs.FileSelector(path, recursive=False, allow_not_found=True)
    return sorted((i for i in fs.get_file_info(sel)
                   if i.type == pafs.FileType.Directory and i.base_name.startswith(prefix)),
                  key=lambda i: i.base_name)


def _today_utc(now: float) -> str:
    return layout.utc_date(int(now * 1000))


def raw_symbols(storage: Storage, now: float) -> set[str]:
    """Symbols with a raw directory (valid names only, ``^[A-Z0-9]{2,20}$``): every date from
    ``PARTITIONS_START_DATE`` on a local root; today's and yesterday's prefixes on an object
    store (one delimited LIST each, orchestration/raw_objects.py)."""
    if not storage.local:
        from .raw_objects import listed_symbols

        found = listed_symbols(storage, now)
    else:
        found = set()
        for date_dir in _subdirs(storage.fs, storage.path("raw"), "date="):
            if date_dir.base_name[len("date="):] >= PARTITIONS_START_DATE:
                found.update(d.base_name[len("symbol="):]
                             for d in _subdirs(storage.fs, date_dir.path, "symbol="))
    return {s for s in found if SYMBOL_RE.match(s)}


def scan_raw(storage: Storage, cursor: str | None, now: float,
             report_interval_sec: float = REPORT_INTERVAL_SEC,
             symbols: Collection[str] | None = None) -> tuple[list[RawPartitionUpdate], str]:
    """Raw partitions of ``symbols`` (default: the configured ones) to report and the new
    cursor (JSON). Pure apart from reading the tree. The sensor passes the symbol partitions
    the instance knows: a symbol's files are reported once it is a member.

    Cursor entries (per ``stream|date|symbol``): ``m`` dir mtime seen at the last report,
    ``n`` files, ``rows``, ``last`` latest file name, ``r`` time of the last report.
    """
    if symbols is None:
        symbols = configured_symbols(load_settings())
    if not storage.local:   # s3:// lake: list only today's and yesterday's new objects
        from .raw_objects import scan_raw_objects

        return scan_raw_objects(storage, cursor, now, report_interval_sec, sorted(symbols),
                                list(RAW_ASSET_KEYS), RawPartitionUpdate)
    state: dict[str, dict] = json.loads(cursor) if cursor else {}
    valid_symbols = set(symbols)
    today = _today_utc(now)
    fs = storage.fs
    updates: list[RawPartitionUpdate] = []
    for date_dir in _subdirs(fs, storage.path("raw"), "date="):
        date = date_dir.base_name[len("date="):]
        if date < PARTITIONS_START_DATE:
            continue
        for sym_dir in _subdirs(fs, date_dir.path, "symbol="):
            symbol = sym_dir.base_name[len("symbol="):]
            if symbol not in valid_symbols:
                continue
            for stream_dir in _subdirs(fs, sym_dir.path, "stream="):
                stream = stream_dir.base_name[len("stream="):]
                if stream not in RAW_ASSET_KEYS:
                    continue
                key = f"{stream}|{date}|{symbol}"
                prev = state.get(key, {})
                mtime = stream_dir.mtime_ns  # None on object stores: always list
                if mtime is not None and prev.get("m") == mtime:
                    continue
                due = (not prev or date < today
                       or now - float(prev.get("r", 0)) >= report_interval_sec)
                if not due:
                    continue  # keep the old "m" so the next tick looks again
                files = [i for i in fs.get_file_info(
                    pafs.FileSelector(stream_dir.path, recursive=False))
                    if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")]
                if not files:
                    continue
                files.sort(key=lambda i: i.base_name)
                rows = int(prev.get("rows", 0))
                last = prev.get("last", "")
                newer = [i for i in files if i.base_name > last]
                if len(files) - len(newer) != int(prev.get("n", 0)):
                    # files removed, or a new one sorts before the last seen name: recount
                    rows, newer = 0, files
                for info in newer:
                    try:
                        with fs.open_input_file(info.path) as f:
                            rows += pq.ParquetFile(f).metadata.num_rows
                    except (OSError, pa.ArrowException):
                        pass  # damaged: counted as 0 rows; raw_files_readable names it
                if (prev.get("n") == len(files) and prev.get("last") == files[-1].base_name
                        and prev.get("rows") == rows):
                    state[key] = {**prev, "m": mtime}  # touched, nothing new
                    continue
                state[key] = {"m": mtime, "n": len(files), "rows": rows,
                              "last": files[-1].base_name, "r": now}
                updates.append(RawPartitionUpdate(
                    stream=stream, date=date, symbol=symbol, files=len(files),
                    bytes=sum(int(i.size or 0) for i in files), rows=rows,
                    latest_file=files[-1].base_name, path=stream_dir.path))
    return updates, json.dumps(state, sort_keys=True, separators=(",", ":"))


def latest_raw_age_sec(storage: Storage, date: str, symbols: list[str], now: float) -> float | None:
    """Seconds since the newest raw file of ``date`` was finalised (None: no file) — the
    capture sensor's "is data still flowing" figure."""
    newest = None
    if not storage.local:   # no directory mtimes on an object store: the newest object's
        from .raw_objects import newest_mtime

        for symbol in symbols:
            for stream in RAW_STREAMS:
                ts = newest_mtime(storage, f"raw/date={date}/symbol={symbol}/stream={stream}")
                newest = ts if newest is None or (ts is not None and ts > newest) else newest
        return None if newest is None else max(0.0, now - newest)
    for symbol in symbols:
        for stream in RAW_STREAMS:
            info = storage.fs.get_file_info(
                storage.path(f"raw/date={date}/symbol={symbol}/stream={stream}"))
            if info.type == pafs.FileType.Directory and info.mtime is not None:
                ts = info.mtime.timestamp()
                newest = ts if newest is None else max(newest, ts)
    return None if newest is None else max(0.0, now - newest)
