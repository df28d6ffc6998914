"""Capture leases: one process per shard, whatever Dagster believes (docs/capture.md "Leases").

The run queue's tag limit knows only the run status Dagster recorded; a worker cut off from the
network still captures. So a capture of a shard first takes the shard's lease from an existing
engine — a PostgreSQL session advisory lock (``pg.py``) or a conditional object create on the
lake's store (``s3.py``) — and stops writing when it cannot keep it (fencing, ``guard.py``).

Both backends have one interface, :class:`Lease`: ``acquire()`` (raises :class:`ShardHeld`
naming the holder), ``keep()`` (renew or check; raises :class:`LeaseLost`), ``fence_at`` (the
monotonic time by which the holder must have stopped writing) and ``release()``.
"""

from __future__ import annotations

import os
import socket
from typing import Protocol

from ...pgurl import PREFIX as PG_PREFIX
from ...pgurl import redact
from ..health import CaptureError


class ShardHeld(Exception):
    """Another process holds the shard's lease; ``str()`` is one line naming it."""


class LeaseLost(CaptureError):
    """This process no longer holds its lease: it stopped capturing (fencing)."""


class Lease(Protocol):
    shard: str
    holder: str                  # who we are, as others read it

    def acquire(self) -> str:
        """Take the lease or raise :class:`ShardHeld`; returns how ("new", "taken over")."""

    def keep(self) -> None:
        """Renew (s3) or check (PostgreSQL) the lease; raise :class:`LeaseLost` when it is
        gone for sure, ``OSError``-like errors when it could not be told (retried)."""

    def fence_at(self) -> float | None:
        """``time.monotonic()`` after which another process may hold the lease although we
        could not be told (None: the backend tells at once, as PostgreSQL does)."""

    def release(self) -> None:
        """Give the lease up (best effort: a dead holder's lease frees itself)."""


def identity(shard: str) -> str:
    """How a holder names itself to others: host, pid and shard."""
    return f"ofi-cvd-harvest host={socket.gethostname()} pid={os.getpid()} shard={shard}"


def open_lease(url: str, shard: str, ttl_sec: float, renew_sec: float) -> Lease:
    """The backend a lease URL names (settings ``capture.lease_url``)."""
    if url.startswith(PG_PREFIX):
        from .pg import PgLease
        return PgLease(url, shard)
    if url.startswith("s3://"):
        from .s3 import S3Lease
        return S3Lease(url, shard, ttl_sec, renew_sec)
    raise ValueError(f"lease URL {url!r}: postgresql+psycopg2://… or s3://bucket/prefix")


__all__ = ["Lease", "LeaseLost", "ShardHeld", "identity", "open_lease", "redact"]
