"""Crash-safe staging: rows not yet in a final Parquet file, appended every second to Arrow
IPC stream files under ``raw/_segments/`` (docs/capture.md: on ``kill -9`` at most about one second
of book rows may be lost; trades are healed anyway).

A segment file belongs to one (stream, date) and one rotation generation, shared by every
symbol: each hand-over's stream table (one per stream, ``capture/buffers.py`` ``build_spans``)
is appended whole, one write and one flush per stream a second however many symbols there
are (issue 15: one file per symbol was 600 small writes a second at 300 symbols). A file is
deleted only once every partition whose rows it holds is durable (``capture/persistence.py``).
A process killed mid-run leaves its segments behind; the next start :func:`recover`\\s them,
split by symbol, into Parquet. The files end in ``.arrows`` and live in a ``_``-prefixed
directory, so Parquet globbing readers and pyarrow/polars hive discovery never see them. A
torn last batch (killed mid-append) is ignored. Local data directories only (append is not
portable to object stores). Files of the previous layout, one per (stream, date, symbol), are
still recovered (an upgrade after a crash).

Batches are lz4-compressed (Arrow IPC body compression, read back transparently): after a
full disk the segments of the backlog must fit in what little space was freed (measured in
docs/capture.md). A file that never received a complete batch (its first append failed,
e.g. on a full disk) is removed at once, so a failing disk does not leave a trail of empty
segment files behind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from .buffers import Span

SUFFIX = ".arrows"
DIRNAME = "_segments"
WRITE_OPTIONS = ipc.IpcWriteOptions(compression="lz4")
# ops segments only: the partition an ops row belongs to (its ``symbol`` column is "" for an
# event copied into every symbol's partition); agg_trade and book rows carry it as ``symbol``
PARTITION = "_partition"

FileKey = tuple[str, str]    # (stream, date): one file per generation
Key = tuple[str, str, str]   # (stream, date, symbol): one partition
# <run_id>-g<gen>n<n>-<stream>-<YYYY-MM-DD>[-<symbol>: the per-symbol files of earlier versions]
_NAME = re.compile(r"(?P<run>.+)-g(?P<gen>\d+)n(?P<n>\d+)-(?P<stream>[a-z_]+)-"
                   r"(?P<date>\d{4}-\d{2}-\d{2})(?:-(?P<symbol>[^-]+))?")


def frames(spans: Iterable[Span]) -> dict[FileKey, pa.Table]:
    """One hand-over's rows as one table per (stream, date), each one segment batch.

    Usually the stream's whole table of the hand-over, as built (no copy); a hand-over across
    UTC midnight holds rows of two dates in one stream table, so each date's rows are picked
    out. The ops partitions are small tables of their own, concatenated with their partition."""
    groups: dict[FileKey, list[Span]] = {}
    for s in spans:
        groups.setdefault((s.stream, s.date), []).append(s)
    return {key: _frame(key[0], ss) for key, ss in groups.items()}


def _frame(stream: str, spans: list[Span]) -> pa.Table:
    if stream == "ops":
        return pa.concat_tables([
            s.slice().append_column(PARTITION, pa.array([s.symbol] * s.rows, pa.string()))
            for s in spans]).combine_chunks()
    table = spans[0].table
    if any(s.table is not table for s in spans):
        return pa.concat_tables([s.slice() for s in spans]).combine_chunks()
    if sum(s.rows for s in spans) == table.num_rows:   # spans never overlap (build_spans)
        return table
    mask = np.zeros(table.num_rows, np.bool_)
    for s in spans:
        mask[s.offset:s.offset + s.rows] = True
    return table.filter(pa.array(mask))


class SegmentLog:
    def __init__(self, raw_dir: str | os.PathLike, run_id: str):
        self.dir = Path(raw_dir) / DIRNAME
        self.run_id = run_id
        self.generation = 0
        self._n = 0
        self._open: dict[FileKey, tuple[object, ipc.RecordBatchStreamWriter, str]] = {}

    def path_for(self, key: FileKey) -> str:
        stream, date = key
        self._n += 1
        return str(self.dir / f"{self.run_id}-g{self.generation:06d}n{self._n}-{stream}-{date}"
                              f"{SUFFIX}")

    def append(self, key: FileKey, table: pa.Table) -> str:
        """Append ``table`` (a :func:`frames` table) to the current generation's file of
        ``key``, one write and one flush; returns its path."""
        entry = self._open.get(key)
        fresh = entry is None
        if fresh:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.path_for(key)
            fh = open(path, "ab")
            try:
                entry = (fh, ipc.new_stream(fh, table.schema, options=WRITE_OPTIONS), path)
            except BaseException:
                _discard(fh, path)
                raise
            self._open[key] = entry
        fh, writer, path = entry
        try:
            writer.write_table(table)
            fh.flush()  # in the OS page cache: survives kill -9
        except BaseException:
            # a torn file keeps its complete batches (the batches staged earlier still name
            # it and release it once written); later rows go to a fresh file. A fresh file
            # holds no complete batch: nothing names it, so it goes now.
            del self._open[key]
            if fresh:
                _discard(fh, path)
            else:
                try:
                    fh.close()
                except OSError:
                    pass
            raise
        return path

    def roll(self) -> dict[FileKey, str]:
        """Close the current generation (at rotation); returns its files by key."""
        out: dict[FileKey, str] = {}
        for key, (fh, writer, path) in self._open.items():
            try:
                writer.close()
                fh.close()
            except (OSError, pa.ArrowException):
                pass
            out[key] = path
        self._open.clear()
        self.generation += 1
        return out

    def close(self) -> None:
        self.roll()

    @staticmethod
    def release(paths: Iterable[str]) -> None:
        for p in paths:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def _discard(fh, path: str) -> None:
    try:
        fh.close()
    except OSError:
        pass
    try:
        os.unlink(path)
    except OSError:
        pass


@dataclass
class Recovered:
    stream: str
    date: str
    symbol: str
    table: pa.Table
    paths: list[str]   # files shared with other groups: release them once all are written


def read_segment(path: str | os.PathLike) -> pa.Table | None:
    """All complete batches of one segment file (None if it holds none)."""
    batches = []
    schema = None
    try:
        with open(path, "rb") as fh:
            reader = ipc.open_stream(fh)
            schema = reader.schema
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
    except (pa.ArrowInvalid, OSError, EOFError):
        pass  # torn tail (killed mid-append) or an empty file: keep what is complete
    if schema is None or not batches:
        return None
    return pa.Table.from_batches(batches, schema)


def by_symbol(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """A shared segment's rows per partition symbol, each in its order of arrival."""
    col = PARTITION if PARTITION in table.column_names else "symbol"
    parts = table.column(col).combine_chunks()
    if col == PARTITION:
        table = table.drop_columns([PARTITION])
    if parts.null_count:   # cannot be placed in a partition (never written so)
        valid = parts.is_valid()
        table, parts = table.filter(valid), parts.filter(valid)
    enc = pc.dictionary_encode(parts)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(idx, kind="stable")
    counts = np.bincount(idx, minlength=len(enc.dictionary))
    grouped = table.take(pa.array(order))
    out, off = [], 0
    for symbol, n in zip(enc.dictionary.to_pylist(), counts.tolist()):
        out.append((symbol, grouped.slice(off, n)))
        off += n
    return out


def recover(raw_dir: str | os.PathLike) -> list[Recovered]:
    """Segments left by earlier (crashed) processes, grouped by (stream, date, symbol), each
    group's rows in the order they were appended."""
    d = Path(raw_dir) / DIRNAME
    if not d.exists():
        return []
    named = []
    for p in d.glob(f"*{SUFFIX}"):
        m = _NAME.fullmatch(p.name[: -len(SUFFIX)])
        if m is not None:
            named.append(((m["run"], int(m["gen"]), int(m["n"])), str(p), m))
    groups: dict[Key, Recovered] = {}
    empties: list[str] = []
    for _, p, m in sorted(named, key=lambda x: x[0]):
        table = read_segment(p)
        if table is None:
            empties.append(p)
            continue
        parts = [(m["symbol"], table)] if m["symbol"] else by_symbol(table)
        for symbol, t in parts:
            key = (m["stream"], m["date"], symbol)
            g = groups.get(key)
            if g is None:
                groups[key] = Recovered(*key, t, [p])
            else:
                g.table = pa.concat_tables([g.table, t])
                if p not in g.paths:
                    g.paths.append(p)
    SegmentLog.release(empties)
    return list(groups.values())
