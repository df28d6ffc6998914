"""``raw_files_readable``: every raw file of the scope reads completely (docs/dq.md "Raw files").

A footer-only look reports clean figures over a file whose column page is bit-rotted; the
scope (:class:`.source.Scope`) verifies each raw file in full once (every page, CRCs,
schema — :mod:`..storage.verify`), leaves damaged ones out of every other metric, and this
metric fails naming each of them with the reason. Blocking: derived tables built without a
file's rows are not complete.
"""

from __future__ import annotations

from ..schemas import RAW_STREAMS
from .base import Evaluation, MetricResult

NAME = "raw_files_readable"
MAX_NAMED = 20


def raw_files_readable(ev: Evaluation) -> MetricResult:
    scope = ev.scope
    total = sum(len(scope.files(f"raw_{s}")) for s in RAW_STREAMS)   # verifies, fills damaged
    bad = sorted(scope.damaged.items())
    details: dict = {"files_readable": total, "files_damaged": len(bad),
                     "damaged": [{"path": p, "reason": r} for p, r in bad[:MAX_NAMED]]}
    if bad:
        details["error"] = "; ".join(f"{p}: {r}" for p, r in bad[:3]) + (
            f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
    return MetricResult(NAME, len(bad), 0, not bad, details, "==")


METRICS = {NAME: raw_files_readable}
