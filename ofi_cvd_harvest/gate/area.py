"""Where the gate keeps tables that are not (yet) published: staging and quarantine.

Layout under the data root (docs/dq.md, "The publish rule")::

    .staging/.lock                                        one lock for every publish/quarantine
    .staging/date=D/symbol=S/journal.json                 a publish in progress (see .publish)
    .staging/date=D/symbol=S/run-<token>/.lock            held by the run while it lives
    .staging/date=D/symbol=S/run-<token>/date=D/symbol=S/kind=K/part-00000.parquet
    quarantine/date=D/symbol=S/{kind=K/part-00000.parquet, dq.json}

Readers glob ``data/ofi_cvd/**/*.parquet`` (README, *What you get*): neither tree is under
``ofi_cvd/``. A run's staged partition has the lake's own ``date=/symbol=/kind=`` shape,
so the DQ metrics read it as a derived root, and quarantining it is one directory rename.
Staging and ``ofi_cvd/`` share a file system (both under the data root), so publishing a table
is one atomic rename. A run holds an ``flock`` on its directory's lock file for its whole life;
a SIGKILL drops it, and the next gate call removes the directory (:func:`stale_entries`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..storage import layout
from ..storage.fs import Storage, fsync_path

STAGING_DIR = ".staging"
QUARANTINE_DIR = "quarantine"
LOCK_NAME = ".lock"
RUN_PREFIX = "run-"
TRASH_PREFIX = "trash-"


class GateStorageError(Exception):
    """The data root cannot hold a gate (not a local file system)."""


def local_root(storage: Storage) -> Path:
    """The data root as a local path: the gate needs rename and ``flock`` (docs/dq.md)."""
    if not storage.local:
        raise GateStorageError(f"the DQ gate needs a local data root (got {storage.root}); "
                               "derive into a local directory and sync it")
    return Path(storage.root)


def partition_key(date: str, symbol: str) -> str:
    layout.derived_dir(date, symbol, "prices")   # validates date and symbol
    return f"date={date}/symbol={symbol}"


def staging_dir(root: Path, date: str, symbol: str) -> Path:
    return root / STAGING_DIR / partition_key(date, symbol)


def quarantine_dir(root: Path, date: str, symbol: str) -> Path:
    return root / QUARANTINE_DIR / partition_key(date, symbol)


fsync_dir = fsync_path   # a rename is durable once its directory is fsynced (storage/fs.py)


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def prune_empty(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents up to (not including) ``stop`` while they are empty."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


@contextlib.contextmanager
def area_lock(root: Path) -> Iterator[None]:
    """The staging area's one exclusive lock: publishing, quarantining and clean-up of every
    partition take well under a second, so one lock serialises them simply."""
    lock = root / STAGING_DIR / LOCK_NAME
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # drops the flock


class RunStage:
    """One run's staged tables of one partition. Created (and locked) under the area lock, so a
    concurrent clean-up never mistakes it for a crashed run's leftovers."""

    def __init__(self, root: Path, date: str, symbol: str):
        self.root, self.date, self.symbol = root, date, symbol
        with area_lock(root):
            self.dir = staging_dir(root, date, symbol) / f"{RUN_PREFIX}{uuid.uuid4().hex[:12]}"
            self.dir.mkdir(parents=True)
            self._fd: int | None = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    @property
    def derived_root(self) -> Path:
        """Holds ``date=D/symbol=S/kind=K/`` like ``ofi_cvd/``: a derived root for the metrics."""
        return self.dir

    @property
    def partition(self) -> Path:
        return self.dir / partition_key(self.date, self.symbol)

    def table_rel(self, kind: str) -> str:
        """Path of the staged ``kind`` table relative to the data root (for :class:`Storage`)."""
        rel = layout.derived_file(self.date, self.symbol, kind).split("/", 1)[1]
        return str((self.dir / rel).relative_to(self.root))

    def table_path(self, kind: str) -> Path:
        return self.root / self.table_rel(kind)

    def close(self) -> None:
        """Remove what is left of the run's staging (nothing after a publish or quarantine)."""
        if self._fd is None:
            return
        with area_lock(self.root):
            remove_tree(self.dir)
            os.close(self._fd)
            self._fd = None
            prune_empty(self.dir.parent, self.root / STAGING_DIR)

    def __enter__(self) -> "RunStage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (a killed one's flock is gone with it)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def stale_entries(root: Path) -> list[Path]:
    """Run directories whose run is gone (killed between staging and publishing) and trash
    left by an interrupted quarantine swap. Call with the area lock held."""
    out = []
    for part in sorted((root / STAGING_DIR).glob("date=*/symbol=*")):
        for entry in sorted(part.iterdir()):
            if entry.name.startswith(TRASH_PREFIX):
                out.append(entry)
            elif entry.name.startswith(RUN_PREFIX) and not _held(entry / LOCK_NAME):
                out.append(entry)
    return out
