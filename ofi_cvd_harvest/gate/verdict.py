"""``dq.json``: the gate's verdict on a quarantined (or explicitly accepted) partition.

It sits at ``quarantine/date=D/symbol=S/dq.json`` (docs/dq.md) and says which checks ran, their
values, thresholds and comparisons, which blocking ones failed, when, from which run, how many
derivations in a row failed (the sensor backs off on it), and — once a user accepts the
partition — who accepted it, when, how, and which checks had failed. Written atomically.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..dq.base import MetricResult
from .area import fsync_dir, quarantine_dir
from .checks import DodCheck

NAME = "dq.json"
FORMAT = 1


def who() -> str:
    """``user@host`` of this process (the acceptance record's default "by")."""
    try:
        user = getpass.getuser()
    except Exception:   # no login name in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Acceptance:
    """An explicit decision to publish a partition that failed blocking checks."""

    by: str
    via: str   # "run config publish_on_fail (run …)" / "ofi-cvd-harvest publish"

    def record(self, failed: Iterable[str], t: float | None = None) -> dict:
        t = time.time() if t is None else t
        return {"by": self.by, "via": self.via, "at": now_iso(t), "at_ms": int(t * 1000),
                "failed_checks": list(failed)}


def _plain(x: Any) -> Any:
    """JSON-safe: non-finite floats become null, unknown objects their string."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if x is None or isinstance(x, (str, int, bool)):
        return x
    if hasattr(x, "item"):   # numpy scalars
        return _plain(x.item())
    return str(x)


def check_entry(c: DodCheck, r: MetricResult) -> dict:
    return {"name": c.name, "asset": c.asset, "blocking": c.blocking, "severity": c.severity,
            "passed": r.passed, "value": _plain(r.value), "threshold": _plain(r.threshold),
            "comparison": r.op or "reported", "details": _plain(r.details)}


def failed_blocking(results: Iterable[tuple[DodCheck, MetricResult]]) -> list[str]:
    return [c.name for c, r in results if c.blocking and r.passed is False]


def build(date: str, symbol: str, results: list[tuple[DodCheck, MetricResult]], *,
          status: str, tables: Iterable[str], run: str,
          previous: dict | None = None, accepted: dict | None = None,
          t: float | None = None) -> dict:
    """The verdict document. ``previous``: the partition's former ``dq.json`` (counts failures
    in a row: the sensor's back-off)."""
    t = time.time() if t is None else t
    failed = failed_blocking(results)
    streak = 1
    if previous and previous.get("status") == "quarantined":
        streak = int(previous.get("consecutive_failures", 0)) + 1
    return {
        "format": FORMAT, "partition": f"{date}|{symbol}", "date": date, "symbol": symbol,
        "status": status, "time": now_iso(t), "time_ms": int(t * 1000), "run": run,
        "tables": list(tables), "failed_checks": failed,
        "warnings": [c.name for c, r in results if not c.blocking and r.passed is False],
        "consecutive_failures": streak if failed else 0,
        "accepted": accepted,
        "checks": [check_entry(c, r) for c, r in results],
    }


def write(path: Path, verdict: dict) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w") as f:
        json.dump(verdict, f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read(root: Path, date: str, symbol: str) -> dict | None:
    """The partition's ``dq.json`` (None when there is none or it is unreadable)."""
    try:
        out = json.loads((quarantine_dir(root, date, symbol) / NAME).read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None
