"""One partition's computation shared between processes through the disk.

Under Dagster's multiprocess executor each derived asset is its own process, while the five
tables of a partition come from one computation (they share warm-up rows the day tables do not
hold). The first process that needs the partition takes an exclusive ``flock`` on the
partition's lock file, computes, stages all five tables here and releases the lock; the others
wait on the lock (holding no data), then read their one table. Layout under the data root::

    ofi_cvd/_staged/date=D/symbol=S/.lock                  the partition's lock
    ofi_cvd/_staged/date=D/symbol=S/<key>/manifest.json    identity, raw file set, per-table facts
    ofi_cvd/_staged/date=D/symbol=S/<key>/<kind>.parquet   one conformed table each

``key`` hashes the identity (staging format, the signal code's source and library versions,
``settings.signals``) and the raw file fingerprint (path, size, mtime of every file read), so a
staged result is used only where a fresh computation would give the same table. A staged
directory is written under a temporary name and renamed into place (never seen half-written);
staging a partition removes its other, stale directories; files are checked on reading (size,
rows, column types, Parquet page CRCs) and a bad one is deleted and recomputed. A table is
discarded once its kind is written to its final place, and the partition's directory (lock
included) goes with the last one, so staging does not double the disk use. Leftovers of runs
that stopped early are swept after :data:`TTL_SEC`.

Only local data roots are staged (``flock`` needs a local file); elsewhere callers compute.
Staged files are a cache: they are not fsynced, and losing them only costs a recomputation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import layout
from ..storage.fs import Storage, parquet_options

log = logging.getLogger(__name__)

STAGED_DIR = "ofi_cvd/_staged"   # "_" prefix: dataset readers skip it
LOCK_NAME = ".lock"
MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
FORMAT = 1
TTL_SEC = 3600.0                   # a run's steps use a staged partition within minutes
# Fast to write and read back (the final files are zstd): lz4, no dictionary, no statistics,
# int64 delta-packed, and a CRC per page so a damaged file is detected instead of silently read.
# A bench partition (2 M trades): ~0.9 s to write, ~0.6 s to read all five, 138 MB.
WRITE_OPTS = dict(compression="lz4", compression_level=None, use_dictionary=False,
                  write_statistics=False, write_page_checksum=True)


def _write_options(schema: pa.Schema) -> dict:
    return parquet_options(schema, **WRITE_OPTS)   # the final files' int64 delta rule, lz4


Fingerprint = tuple[tuple[str, int, int], ...]   # signals.rawread.raw_fingerprint


class StagedFileError(Exception):
    """A staged table that does not match its manifest (damaged, truncated, foreign)."""


def supported(storage: Storage) -> bool:
    return storage.local


def partition_dir(storage: Storage, date: str, symbol: str) -> Path:
    layout.derived_dir(date, symbol, "prices")   # validates date and symbol
    return Path(storage.path(f"{STAGED_DIR}/date={date}/symbol={symbol}"))


@functools.cache
def code_version() -> str:
    """Hash of the derivation's source (this package and the schemas) and the versions of the
    libraries computing it: a staged result from other code is never used."""
    import numpy

    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256(f"{pl.__version__} {pa.__version__} {numpy.__version__}".encode())
    for path in [*sorted(pkg.glob("*.py")), pkg.parent / "schemas.py"]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def identity(signals) -> dict:
    """What, besides the raw files, a computation depends on."""
    return {"format": FORMAT, "code": code_version(),
            "signals": json.loads(json.dumps(dataclasses.asdict(signals)))}


def staging_key(signals, files: Fingerprint) -> str:
    blob = json.dumps([identity(signals), [list(f) for f in files]], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ---------------------------------------------------------------- the lock

def _acquire(path: Path, blocking: bool = True) -> int | None:
    """An fd holding ``flock(LOCK_EX)`` on ``path`` (created if missing); None if ``blocking``
    is False and another process holds it. The lock file may be unlinked by its holder
    (cleanup); a lock taken on an unlinked file is retried on the current one."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:      # the directory was removed meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        except BaseException:          # e.g. Dagster's interrupt while waiting
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _release(fd: int) -> None:
    os.close(fd)   # closing drops the flock


# ---------------------------------------------------------------- reading and writing

def _schema_of(df: pl.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in df.schema.items()}


def _read_table(path: Path, entry: Mapping) -> pl.DataFrame:
    try:
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise StagedFileError(f"{path.name}: {size} bytes, manifest says {entry['bytes']}")
        table = pq.read_table(path, page_checksum_verification=True)
        df = pl.from_arrow(table)
    except (FileNotFoundError, StagedFileError):
        raise
    except (OSError, pa.ArrowException, pl.exceptions.PolarsError, ValueError, KeyError,
            TypeError) as exc:
        raise StagedFileError(f"{path.name}: {type(exc).__name__}: {exc}") from exc
    if df.height != entry.get("rows") or _schema_of(df) != entry.get("schema"):
        raise StagedFileError(f"{path.name}: rows/columns differ from the manifest")
    return df


def _read_manifest(d: Path) -> dict | None:
    """The manifest with ``files`` as a fingerprint tuple, or None if missing or malformed."""
    try:
        m = json.loads((d / MANIFEST).read_text())
        if not (isinstance(m, dict) and m.get("format") == FORMAT
                and isinstance(m.get("tables"), dict)
                and all(isinstance(e, dict) for e in m["tables"].values())):
            return None
        m["files"] = tuple((str(p), int(size), int(mtime)) for p, size, mtime in m["files"])
        return m
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


class Stage:
    """The staged results of one partition, used while its lock is held (:func:`open_stage`)."""

    def __init__(self, root: Path):
        self.dir = root

    def _entries(self) -> list[Path]:
        try:
            return sorted(p for p in self.dir.iterdir() if p.name != LOCK_NAME)
        except FileNotFoundError:
            return []

    def load(self, kind: str, signals, files: Fingerprint, *,
             consistent: bool = False) -> pl.DataFrame | None:
        """The staged ``kind`` table computed by the same code and settings from exactly
        ``files`` — or, with ``consistent``, from a subset of them (raw files only added since) —
        or None. A damaged staged file is deleted (and None returned)."""
        want = identity(signals)
        current = set(files)
        for d in self._entries():
            if d.name.startswith(TMP_PREFIX) or not d.is_dir():
                continue
            m = _read_manifest(d)
            if m is None:
                log.warning("staged %s: unreadable manifest, removed", d)
                _remove(d)
                continue
            if m.get("identity") != want:
                continue
            staged = m["files"]
            if not (staged == files or (consistent and set(staged) <= current)):
                continue
            entry = m["tables"].get(kind)
            if entry is None:
                continue
            path = d / f"{kind}.parquet"
            try:
                return _read_table(path, entry)
            except FileNotFoundError:   # already written to its final place and discarded
                continue
            except StagedFileError as exc:
                log.warning("staged %s not used (%s); removed", path, exc)
                _remove(path)
        return None

    def save(self, signals, files: Fingerprint, tables: Mapping[str, pl.DataFrame]) -> Path | None:
        """Stage ``tables`` (computed from ``files``), replacing this partition's other staged
        results. Returns the directory, or None if it could not be written (logged; staging is
        an optimisation, the caller has the tables)."""
        key = staging_key(signals, files)
        tmp = self.dir / f"{TMP_PREFIX}{key}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            entries = {}
            for kind, df in tables.items():
                path = tmp / f"{kind}.parquet"
                table = df.to_arrow()
                pq.write_table(table, path, **_write_options(table.schema))
                entries[kind] = {"rows": df.height, "bytes": path.stat().st_size,
                                 "schema": _schema_of(df)}
            manifest = {"format": FORMAT, "key": key, "identity": identity(signals),
                        "files": [list(f) for f in files], "tables": entries,
                        "created": time.time(), "pid": os.getpid()}
            (tmp / MANIFEST).write_text(json.dumps(manifest))
            for other in self._entries():   # stale results and crashed writers' temp dirs
                if other != tmp:
                    _remove(other)
            os.rename(tmp, self.dir / key)
        except OSError as exc:
            log.warning("could not stage %s: %s", self.dir, exc)
            _remove(tmp)
            return None
        return self.dir / key


@contextlib.contextmanager
def open_stage(storage: Storage, date: str, symbol: str) -> Iterator[Stage]:
    """Hold the partition's exclusive lock (waiting for it) for the with-block."""
    d = partition_dir(storage, date, symbol)
    fd = _acquire(d / LOCK_NAME)
    try:
        yield Stage(d)
    finally:
        _release(fd)


def _drop_if_empty(stage: Stage, fd: int) -> None:
    """With the lock held: remove the partition directory (lock file included) when nothing is
    staged in it; a process waiting on the old lock file retries on a new one."""
    if stage._entries():
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(stage.dir / LOCK_NAME)
    for p in (stage.dir, stage.dir.parent, stage.dir.parent.parent):   # symbol=, date=, _staged
        try:
            p.rmdir()
        except OSError:
            break


def discard(storage: Storage, date: str, symbol: str, kind: str) -> None:
    """The staged ``kind`` table is no longer needed (written to its final place): delete it,
    and the partition's staging directory once no table is left."""
    if not supported(storage):
        return
    d = partition_dir(storage, date, symbol)
    if not d.is_dir():
        return
    fd = _acquire(d / LOCK_NAME)
    try:
        stage = Stage(d)
        for entry in stage._entries():
            if entry.name.startswith(TMP_PREFIX) or not entry.is_dir():
                continue
            _remove(entry / f"{kind}.parquet")
            if not any(entry.glob("*.parquet")):
                _remove(entry)
        _drop_if_empty(stage, fd)
    finally:
        _release(fd)


def sweep(storage: Storage, ttl_sec: float = TTL_SEC, now: float | None = None) -> list[str]:
    """Remove staged partitions untouched for ``ttl_sec`` (runs that stopped before writing all
    five tables) whose lock is free. Returns the removed directories."""
    if not supported(storage):
        return []
    now = time.time() if now is None else now
    removed = []
    for d in sorted(Path(storage.path(STAGED_DIR)).glob("date=*/symbol=*")):
        try:
            newest = max(p.stat().st_mtime for p in [d, *d.iterdir()])
        except (FileNotFoundError, ValueError):
            continue
        if now - newest < ttl_sec:
            continue
        fd = _acquire(d / LOCK_NAME, blocking=False)
        if fd is None:
            continue
        try:
            stage = Stage(d)
            for entry in stage._entries():
                _remove(entry)
            _drop_if_empty(stage, fd)
            removed.append(str(d))
        finally:
            _release(fd)
    return removed
