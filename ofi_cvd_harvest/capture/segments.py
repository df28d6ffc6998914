"""Crash-safe staging: rows not yet in a final Parquet file, appended every second to Arrow
IPC stream files under ``raw/_segments/`` (docs/capture.md: on ``kill -9`` at most about one second
of book rows may be lost; trades are healed anyway).

A segment file belongs to one (stream, date, symbol) and one rotation generation; once the
generation's Parquet file is durable the segment is deleted. A process killed mid-run leaves
its segments behind; the next start :func:`recover`\\s them into Parquet. The files end in
``.arrows`` and live in a ``_``-prefixed directory, so Parquet globbing readers and
pyarrow/polars hive discovery never see them. A torn last batch (killed mid-append) is
ignored. Local data directories only (append is not portable to object stores).

Batches are lz4-compressed (Arrow IPC body compression, read back transparently): after a
full disk the segments of the backlog must fit in what little space was freed (measured in
docs/capture.md). A file that never received a complete batch (its first append failed,
e.g. on a full disk) is removed at once, so a failing disk does not leave a trail of empty
segment files behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

SUFFIX = ".arrows"
DIRNAME = "_segments"
WRITE_OPTIONS = ipc.IpcWriteOptions(compression="lz4")

Key = tuple[str, str, str]   # (stream, date, symbol)


class SegmentLog:
    def __init__(self, raw_dir: str | os.PathLike, run_id: str):
        self.dir = Path(raw_dir) / DIRNAME
        self.run_id = run_id
        self.generation = 0
        self._n = 0
        self._open: dict[Key, tuple[object, ipc.RecordBatchStreamWriter, str]] = {}

    def path_for(self, key: Key) -> str:
        stream, date, symbol = key
        self._n += 1
        return str(self.dir / f"{self.run_id}-g{self.generation:06d}n{self._n}-{stream}-{date}-"
                              f"{symbol}{SUFFIX}")

    def append(self, key: Key, table: pa.Table) -> str:
        """Append ``table`` to the current generation's file of ``key``; returns its path."""
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

    def roll(self) -> dict[Key, str]:
        """Close the current generation (at rotation); returns its files by key."""
        out: dict[Key, str] = {}
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
    def release(paths: list[str]) -> None:
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
    paths: list[str]


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


def recover(raw_dir: str | os.PathLike) -> list[Recovered]:
    """Segments left by earlier (crashed) processes, grouped by (stream, date, symbol)."""
    d = Path(raw_dir) / DIRNAME
    if not d.exists():
        return []
    groups: dict[Key, Recovered] = {}
    empties: list[str] = []
    for p in sorted(d.glob(f"*{SUFFIX}")):
        parts = p.name[: -len(SUFFIX)].split("-")
        # <run_id>-g<gen>-<stream>-<YYYY>-<MM>-<DD>-<symbol>
        if len(parts) < 7:
            continue
        stream, date, symbol = parts[-5], "-".join(parts[-4:-1]), parts[-1]
        table = read_segment(p)
        if table is None:
            empties.append(str(p))
            continue
        key = (stream, date, symbol)
        if key in groups:
            g = groups[key]
            g.table = pa.concat_tables([g.table, table])
            g.paths.append(str(p))
        else:
            groups[key] = Recovered(stream, date, symbol, table, [str(p)])
    SegmentLog.release(empties)
    return list(groups.values())
