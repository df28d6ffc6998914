"""Full verification of raw files, done once per file and remembered (docs/dq.md "Raw files").

A footer can be intact while a column page is bit-rotted: reading only metadata (as the DQ
views once did) reports clean figures, and the damage surfaces later as an anonymous
``ZSTD decompression failed`` in a derivation. So every raw file is read completely once —
every page of every row group, with the Parquet page CRCs the writer adds
(:func:`.fs.parquet_options`) verified — and its schema compared with ``schemas.py``.

The verdict is remembered per stream directory in ``_verified.json`` (``{name: [size,
mtime_ns, reason|null]}``), so a 72 h lake is not re-read on each run: a file is read again
only when its size or mtime changes. The ``_`` prefix and the ``.json`` suffix keep the
manifest out of every Parquet listing and of hive discovery. A lost manifest update (two
processes at once, a read-only disk) only costs a re-read.

A damaged file (zero bytes, truncated, wrong schema, a page that fails its CRC or does not
decompress) is named with the reason, left out of what callers read, and recorded once as a
``raw_file_damaged`` ops row in its partition (written by :func:`record_damaged`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .. import schemas
from . import layout
from .fs import TMP_SUFFIX, Storage

log = logging.getLogger(__name__)

MANIFEST = "_verified.json"
LOCK = "_verified.lock"
OPS_EVENT = "raw_file_damaged"
_PART_RE = re.compile(r"part-(\d+)-\d+\.parquet$")


def stream_of(path: str) -> str | None:
    """The ``stream=…`` of a raw file path (None if the path is not in the raw layout)."""
    for part in path.replace("\\", "/").split("/"):
        if part.startswith("stream="):
            return part[7:]
    return None


def check_file(path: str, expected: pa.Schema | None = None,
               filesystem: pafs.FileSystem | None = None) -> str | None:
    """None if ``path`` reads completely (every page, CRCs verified) with the ``expected``
    schema; otherwise a one-line reason."""
    try:
        pf = pq.ParquetFile(path, filesystem=filesystem, page_checksum_verification=True)
    except (PermissionError, FileNotFoundError):
        raise                   # not a property of the file's bytes: see _verify_dir
    except (OSError, pa.ArrowException) as exc:
        return f"unreadable footer: {_short(exc)}"
    try:
        if expected is not None:
            diff = _schema_diff(pf.schema_arrow, expected)
            if diff:
                return f"wrong schema: {diff}"
        for i in range(pf.num_row_groups):
            pf.read_row_group(i)
    except (OSError, pa.ArrowException, ValueError) as exc:
        return f"damaged data: {_short(exc)}"
    finally:
        pf.close()
    return None


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _norm(t: pa.DataType) -> str:
    """A type as every reader here sees it: large/small string and list variants are one type
    (polars writes ``large_string``; DuckDB, polars and pyarrow read either)."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return f"list<{_norm(t.value_type)}>"
    if pa.types.is_list(t):
        return f"list<{_norm(t.value_type)}>"
    return str(t)


def _schema_diff(got: pa.Schema, want: pa.Schema) -> str:
    """'' when ``got`` holds exactly ``want``'s columns with its types (order may differ)."""
    g = {f.name: _norm(f.type) for f in got}
    w = {f.name: _norm(f.type) for f in want}
    missing = [n for n in w if n not in g]
    extra = [n for n in g if n not in w]
    typed = [f"{n} {g[n]} (expected {w[n]})" for n in w if n in g and g[n] != w[n]]
    bits = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"unexpected {', '.join(extra)}"] if extra else []) + typed
    return "; ".join(bits)


@dataclass
class Verdict:
    good: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)       # path -> reason
    new_damaged: dict[str, str] = field(default_factory=dict)   # found on this call
    read_bytes: int = 0                                         # bytes verified on this call
    read_files: int = 0


def verify(storage: Storage, paths: Iterable[str], *, record: bool = True) -> Verdict:
    """Split raw ``paths`` into good and damaged, reading only files not verified before (or
    changed since). ``record`` writes an ops row for each newly damaged file."""
    by_dir: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        by_dir[p.rsplit("/", 1)[0]].append(p)
    out = Verdict()
    for d, ps in by_dir.items():
        _verify_dir(storage, d, ps, out)
    if record and out.new_damaged:
        record_damaged(storage, out.new_damaged)
    return out


def _verify_dir(storage: Storage, d: str, paths: list[str], out: Verdict) -> None:
    stream = stream_of(d)
    expected = schemas.RAW_SCHEMAS.get(stream or "")
    with _dir_lock(storage, d):
        known = _load(storage, d)
        infos = storage.fs.get_file_info(paths)
        changed = False
        for p, info in zip(paths, infos):
            name = p.rsplit("/", 1)[1]
            if info.type != pafs.FileType.File:
                continue                       # gone since it was listed
            entry = known.get(name)
            if entry is not None and entry[0] == info.size and entry[1] == info.mtime_ns:
                reason = entry[2]
            else:
                try:
                    reason = check_file(p, expected, storage.fs)
                except FileNotFoundError:
                    continue                   # removed meanwhile
                except PermissionError as exc:
                    # unreadable for us now, not damaged: named, but neither remembered nor
                    # recorded (it is checked again once readable)
                    out.damaged[p] = f"not readable: {exc.strerror or exc}"
                    continue
                known[name] = [info.size, info.mtime_ns, reason]
                changed = True
                out.read_files += 1
                out.read_bytes += info.size or 0
                if reason is not None:
                    out.new_damaged[p] = reason
                    log.error("raw file damaged: %s: %s", p, reason)
            if reason is None:
                out.good.append(p)
            else:
                out.damaged[p] = reason
        if changed:
            _save(storage, d, known)


def _load(storage: Storage, d: str) -> dict[str, list]:
    try:
        with storage.fs.open_input_stream(f"{d}/{MANIFEST}") as fh:
            doc = json.loads(fh.read())
        files = doc.get("files") if isinstance(doc, dict) else None
        return {k: v for k, v in (files or {}).items()
                if isinstance(v, list) and len(v) == 3}
    except (OSError, ValueError, pa.ArrowException):
        return {}      # absent or unreadable: everything is verified again


def _save(storage: Storage, d: str, known: dict[str, list]) -> None:
    final = f"{d}/{MANIFEST}"
    # an object store writes the object whole in one PUT: no temporary name there
    tmp = final if not storage.local else f"{final}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
    try:
        with storage.fs.open_output_stream(tmp) as fh:
            fh.write(json.dumps({"version": 1, "files": known}, separators=(",", ":")).encode())
        if tmp != final:
            storage.fs.move(tmp, final)
    except (OSError, pa.ArrowException) as exc:
        log.warning("cannot remember verified files in %s: %s", d, exc)
        if tmp != final:
            with contextlib.suppress(OSError, pa.ArrowException):
                storage.fs.delete_file(tmp)


@contextlib.contextmanager
def _dir_lock(storage: Storage, d: str) -> Iterator[None]:
    """Serialise verification of one directory between processes (local roots only), so
    concurrent derivation steps read a new file once and record its damage once."""
    if not storage.local:
        yield
        return
    import fcntl
    try:
        fd = os.open(f"{d}/{LOCK}", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield                                  # read-only directory: verify without the lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_damaged(storage: Storage, damaged: dict[str, str]) -> list[str]:
    """One ``raw_file_damaged`` ops row per file, in the ops stream directory beside the file
    (the derived ``events`` table and the DQ report then show it); returns files written."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for path, reason in damaged.items():
        if storage.local:
            path = os.path.realpath(path)
        parts = dict(p.split("=", 1) for p in path.replace("\\", "/").split("/") if "=" in p)
        date, symbol, stream = parts.get("date"), parts.get("symbol"), stream_of(path)
        if not date or not symbol or not path.startswith(storage.root + "/"):
            continue
        rel = path[len(storage.root) + 1:]
        # stamped at the file's first row (its name), so the row falls in the partition's day
        m = _PART_RE.search(path)
        d0, d1 = layout.day_bounds_ms(date)
        ts = min(max(int(m.group(1)), d0), d1 - 1) if m else d0
        ops_dir = rel.rsplit("/", 2)[0] + "/stream=ops"
        rows[ops_dir].append({"recv_ts_ms": ts, "symbol": symbol, "event_type": OPS_EVENT,
                              "meta_json": json.dumps({"path": rel, "stream": stream,
                                                       "reason": reason})})
    written = []
    for ops_dir, rs in rows.items():
        # seq 0: the capture's writer numbers its files from 1, so names never collide
        rel = f"{ops_dir}/part-{min(r['recv_ts_ms'] for r in rs)}-{0:06d}.parquet"
        try:
            table = pa.Table.from_pylist(rs, schema=schemas.OPS)
            written.append(storage.write_parquet(rel, table))
        except (OSError, ValueError, pa.ArrowException) as exc:
            log.warning("cannot record damaged raw files in %s: %s", rel, exc)
    return written
