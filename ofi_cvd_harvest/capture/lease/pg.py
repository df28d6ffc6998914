"""The PostgreSQL lease: a session-level advisory lock on one dedicated connection.

``pg_try_advisory_lock(key)`` with ``key`` a stable 64-bit hash of the shard name. The lock
lives exactly as long as the session: a holder killed with ``kill -9`` or terminated by the
server frees it at once, with no time-to-live to wait for. Others read the holder through
``pg_locks ⋈ pg_stat_activity``: the session's ``application_name`` says host, pid and shard.

A holder cut off from the server cannot be told the session ended. Server-side TCP keepalives
(set for this session) make the server drop a vanished holder's session — and its lock — after
about :data:`SERVER_DROP_SEC`; the holder fences itself well before (:meth:`PgLease.fence_at`).
"""

from __future__ import annotations

import hashlib
import time

from . import LeaseLost, ShardHeld, identity, redact

KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3
SERVER_DROP_SEC = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT
FENCE_MARGIN_SEC = 10.0   # a silent server: stop this long before it may free the lock
CHECK_SEC = 1.0           # the check is one cheap query; the lock can go at any moment

_LOCK_ROW = ("l.locktype = 'advisory' and l.granted and l.classid::bigint = %s "
             "and l.objid::bigint = %s and l.objsubid = 1")


def lock_key(shard: str) -> int:
    """Signed 64-bit key of a shard's lock (the same on every host and Python version)."""
    return int.from_bytes(hashlib.sha256(f"ofi-cvd-harvest/shard/{shard}".encode()).digest()[:8],
                          "big", signed=True)


def _halves(key: int) -> tuple[int, int]:
    """pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32)."""
    u = key & 0xFFFF_FFFF_FFFF_FFFF
    return u >> 32, u & 0xFFFF_FFFF


def dsn(url: str) -> str:
    """libpq's URI from SQLAlchemy's ``postgresql+psycopg2://…``."""
    return "postgresql://" + url.split("://", 1)[1]


class PgLease:
    def __init__(self, url: str, shard: str):
        self.url, self.shard = url, shard
        self.holder = identity(shard)
        self.key = lock_key(shard)
        self.check_sec = CHECK_SEC
        self.conn = None
        self._last_ok = time.monotonic()

    def _connect(self):
        import psycopg2

        opts = (f"-c tcp_keepalives_idle={KEEPALIVE_IDLE} "
                f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL} "
                f"-c tcp_keepalives_count={KEEPALIVE_COUNT} -c statement_timeout=5000")
        conn = psycopg2.connect(dsn(self.url), application_name=self.holder[:63],
                                connect_timeout=5, keepalives=1, keepalives_idle=KEEPALIVE_IDLE,
                                keepalives_interval=KEEPALIVE_INTERVAL,
                                keepalives_count=KEEPALIVE_COUNT, options=opts)
        conn.autocommit = True
        return conn

    def acquire(self) -> str:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("select pg_try_advisory_lock(%s)", (self.key,))
                if cur.fetchone()[0]:
                    self.conn, self._last_ok = conn, time.monotonic()
                    return "new"
                cur.execute("select a.application_name, host(a.client_addr), a.pid, "
                            "a.backend_start from pg_locks l join pg_stat_activity a "
                            f"on a.pid = l.pid where {_LOCK_ROW}", _halves(self.key))
                row = cur.fetchone()
        finally:
            if self.conn is not conn:
                conn.close()
        who = (f"{row[0] or '?'} (backend pid {row[2]} from {row[1] or 'local'}, "
               f"since {row[3]:%Y-%m-%d %H:%M:%S %Z})" if row else "a session that just ended")
        raise ShardHeld(f"shard {self.shard} is held by {who}; lease {redact(self.url)}")

    def keep(self) -> None:
        import psycopg2

        if self.conn is None or self.conn.closed:
            raise LeaseLost("the lock's database session is closed")
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"select count(*) from pg_locks l where {_LOCK_ROW} "
                            "and l.pid = pg_backend_pid()", _halves(self.key))
                held = cur.fetchone()[0]
        except psycopg2.Error as exc:   # the session is gone (terminated, server down, reset)
            raise LeaseLost(f"the lock's database session ended: "
                            f"{str(exc).strip().splitlines()[0][:160]}") from None
        if not held:
            raise LeaseLost("the advisory lock is no longer held by this session")
        self._last_ok = time.monotonic()

    def fence_at(self) -> float | None:
        return self._last_ok + SERVER_DROP_SEC - FENCE_MARGIN_SEC

    def release(self) -> None:
        """Ending the session frees its locks: no unlock query that a silent server could hang."""
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            conn.close()

