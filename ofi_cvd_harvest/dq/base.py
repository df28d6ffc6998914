"""What a metric is (:class:`MetricResult`) and what it sees (:class:`Evaluation`).

Every metric is a function ``Evaluation -> MetricResult`` so the Dagster checks, the JSON report
and the CLI compute the exact same numbers. ``passed is None`` marks a figure that is reported
but does not gate (e.g. book ``pu`` gaps, regime labels seen).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from ..settings import Settings
from .source import Scope
from .window import Window, covered_window


@dataclass
class MetricResult:
    name: str
    value: float | int | None
    threshold: float | int | None
    passed: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    # "<" / ">=" / "==" : how value compares to threshold for a pass (documentation + report)
    op: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["value"] = _finite(self.value)
        return out


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def iso_ms(ms: int | None) -> str | None:
    """UTC ISO-8601 of epoch milliseconds (for human-readable offenders in metadata)."""
    if ms is None:
        return None
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Evaluation:
    """One scope under one set of settings, with the covered window computed once."""

    scope: Scope
    settings: Settings
    cache: dict[str, Any] = field(default_factory=dict)   # shared intermediate results

    @cached_property
    def window(self) -> Window | None:
        return covered_window(self.scope)

    def window_details(self) -> dict[str, Any]:
        w = self.window
        if w is None:
            return {"window": None}
        return {"window": {**w.as_dict(), "start": iso_ms(w.start_ms), "end": iso_ms(w.end_ms)}}

    def missing(self, name: str, view: str, threshold: float | int | None, op: str,
                gating: bool = True) -> MetricResult:
        """The result when a table the metric needs has no files in the scope."""
        return MetricResult(name, None, threshold, False if gating else None,
                            {"error": f"no {view} files for {self.scope.symbol} "
                                      f"{','.join(self.scope.dates)}"}, op)


def gate(value: float | None, threshold: float, op: str) -> bool:
    """Compare a measured value with its threshold (a missing value never passes)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return {"<": value < threshold, "<=": value <= threshold, ">=": value >= threshold,
            "==": value == threshold}[op]
