"""Raw files to an object-store lake: a local spool, then one conditional PUT per file.

With ``DATA_DIR=s3://bucket/prefix`` the capture keeps everything that must survive ``kill -9``
on local disk, exactly as with a local lake: the crash-safe segments and the finished raw files
(atomic rename) live in a *spool*, ``<artifacts>/spool/raw/…`` with the lake's own layout. Each
finished file is then published as one object under the same relative key with
``If-None-Match: *`` (storage/objectstore.py) and only afterwards dropped from the spool
(docs/deploy.md, "Object storage"):

* killed before the PUT completed: the object does not exist (a PUT is whole or nothing); the
  file is still in the spool and the next start publishes it;
* killed after the PUT, before the unlink: the next start's PUT is refused (412) and the stored
  object carries the file's SHA-256, so the file is dropped — no object is ever written twice;
* store unreachable: files wait in the spool, in order, and go out oldest first when it comes
  back; the spool is bounded (``reliability.spool_max_mb``): beyond it the raw writer is refused
  like on a full disk, so rows stay in the segments and the error budget decides
  (docs/capture.md). ``spool_files`` / ``spool_bytes`` and the ``HarvesterSpoolBacklog`` alert
  tell an operator.

A file is handed over only once its segments are released (:meth:`Publisher.ready`), so the
start-up recovery of segments always finds in the spool the files that may already hold their
rows (``Capture._already_final``).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Collection
from pathlib import Path

import pyarrow as pa

from ..monitoring import metrics
from ..storage.fs import Storage
from ..storage.objectstore import ObjectExists, ObjectStore, is_url

SPOOL_DIR = "spool"


def spool_root(artifacts_dir: str | os.PathLike) -> Path:
    return Path(artifacts_dir) / SPOOL_DIR


def _order(path: str) -> tuple[int, int, str]:
    """Publishing order: first receive time, then the writer's sequence (``part-<ms>-<seq>``)."""
    name = path.rsplit("/", 1)[-1]
    try:
        _, ms, seq = name.removesuffix(".parquet").split("-")[:3]
        return int(ms), int(seq), path
    except ValueError:
        return 0, 0, path


class SpoolFull(OSError):
    """The spool holds ``spool_max_mb`` already: the writer is refused like on a full disk."""


class SpoolStorage(Storage):
    """The local spool as the capture's :class:`Storage`; refuses writes once it is full."""

    def __init__(self, root: str | os.PathLike, publisher: "Publisher"):
        super().__init__(root)
        self.publisher = publisher

    def write_parquet(self, rel: str, table: pa.Table) -> str:
        p = self.publisher
        if p.spool_bytes >= p.max_bytes:
            raise SpoolFull(errno.ENOSPC, f"spool full ({p.spool_files} files, "
                            f"{p.spool_bytes / 1e6:.0f} MB waiting for {p.url})")
        return super().write_parquet(rel, table)


class Publisher:
    """One thread publishing spooled raw files in order; see the module doc."""

    backoff_min_sec = 0.5
    backoff_max_sec = 5.0

    def __init__(self, url: str, spool: str | os.PathLike, max_bytes: int,
                 log: logging.Logger | None = None, store: ObjectStore | None = None):
        self.url = url.rstrip("/")
        self.log = log or logging.getLogger(__name__)
        if store is None:
            store, prefix = ObjectStore.for_url(self.url)
        else:
            prefix = self.url.split("://", 1)[1].partition("/")[2]
        self.store, self.prefix = store, prefix.strip("/")
        self.spool = Path(spool).resolve()
        self.max_bytes = max_bytes
        self._queue: deque[str] = deque()
        self._sizes: dict[str, int] = {}
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.published = 0
        self.already_there = 0
        self.errors = 0
        self.down_since: float | None = None

    # -- accounting ----------------------------------------------------------------------------
    @property
    def spool_files(self) -> int:
        return len(self._sizes)

    @property
    def spool_bytes(self) -> int:
        return sum(self._sizes.values())

    def _gauges(self) -> None:
        metrics.spool_files.set(self.spool_files)
        metrics.spool_bytes.set(self.spool_bytes)

    def key_of(self, path: str) -> str:
        rel = Path(path).resolve().relative_to(self.spool).as_posix()
        return f"{self.prefix}/{rel}" if self.prefix else rel

    # -- hand-over -----------------------------------------------------------------------------
    def ready(self, path: str) -> None:
        """A finished raw file whose segments are released: publish it after those before."""
        with self._cv:
            if path in self._sizes:
                return
            try:
                self._sizes[path] = os.path.getsize(path)
            except OSError:
                return
            self._queue.append(path)
            self._gauges()
            self._cv.notify()

    def start(self, hold: Collection[str] = ()) -> None:
        """Queue what an earlier run left in the spool (oldest first), then start publishing.
        Call after the segment recovery, so the spool holds every file it may dedup against;
        ``hold``: files whose rows are still in segment files that the recovery could not
        release (shared with a partition it could not write), handed over once they are."""
        skip = {os.path.abspath(p) for p in hold}
        found = [str(p) for p in (self.spool / "raw").glob("date=*/symbol=*/stream=*/*.parquet")
                 if os.path.abspath(p) not in skip]
        for path in sorted(found, key=_order):
            self.ready(path)
        if found:
            self.log.info("spool: %d raw files from an earlier run wait for %s", len(found), self.url)
        self._thread = threading.Thread(target=self._loop, name="lake-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> int:
        """Publish what is queued for at most ``timeout`` s; returns the files left in the spool
        (the next start publishes them)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue and self._thread is not None and time.monotonic() < deadline:
                self._cv.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(max(1.0, deadline - time.monotonic()) + 30)
        left = self.spool_files
        if left:
            self.log.warning("spool: %d raw files (%.1f MB) not yet in %s; the next start "
                             "publishes them", left, self.spool_bytes / 1e6, self.url)
        return left

    # -- resume point ----------------------------------------------------------------------------
    def lake(self) -> Storage:
        return Storage(self.url)

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        backoff = self.backoff_min_sec
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait(1.0)
                if self._stopping or not self._queue:
                    return
                path = self._queue[0]
            try:
                self.publish(path)
            except Exception as exc:   # unreachable store, 5xx, credentials: wait and retry
                self.errors += 1
                metrics.publish_errors_total.inc()
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    self.log.warning("lake %s unreachable (%s: %s); raw files wait in the spool",
                                     self.url, type(exc).__name__, str(exc)[:200])
                with self._cv:
                    if not self._stopping:
                        self._cv.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_sec)
                continue
            backoff = self.backoff_min_sec
            if self.down_since is not None:
                self.log.info("lake %s reachable again after %.0f s; %d files to publish",
                              self.url, time.monotonic() - self.down_since, self.spool_files)
                self.down_since = None
            with self._cv:
                self._queue.popleft()
                self._sizes.pop(path, None)
                self._gauges()
                self._cv.notify_all()

    def publish(self, path: str) -> None:
        """One file: conditional create, then drop it from the spool."""
        try:
            body = Path(path).read_bytes()
        except FileNotFoundError:
            return                      # dropped already (published by an earlier attempt)
        key = self.key_of(path)
        try:
            res = self.store.create(key, body)
        except ObjectExists:
            # another object holds this name (a different process, same ms and sequence):
            # never overwrite; publish ours under a fresh name
            res = self._create_renamed(key, body)
        if res.created:
            self.published += 1
            metrics.objects_published_total.inc()
        else:
            self.already_there += 1
        os.unlink(path)

    def _create_renamed(self, key: str, body: bytes):
        stem = key.removesuffix(".parquet")
        for n in range(1, 1000):
            try:
                return self.store.create(f"{stem}-r{n}.parquet", body)
            except ObjectExists:
                continue
        raise ObjectExists(f"no free name for {key}")


def open_raw_store(settings, log: logging.Logger) -> tuple[Storage, Publisher | None]:
    """The capture's :class:`Storage`: the data root itself when local; the spool (and its
    :class:`Publisher`) when the lake is an object store."""
    if not is_url(str(settings.data_dir)):
        return Storage(settings.data_dir), None
    root = spool_root(settings.artifacts_dir)
    root.mkdir(parents=True, exist_ok=True)
    pub = Publisher(str(settings.data_dir), root, settings.spool_max_mb * 1_000_000, log)
    return SpoolStorage(root, pub), pub
