"""``artifacts/state/checkpoint.json``: where a restarted capture resumes (docs/capture.md).

Per symbol: ``last_trade_id`` (the highest id durably in a final file), ``open_gaps`` (ids
at or below it that are not durable yet: unhealed gaps, rows whose write failed),
``last_event_ts_ms`` and ``last_book_update_id``. A restart owes everything after
``last_trade_id`` plus ``open_gaps`` and heals it through REST. Written atomically
(temp file, fsync, rename) so a crash leaves the old or the new version, never half.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

VERSION = 1


@dataclass
class SymbolCheckpoint:
    last_trade_id: int | None = None
    open_gaps: list[list[int]] = field(default_factory=list)
    last_event_ts_ms: int | None = None
    last_book_update_id: int | None = None


@dataclass
class Checkpoint:
    symbols: dict[str, SymbolCheckpoint] = field(default_factory=dict)
    updated_ms: int = 0
    version: int = VERSION


def path_in(artifacts_dir: str | os.PathLike) -> Path:
    return Path(artifacts_dir) / "state" / "checkpoint.json"


def load(path: str | os.PathLike) -> Checkpoint | None:
    """The checkpoint at ``path``; None if absent. A corrupt file raises ValueError."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        doc = json.loads(p.read_text())
        syms = {}
        for sym, d in (doc.get("symbols") or {}).items():
            syms[sym] = SymbolCheckpoint(
                last_trade_id=None if d.get("last_trade_id") is None else int(d["last_trade_id"]),
                open_gaps=[[int(a), int(b)] for a, b in d.get("open_gaps") or []],
                last_event_ts_ms=d.get("last_event_ts_ms"),
                last_book_update_id=d.get("last_book_update_id"))
        return Checkpoint(syms, int(doc.get("updated_ms") or 0), int(doc.get("version") or 1))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"checkpoint {p}: unreadable ({exc})") from None


def save(path: str | os.PathLike, cp: Checkpoint) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cp.updated_ms = int(time.time() * 1000)
    data = json.dumps({"version": cp.version, "updated_ms": cp.updated_ms,
                       "symbols": {s: asdict(c) for s, c in sorted(cp.symbols.items())}},
                      indent=1).encode()
    tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    fd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
