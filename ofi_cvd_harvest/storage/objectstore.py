"""The lake on S3-compatible object storage (docs/deploy.md, "Object storage").

``DATA_DIR=s3://bucket/prefix`` names the lake; the endpoint comes from ``AWS_ENDPOINT_URL``
(any S3-compatible store: MinIO, Ceph, moto) and credentials from the usual AWS variables.

What this module holds, and why each piece is separate:

* :class:`LakeUrl` — a data root that is a URL, with the few ``pathlib`` operations the code
  uses on a data root (``/``, ``parent``, ``name``, ``is_dir``, ``glob``, ``exists``), so code
  written for a local ``Path`` root reads the store without a second code path.
* :class:`ObjectStore` — the S3 operations pyarrow does not expose: the conditional create
  (``If-None-Match: *``) that publishes a raw file exactly once, paginated listing, delete.
* :func:`fsspec_filesystem` / :func:`polars_storage_options` — the same store for DuckDB
  (registered ``s3fs``; its ``httpfs`` extension cannot be installed offline) and polars.

A single PUT (or a completed multipart upload) makes an object visible whole or not at all, so
no temporary name and no rename are needed (S3 has no rename; copy+delete is not one).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

SCHEMES = ("s3://",)


def is_url(root: object) -> bool:
    """Whether a data root names an object store (``s3://bucket/prefix``)."""
    return isinstance(root, str) and root.startswith(SCHEMES)


def split(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``); ``s3:///a`` names no bucket (not ``a``)."""
    rest = url.split("://", 1)[1]
    bucket, _, key = rest.rstrip("/").partition("/")
    key = key.strip("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, key


class LakeUrl(str):
    """A URL data root that joins like a ``Path`` (``root / "raw"``) and answers the directory
    questions DQ and the readers ask (backed by :func:`fsspec_filesystem`)."""

    def __new__(cls, value: str):
        if not is_url(value):
            raise ValueError(f"not an object-store URL: {value!r}")
        scheme, rest = value.split("://", 1)
        if rest.startswith("/"):
            raise ValueError(f"no bucket in {value!r}")
        rest = "/".join(p for p in rest.split("/") if p)
        if not rest or any(p in (".", "..") for p in rest.split("/")):
            raise ValueError(f"bad object-store URL {value!r}")
        split(f"{scheme}://{rest}")
        return super().__new__(cls, f"{scheme}://{rest}")

    def __truediv__(self, other: object) -> "LakeUrl":
        return LakeUrl(f"{self}/{str(other).strip('/')}")

    @property
    def key(self) -> str:
        """``bucket/prefix`` (how pyarrow and s3fs name it)."""
        return self.split("://", 1)[1]

    @property
    def name(self) -> str:
        return self.rsplit("/", 1)[-1]

    @property
    def parent(self) -> "LakeUrl":
        head = self.rsplit("/", 1)[0]
        return LakeUrl(head) if head.count("/") >= 2 else self

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.key.split("/"))

    def resolve(self) -> "LakeUrl":
        return self

    def relative_to(self, other: "LakeUrl | str") -> PurePosixPath:
        base = str(other).rstrip("/") + "/"
        if not self.startswith(base):
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(self[len(base):])

    def exists(self) -> bool:
        return fsspec_filesystem().exists(self.key)

    def is_dir(self) -> bool:
        return fsspec_filesystem().isdir(self.key)

    def is_file(self) -> bool:
        return fsspec_filesystem().isfile(self.key)

    def glob(self, pattern: str) -> list["LakeUrl"]:
        """Objects (and prefixes) under this one matching ``pattern`` (one level per ``/``),
        sorted; listing is not cached, so a new object is seen at once."""
        fs = fsspec_filesystem()
        fs.invalidate_cache()
        scheme = self.split("://", 1)[0]
        return sorted(LakeUrl(f"{scheme}://{p}") for p in fs.glob(f"{self.key}/{pattern}"))

    def read_bytes(self) -> bytes:
        with fsspec_filesystem().open(self.key, "rb") as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()


def data_root(value: object) -> "LakeUrl | os.PathLike":
    """A data root from a setting or a flag: a :class:`LakeUrl` for ``s3://…``, else a Path."""
    from pathlib import Path

    if isinstance(value, LakeUrl):
        return value
    if is_url(str(value)):
        return LakeUrl(str(value))
    return Path(value)


def endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or None


MISSING = "an s3:// lake needs boto3 and s3fs: pip install -e '.[s3]' (docs/deploy.md)"


@lru_cache(maxsize=4)
def _fsspec(endpoint_url: str | None):
    try:
        import s3fs
    except ImportError:
        raise ImportError(MISSING) from None

    kw = {"client_kwargs": {"endpoint_url": endpoint_url}} if endpoint_url else {}
    # short time-outs: an unreachable store must fail fast, the callers retry (capture/publisher)
    return s3fs.S3FileSystem(config_kwargs={"connect_timeout": 5, "read_timeout": 30,
                                            "retries": {"max_attempts": 3}}, **kw)


def fsspec_filesystem():
    """An ``s3fs`` filesystem for the configured endpoint (shared; DuckDB registers it)."""
    return _fsspec(endpoint())


def polars_storage_options() -> dict[str, str]:
    """``storage_options`` for polars ``scan_parquet("s3://…")`` (plain-http endpoints too)."""
    out: dict[str, str] = {"aws_region": os.environ.get("AWS_DEFAULT_REGION")
                           or os.environ.get("AWS_REGION") or "us-east-1"}
    ep = endpoint()
    if ep:
        out["aws_endpoint_url"] = ep
        if ep.startswith("http://"):
            out["aws_allow_http"] = "true"
    return out


class ObjectExists(Exception):
    """A create found a different object under the key (never overwritten)."""


@dataclass(frozen=True)
class PutResult:
    key: str
    created: bool         # False: an identical object was already there (a retried publish)


class ObjectStore:
    """boto3 client on one bucket: conditional creates, listing, deletes."""

    def __init__(self, bucket: str, *, connect_timeout: float = 3.0, read_timeout: float = 30.0,
                 attempts: int = 2):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ImportError(MISSING) from None

        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint(),
            config=Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                          retries={"max_attempts": attempts, "mode": "standard"}))

    @classmethod
    def for_url(cls, url: str, **kw) -> tuple["ObjectStore", str]:
        bucket, prefix = split(url)
        return cls(bucket, **kw), prefix

    def create(self, key: str, body: bytes) -> PutResult:
        """Create ``key`` with ``body`` unless it exists (``If-None-Match: *``). An existing
        object with the same bytes means an earlier attempt of this very publish succeeded
        (e.g. killed before the spool file was dropped): that is success, not a second object.
        "Same bytes" is the SHA-256 we store as object metadata (an ETag is the MD5 only for
        unencrypted single PUTs, so it is the fallback). Different bytes raise
        :class:`ObjectExists`."""
        from botocore.exceptions import ClientError

        digest = hashlib.sha256(body).hexdigest()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*",
                                   Metadata={"sha256": digest})
            return PutResult(key, True)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code not in ("PreconditionFailed", "ConditionalRequestConflict") and status != 412:
                raise
        head = self.client.head_object(Bucket=self.bucket, Key=key)
        stored = head.get("Metadata", {}).get("sha256")
        if stored == digest or (stored is None and
                                head.get("ETag", "").strip('"') == hashlib.md5(body).hexdigest()):
            return PutResult(key, False)
        raise ObjectExists(f"s3://{self.bucket}/{key} exists with other content")

    def put(self, key: str, body: bytes) -> None:
        """Unconditional create-or-replace (derived tables, journals: one PUT each)."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def list(self, prefix: str, pattern: str | None = None) -> list[tuple[str, int]]:
        """(key, size) of every object under ``prefix`` (paginated), optionally filtered by an
        fnmatch ``pattern`` on the key; sorted."""
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            for o in page.get("Contents", ()):
                if pattern is None or fnmatch.fnmatch(o["Key"], pattern):
                    out.append((o["Key"], o["Size"]))
        return sorted(out)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)
