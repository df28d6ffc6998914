"""A small storage layer over pyarrow filesystems with atomic, durable Parquet writes.

Readers glob ``*.parquet``; we write ``<name>.parquet.<rand>.tmp`` first, fsync, then rename,
so a half-written file is never visible under a final name. Local paths get real fsyncs
(file and directory). An object store (``s3://bucket/prefix``, storage/objectstore.py) has no
rename and needs none: a table is serialised in memory and sent as one PUT, visible whole or not
at all, so no temporary object ever exists there.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

TMP_SUFFIX = ".tmp"
# a CRC per page, so bit-rot inside a page is detected (storage/verify.py) instead of being
# read as wrong numbers or an anonymous decompression error (docs/dq.md "Raw files")
PARQUET_OPTS = dict(compression="zstd", compression_level=3, row_group_size=256_000,
                    write_page_checksum=True)


def parquet_options(schema: pa.Schema, **overrides) -> dict:
    """Write options for ``schema``: zstd, and every int64 column (timestamps, ids, counts —
    near-monotonic or small) DELTA_BINARY_PACKED instead of dictionary-encoded.

    Why: dictionary-encoding unique ids and timestamps is wasted work that the writer abandons
    per page; delta packing stores consecutive ids in a few bits. On the capture's raw trades
    it cut the write cost from 1.06 to 0.15 µs/row and the size from 20 to 6 bytes/row (book
    rows: 2.0 → 1.35 µs, 70 → 66 B; benchmarks/bench_storage.py, docs/performance.md). DuckDB,
    polars and pyarrow all read it. Pages carry CRCs (``write_page_checksum``). ``overrides``
    replace any other ``pq.write_table`` option (e.g. a cache's faster codec). Built once per
    schema (the rotation writes 600 files a minute with two schemas); each caller gets a copy."""
    opts = {k: v.copy() if isinstance(v, (dict, list)) else v
            for k, v in _options(schema).items()}       # the cached one stays as built
    opts.update(overrides)
    return opts


@functools.lru_cache(maxsize=64)
def _options(schema: pa.Schema) -> dict:
    delta = [f.name for f in schema if f.type == pa.int64()]
    opts: dict = dict(PARQUET_OPTS)
    if delta:
        opts["column_encoding"] = dict.fromkeys(delta, "DELTA_BINARY_PACKED")
        opts["use_dictionary"] = [f.name for f in schema if f.name not in set(delta)]
    return opts


class Storage:
    """Data root (local path or URI) + relative paths from :mod:`.layout`."""

    def __init__(self, root: str | os.PathLike[str]):
        root_str = str(root)
        self.url = root_str.rstrip("/") if "://" in root_str else None
        if self.url:
            self.fs, self.root = pafs.FileSystem.from_uri(self.url)
            self.root = self.root.rstrip("/")
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(root_str).resolve())
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def uri(self, rel: str) -> str:
        """``rel`` as DuckDB/polars name it: a local path, or ``s3://bucket/prefix/rel``."""
        if self.url is None:
            return self.path(rel)
        return f"{self.url}/{rel}" if rel else self.url

    def object_store(self):
        """The boto3 side of an ``s3://`` root (conditional creates): (store, key prefix)."""
        from .objectstore import ObjectStore

        if getattr(self, "_store", None) is None:   # one boto3 client per Storage
            self._store = ObjectStore.for_url(self.url)
        return self._store

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def list_files(self, rel_dir: str, suffix: str = ".parquet") -> list[str]:
        """Final files under ``rel_dir`` (recursive), sorted; temp files never match."""
        sel = pafs.FileSelector(self.path(rel_dir), recursive=True, allow_not_found=True)
        out = [i.path for i in self.fs.get_file_info(sel)
               if i.type == pafs.FileType.File and i.path.endswith(suffix)]
        return sorted(out)

    def write_parquet(self, rel: str, table: pa.Table) -> str:
        """Write ``table`` to ``rel`` atomically (replacing it if present); returns the path."""
        final = self.path(rel)
        if not self.local:
            return self._put_parquet(rel, table)
        self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        tmp = f"{final}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            with self.fs.open_output_stream(tmp) as sink:
                pq.write_table(table, sink, **parquet_options(table.schema))
            if self.local:
                fsync_path(tmp)
            self.fs.move(tmp, final)
            if self.local:
                fsync_path(os.path.dirname(final))
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise
        return final

    def _put_parquet(self, rel: str, table: pa.Table) -> str:
        """Object store: serialise in memory, then one PUT (whole or nothing, no temp name)."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **parquet_options(table.schema))
        store, prefix = self.object_store()
        store.put(f"{prefix}/{rel}" if prefix else rel, sink.getvalue().to_pybytes())
        return self.path(rel)

    def read_parquet(self, paths: list[str], columns: list[str] | None = None) -> pa.Table | None:
        """Read and concatenate files (None when there are none); ``columns`` projects."""
        if not paths:
            return None
        tables = [pq.read_table(p, filesystem=self.fs, columns=columns,
                                page_checksum_verification=True) for p in paths]
        return pa.concat_tables(tables, promote_options="default")

    def delete(self, rel_or_abs: str) -> None:
        p = rel_or_abs if rel_or_abs.startswith(self.root) else self.path(rel_or_abs)
        self.fs.delete_file(p)

    def remove_stale_tmp(self, rel_dir: str = "", older_than_sec: float = 0.0) -> list[str]:
        """Delete leftover ``*.tmp`` files (from a crash mid-write) last modified more than
        ``older_than_sec`` ago (0: all; a positive age spares another process's write in
        flight); returns what was removed."""
        removed = []
        sel = pafs.FileSelector(self.path(rel_dir), recursive=True, allow_not_found=True)
        cutoff = time.time_ns() - int(older_than_sec * 1e9)
        for i in self.fs.get_file_info(sel):
            if i.type != pafs.FileType.File or not i.path.endswith(TMP_SUFFIX):
                continue
            if older_than_sec > 0 and (i.mtime_ns or 0) > cutoff:
                continue
            try:
                self.fs.delete_file(i.path)
            except FileNotFoundError:
                continue           # its writer renamed or removed it meanwhile
            removed.append(i.path)
        return sorted(removed)


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a directory (the rename is durable only once its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
