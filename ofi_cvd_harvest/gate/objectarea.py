"""The gate's staging, publishing and quarantine on an object-store lake (docs/dq.md, "The
publish rule"; docs/deploy.md, "Object storage").

Same layout as on a local root (:mod:`.area`), under ``s3://bucket/prefix``::

    .staging/date=D/symbol=S/journal-<token>.json            a publish in progress
    .staging/date=D/symbol=S/run-<token>/date=D/symbol=S/kind=K/part-00000.parquet
    quarantine/date=D/symbol=S/{kind=K/part-00000.parquet, dq.json}

What differs, because S3 has neither rename nor ``flock``:

* publishing a table is **one PUT of its bytes** to ``ofi_cvd/…/part-00000.parquet`` (visible
  whole or not at all; the previous version is served until then) — never copy+delete;
* the journal is an object written (one PUT) before the first table goes out, deleted after the
  last; a process killed in between leaves it, and the next gate call on the lake re-PUTs every
  table whose staged object is still there (a staged object is deleted only after its PUT), so
  the partition ends all new — the roll-forward of the local gate;
* a run's staging has no lock to test, so it is "stale" once older than :data:`STALE_SEC`
  (a derivation stages, checks and publishes in minutes) and then removed;
* quarantining PUTs the staged tables and ``dq.json`` under ``quarantine/`` after deleting the
  previous quarantined version (not atomic as a whole; nothing globs ``quarantine/``).

Two gate runs on one partition at once are not serialised here (no lock): the orchestrator
runs one derivation per partition (docs/dagster.md); the last publish wins, each table whole.
"""

from __future__ import annotations

import json
import time
import uuid

from ..storage import layout
from ..storage.fs import Storage
from ..storage.objectstore import LakeUrl
from . import verdict as vd
from .area import QUARANTINE_DIR, RUN_PREFIX, STAGING_DIR, partition_key

STALE_SEC = 6 * 3600.0
JOURNAL_PREFIX = "journal-"


class ObjectRunStage:
    """One run's staged tables of one partition in the store (interface of :class:`.area.RunStage`)."""

    def __init__(self, storage: Storage, date: str, symbol: str):
        self.storage, self.date, self.symbol = storage, date, symbol
        self.root = LakeUrl(storage.url)
        self.store, self.prefix = storage.object_store()
        self.rel = f"{STAGING_DIR}/{partition_key(date, symbol)}/{RUN_PREFIX}{uuid.uuid4().hex[:12]}"

    @property
    def derived_root(self) -> LakeUrl:
        return self.root / self.rel

    def table_rel(self, kind: str) -> str:
        return f"{self.rel}/{layout.derived_file(self.date, self.symbol, kind).split('/', 1)[1]}"

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def close(self) -> None:
        for key, _ in self.store.list(self.key(self.rel) + "/"):
            self.store.delete(key)

    def __enter__(self) -> "ObjectRunStage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _key(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def _apply(store, prefix: str, journal: dict) -> None:
    """PUT each staged table to its final key, then drop the staged object; idempotent (a
    move whose staged object is gone was done)."""
    for src_rel, dst_rel in journal["moves"]:
        body = store.get(_key(prefix, src_rel))
        if body is not None:
            store.put(_key(prefix, dst_rel), body)          # one PUT: old or new, never half
            store.delete(_key(prefix, src_rel))
    q = f"{QUARANTINE_DIR}/{partition_key(journal['date'], journal['symbol'])}"
    record = journal.get("verdict")
    for key, _ in store.list(_key(prefix, q) + "/"):
        if record is None or key.endswith(".parquet"):   # accepted: keep only the verdict
            store.delete(key)
    if record is not None:
        store.put(_key(prefix, f"{q}/{vd.NAME}"), _json(record))


def _json(doc: dict) -> bytes:
    return json.dumps(doc, indent=1, allow_nan=False).encode()


def _run_journal(storage: Storage, date: str, symbol: str, moves: list[tuple[str, str]],
                 record: dict | None) -> None:
    from .publish import pause_point

    store, prefix = storage.object_store()
    jrel = f"{STAGING_DIR}/{partition_key(date, symbol)}/{JOURNAL_PREFIX}{uuid.uuid4().hex[:12]}.json"
    journal = {"date": date, "symbol": symbol, "moves": [list(m) for m in moves],
               "verdict": record}
    store.put(_key(prefix, jrel), _json(journal))
    pause_point("journal")
    _apply(store, prefix, journal)
    store.delete(_key(prefix, jrel))


def recover(storage: Storage, now: float | None = None) -> dict[str, list[str]]:
    """Roll unfinished publishes forward (journals) and remove stale runs' staging."""
    out: dict[str, list[str]] = {"rolled_forward": [], "removed": []}
    store, prefix = storage.object_store()
    base = _key(prefix, STAGING_DIR) + "/"
    objects = store.list(base)
    for key, _ in objects:
        name = key.rsplit("/", 1)[1]
        if name.startswith(JOURNAL_PREFIX) and name.endswith(".json"):
            body = store.get(key)
            try:
                journal = json.loads(body or b"")
            except ValueError:              # written by one PUT: never half; foreign
                store.delete(key)
                continue
            _apply(store, prefix, journal)
            store.delete(key)
            out["rolled_forward"].append(f"{journal['date']}|{journal['symbol']}")
    cutoff = (time.time() if now is None else now) - STALE_SEC
    resp = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=base)
    for page in resp:
        for o in page.get("Contents", ()):
            rest = o["Key"][len(base):].split("/")
            if len(rest) > 3 and rest[2].startswith(RUN_PREFIX) and \
                    o["LastModified"].timestamp() < cutoff:
                store.delete(o["Key"])
                out["removed"].append(o["Key"])
    return out


def publish(stage: ObjectRunStage, kinds: list[str], record: dict | None = None) -> dict[str, str]:
    """PUT the staged ``kinds`` to ``ofi_cvd/`` through a journal (see the module doc)."""
    moves = [(stage.table_rel(k), layout.derived_file(stage.date, stage.symbol, k)) for k in kinds]
    _run_journal(stage.storage, stage.date, stage.symbol, moves, record)
    return {k: str(stage.root / dst) for k, (_, dst) in zip(kinds, moves)}


def accept(storage: Storage, date: str, symbol: str, acceptance: vd.Acceptance
           ) -> tuple[dict[str, str], dict]:
    """``ofi-cvd-harvest publish`` on the store: PUT the quarantined tables to ``ofi_cvd/``
    through a journal and keep only the verdict (with the acceptance) in ``quarantine/``."""
    from ..schemas import DERIVED_KINDS
    from .publish import NothingQuarantined

    recover(storage)
    root = LakeUrl(storage.url)
    store, prefix = storage.object_store()
    q = f"{QUARANTINE_DIR}/{partition_key(date, symbol)}"
    present = {k.rsplit("/", 2)[-2].removeprefix("kind=")
               for k, _ in store.list(_key(prefix, q) + "/") if k.endswith("/part-00000.parquet")}
    record = vd.read(root, date, symbol)
    if not present:
        status = (record or {}).get("status")
        raise NothingQuarantined(f"no quarantined tables for {date}|{symbol} under {root / q}"
                                 + (f" (dq.json says {status!r})" if status else ""))
    kinds = [k for k in DERIVED_KINDS if k in present]
    record = dict(record or {"partition": f"{date}|{symbol}", "date": date, "symbol": symbol})
    record["status"] = "accepted"
    record["accepted"] = acceptance.record(record.get("failed_checks", []))
    record["tables"] = kinds
    moves = [(f"{q}/kind={k}/part-00000.parquet", layout.derived_file(date, symbol, k)) for k in kinds]
    _run_journal(storage, date, symbol, moves, record)
    return {k: str(root / layout.derived_file(date, symbol, k)) for k in kinds}, record


def quarantine(stage: ObjectRunStage, kinds: list[str], record: dict) -> dict[str, str]:
    """Replace the partition's quarantined version by the staged ``kinds`` and ``dq.json``."""
    store, prefix = stage.store, stage.prefix
    q = f"{QUARANTINE_DIR}/{partition_key(stage.date, stage.symbol)}"
    for key, _ in store.list(_key(prefix, q) + "/"):
        store.delete(key)
    out = {}
    for k in kinds:
        body = store.get(stage.key(stage.table_rel(k)))
        dst = f"{q}/kind={k}/part-00000.parquet"
        store.put(_key(prefix, dst), body or b"")
        out[k] = str(stage.root / dst)
    store.put(_key(prefix, f"{q}/{vd.NAME}"), _json(record))
    return out
