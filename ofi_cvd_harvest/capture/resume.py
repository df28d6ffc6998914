"""A resume point rebuilt from the raw files when the checkpoint is corrupt or absent on a host
taking over (docs/capture.md "Checkpoint and restart", "Leases").

Starting afresh after a corrupt ``checkpoint.json`` leaves the downtime unhealed for good
(the first new trade has nothing to be compared with). The raw files hold what the checkpoint
summarised: per symbol the highest trade id written and its event time, the last book update
id, and — in the newest files — the id holes still owed. So the resume point is rebuilt from
them, and the corrupt file is renamed aside (``checkpoint.json.corrupt-<UTC time>``) for
inspection instead of being overwritten.

The highest id comes from the Parquet footers' column statistics (no data read), falling back
to reading the column; holes are looked for over the files of the last :data:`HOLES_WINDOW_MS`
(the ones the last run's healer may still have been working on), at most :data:`MAX_GAPS`.
Damaged files are skipped (they are named by the DQ check ``raw_files_readable``).

Takeover (:func:`takeover`): a capture with no checkpoint at all rebuilds the point the same way
when the lake is the shared truth of who captured what — always for an ``s3://`` lake (the
checkpoint is host-local by design), and for a local lake only under a shard lease. Without a
lease nothing says the files in a local data directory are this capture's sequence to continue:
another capture (its own artifacts directory) may be writing the same symbols into it right now,
and healing "its" ranges would write every trade twice; and an old directory reused for a fresh
start would owe REST days of trades. The lease proves that this process is the only writer of
the shard's symbols and that the previous writer was the holder before it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..protocol.tradegaps import id_intervals
from ..storage import layout
from ..storage.fs import Storage
from . import checkpoint as ckpt

HOLES_WINDOW_MS = 3_600_000
MAX_GAPS = 1000
_DATE_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})$")
_PART_RE = re.compile(r"part-(\d+)-\d+\.parquet$")


def set_aside(path: str | os.PathLike) -> Path | None:
    """Rename the corrupt checkpoint to ``<name>.corrupt-<UTC time>``; None if that fails."""
    p = Path(path)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = p.with_name(f"{p.name}.corrupt-{stamp}")
    try:
        os.replace(p, dest)
    except OSError:
        return None
    return dest


def _dates(storage: Storage) -> list[str]:
    """Raw dates present, newest first."""
    try:
        sel = storage.fs.get_file_info(_selector(storage.path("raw")))
    except OSError:
        return []
    found = [m.group(1) for i in sel if (m := _DATE_DIR.search(i.path))]
    return sorted(found, reverse=True)


def _selector(path: str):
    import pyarrow.fs as pafs
    return pafs.FileSelector(path, recursive=False, allow_not_found=True)


def _max_stat(path: str, fs, column: str) -> int | None:
    """Max of an int64 column from the footer statistics, else by reading the column."""
    pf = pq.ParquetFile(path, filesystem=fs)
    md = pf.metadata
    idx = pf.schema_arrow.get_field_index(column)
    best = None
    for r in range(md.num_row_groups):
        st = md.row_group(r).column(idx).statistics
        if st is None or not st.has_min_max:
            v = pc.max(pf.read_row_group(r, columns=[column]).column(0)).as_py()
        else:
            v = st.max
        if v is not None:
            best = v if best is None else max(best, v)
    return best


def _newest_files(storage: Storage, symbol: str, stream: str) -> list[str]:
    """The files of the newest date that has any for ``stream`` (time-ordered by name)."""
    for d in _dates(storage):
        files = storage.list_files(layout.raw_dir(d, symbol, stream))
        if files:
            return files
    return []


def _last_of(storage: Storage, files: list[str], column: str) -> tuple[int | None, str | None]:
    """The highest ``column`` value over ``files`` and the file holding it (damaged: skipped)."""
    best, where = None, None
    for p in files:
        try:
            v = _max_stat(p, storage.fs, column)
        except (OSError, pa.ArrowException, ValueError, KeyError, IndexError):
            continue
        if v is not None and (best is None or v > best):
            best, where = v, p
    return best, where


def _holes(storage: Storage, files: list[str], last_id: int) -> tuple[list[list[int]], int | None]:
    """Id holes among the newest files (those within HOLES_WINDOW_MS of the last one) and the
    event time of ``last_id``."""
    starts = [(int(m.group(1)) if (m := _PART_RE.search(p)) else None, p) for p in files]
    newest = max((s for s, _ in starts if s is not None), default=None)
    recent = [p for s, p in starts if newest is None or s is None or s >= newest - HOLES_WINDOW_MS]
    ids: list[int] = []
    last_ts = None
    for p in recent:
        try:
            t = pq.read_table(p, filesystem=storage.fs, columns=["agg_trade_id", "event_ts_ms"])
        except (OSError, pa.ArrowException, ValueError, KeyError):
            continue
        col = t.column("agg_trade_id").to_pylist()
        ids += col
        if last_id in col:
            last_ts = t.column("event_ts_ms")[col.index(last_id)].as_py()
    present = id_intervals(ids)
    gaps = [[a[1] + 1, b[0] - 1] for a, b in zip(present, present[1:])]
    return gaps[-MAX_GAPS:], last_ts


def from_raw(storage: Storage, symbols: list[str] | tuple[str, ...]) -> ckpt.Checkpoint:
    """Per symbol: the last trade id written, its event time, the holes of the last hour and
    the last book update id, as the raw files show them."""
    cp = ckpt.Checkpoint()
    for sym in symbols:
        trades = _newest_files(storage, sym, "agg_trade")
        last_id, _ = _last_of(storage, trades, "agg_trade_id")
        if last_id is None:
            continue
        gaps, last_ts = _holes(storage, trades, last_id)
        last_u, _ = _last_of(storage, _newest_files(storage, sym, "book"), "final_update_id")
        cp.symbols[sym] = ckpt.SymbolCheckpoint(last_id, gaps, last_ts, last_u)
    return cp


def from_sources(storages: list[Storage], symbols) -> ckpt.Checkpoint:
    """:func:`from_raw` over several roots (an s3:// lake and the local spool of files not yet
    published there): per symbol the point with the highest trade id."""
    best = ckpt.Checkpoint()
    for st in storages:
        for sym, c in from_raw(st, symbols).symbols.items():
            cur = best.symbols.get(sym)
            if cur is None or (c.last_trade_id or -1) > (cur.last_trade_id or -1):
                best.symbols[sym] = c
    return best


def rebuild(storage: Storage | list[Storage], path: str | os.PathLike, symbols,
            error: Exception, log: logging.Logger, ops) -> ckpt.Checkpoint:
    """The capture's reaction to a corrupt checkpoint: keep it aside, rebuild from the raw
    files, say so in the log and as ops rows (``checkpoint_unreadable``, ``checkpoint_rebuilt``)."""
    kept = set_aside(path)
    cp = from_sources(storage if isinstance(storage, list) else [storage], symbols)
    last = {s: c.last_trade_id for s, c in cp.symbols.items()}
    log.error("%s; kept as %s; resuming from the raw files: %s", error, kept, last)
    ops.emit("checkpoint_unreadable", {"error": str(error)[:200],
                                       "kept_as": str(kept) if kept else None})
    ops.emit("checkpoint_rebuilt", {"source": "raw", "last_trade_ids": last,
                                    "open_gaps": {s: len(c.open_gaps) for s, c in cp.symbols.items()}})
    return cp


def takeover(roots: list[Storage], symbols, ops, log: logging.Logger,
             where: str) -> ckpt.Checkpoint | None:
    """No local checkpoint (a new or replacement host): the resume point from the raw files
    already in the lake (and an s3:// lake's spool), so the downtime since the last capture is
    healed through REST; says so in the log and as ``checkpoint_rebuilt`` with
    ``"source": "lake"``. None when the lake holds nothing for these symbols."""
    try:
        cp = from_sources(roots, symbols)
    except Exception as exc:   # an unreachable store must not stop the start
        log.warning("no resume point from %s: %s", where, exc)
        return None
    if not cp.symbols:
        return None
    last = {s: c.last_trade_id for s, c in cp.symbols.items()}
    log.warning("no local checkpoint: resuming from the raw files in %s: %s", where, last)
    ops.emit("checkpoint_rebuilt", {"source": "lake", "last_trade_ids": last,
                                    "open_gaps": {s: len(c.open_gaps)
                                                  for s, c in cp.symbols.items()}})
    return cp
