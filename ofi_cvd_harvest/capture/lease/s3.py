"""The object-store lease: ``<prefix>/leases/<shard>.json`` on an S3-compatible store.

Created with ``If-None-Match: *`` (one creator wins), renewed with ``If-Match: <etag>`` every
``lease_renew_sec``; a renewal refused (another process replaced the object) is a lost lease.
Time comes from the store, not from the hosts: a lease is expired when the store's ``Date``
minus the object's ``Last-Modified`` exceeds the holder's ``ttl_sec`` (+1 s: both have
second resolution), so clocks of different hosts never need to agree. A taker replaces an
expired lease with ``If-Match`` on the stale ETag, so of two takers one wins.

Fencing: ``Last-Modified`` of a renewal is no earlier than the moment this host sent it, so the
lease cannot be taken before ``sent + ttl``. A holder that could not renew stops at
``sent + ttl - renew`` (:meth:`S3Lease.fence_at`), leaving ``renew`` seconds to finalise its
files before anyone may start (docs/capture.md "Leases").
"""

from __future__ import annotations

import json
import secrets
import time
from email.utils import parsedate_to_datetime

from ...storage.objectstore import ObjectStore, split
from . import LeaseLost, ShardHeld, identity

LEASES_DIR = "leases"
_REFUSED = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404", "412", "409")


def lease_key(url: str, shard: str) -> str:
    _, prefix = split(url)
    return f"{prefix}/{LEASES_DIR}/{shard}.json" if prefix else f"{LEASES_DIR}/{shard}.json"


def _refused(exc: Exception) -> bool:
    resp = getattr(exc, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _REFUSED or status in (404, 409, 412)


class S3Lease:
    def __init__(self, url: str, shard: str, ttl_sec: float, renew_sec: float,
                 store: ObjectStore | None = None):
        bucket, _ = split(url)
        self.url, self.shard = url.rstrip("/"), shard
        self.ttl, self.check_sec = float(ttl_sec), float(renew_sec)
        self.holder = identity(shard)
        self.key = lease_key(url, shard)
        self.store = store or ObjectStore(bucket, connect_timeout=3, read_timeout=5, attempts=1)
        self.bucket = bucket
        self.etag: str | None = None
        self._nonce = secrets.token_hex(8)   # two holders never write the same bytes (ETag)
        self._last_ok = time.monotonic()
        self.acquired_ms = 0

    def _body(self, released: bool = False) -> bytes:
        now = int(time.time() * 1000)
        return json.dumps({"holder": self.holder, "shard": self.shard, "ttl_sec": self.ttl,
                           "acquired_ms": self.acquired_ms or now, "renewed_ms": now,
                           "released": released, "nonce": self._nonce}).encode()

    def _put(self, **cond) -> None:
        sent = time.monotonic()
        r = self.store.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(),
                                         ContentType="application/json", **cond)
        self.etag, self._last_ok = r["ETag"], sent

    def current(self) -> tuple[dict, str, float] | None:
        """(document, ETag, seconds since last renewal by the store's clock); None if absent."""
        from botocore.exceptions import ClientError

        try:
            r = self.store.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if _refused(exc):
                return None
            raise
        try:
            doc = json.loads(r["Body"].read())
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError:
            doc = {"holder": "an unreadable lease object", "ttl_sec": self.ttl}
        date = r["ResponseMetadata"]["HTTPHeaders"].get("date")
        now = parsedate_to_datetime(date) if date else None
        age = (now - r["LastModified"]).total_seconds() if now else 0.0
        return doc, r["ETag"], age

    def acquire(self) -> str:
        from botocore.exceptions import ClientError

        self.acquired_ms = int(time.time() * 1000)
        for _ in range(3):     # the object may vanish or change between our requests
            try:
                self._put(IfNoneMatch="*")
                return "new"
            except ClientError as exc:
                if not _refused(exc):
                    raise
            cur = self.current()
            if cur is None:
                continue
            doc, etag, age = cur
            try:
                ttl = float(doc.get("ttl_sec", self.ttl))
            except (TypeError, ValueError):
                ttl = self.ttl
            who = str(doc.get("holder", "?"))[:200]
            if not doc.get("released") and age <= ttl + 1:
                raise ShardHeld(f"shard {self.shard} is held by {who}; lease s3://{self.bucket}/"
                                f"{self.key} renewed {age:.0f} s ago, expires in "
                                f"{max(0.0, ttl + 1 - age):.0f} s")
            try:
                self._put(IfMatch=etag)
                return "released by " + who if doc.get("released") else \
                    f"taken over from {who} (expired {age - ttl:.0f} s ago)"
            except ClientError as exc:
                if not _refused(exc):
                    raise
        raise ShardHeld(f"shard {self.shard}: lease s3://{self.bucket}/{self.key} changed hands "
                        "while we tried; another process holds it")

    def keep(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._put(IfMatch=self.etag)
        except ClientError as exc:
            if not _refused(exc):
                raise
            try:
                cur = self.current()
                who = str(cur[0].get("holder", "?"))[:200] if cur else "nobody (deleted)"
            except Exception:
                cur, who = None, "unknown"
            if cur is not None and cur[0].get("nonce") == self._nonce \
                    and not cur[0].get("released"):
                # our own earlier renewal landed although its answer was lost: still ours
                self.etag = cur[1]
                return self.keep()
            raise LeaseLost(f"lease renewal refused: s3://{self.bucket}/{self.key} "
                            f"is now held by {who}") from None

    def fence_at(self) -> float | None:
        return self._last_ok + self.ttl - self.check_sec

    def release(self) -> None:
        """Mark the object released (conditionally), so a successor need not wait the TTL."""
        if self.etag is None:
            return
        try:
            self.store.client.put_object(Bucket=self.bucket, Key=self.key,
                                         Body=self._body(released=True), IfMatch=self.etag)
        except Exception:
            pass
        self.etag = None
