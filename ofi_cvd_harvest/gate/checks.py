"""The one registry of DoD checks (docs/dq.md): name, asset, blocking, severity, metric.

Everything that runs a check reads this list: the Dagster multi-asset's ``check_specs``
(``orchestration/checks.py``), the gate's verdict (:mod:`.run`) and ``dq.json``. Adding a check
is one :class:`DodCheck` entry in :data:`DOD_CHECKS`; its ``metric`` is any function
``Evaluation -> MetricResult`` (:mod:`ofi_cvd_harvest.dq.base`) — by default the metric of the
same name in :data:`ofi_cvd_harvest.dq.metrics.METRICS`. A function with another signature is
wrapped in a small adapter here (a lambda taking the ``Evaluation``).

Examples (a WARN-level non-blocking metric of ``dq/metrics.py``; a blocking check whose function
takes the raw partition rather than an ``Evaluation``)::

    DodCheck("events_per_hour", "events", False, "Signal events per covered hour (upper bound)",
             severity="WARN"),
    DodCheck("raw_files_readable", "prices", True, "Every raw file of the partition reads back",
             metric=lambda ev: raw_files_readable(ev.scope.raw_root, ev.scope.dates[0], ev.scope.symbol)),

* ``blocking=True``: a failure (``passed is False``) keeps the partition out of ``data/ofi_cvd/``.
* ``blocking=False``: reported; a failure never holds a partition back. ``severity="WARN"``
  shows it as a warning in Dagster (e.g. "signals look like noise"); figures that are reported
  only (``passed is None``, e.g. book ``pu`` gaps) always show as passed with their numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal

from ..dq.base import Evaluation, MetricResult
from ..dq.metrics import METRICS, WARN_METRICS, evaluate_fns
from ..dq.source import Scope, UnusableInput
from ..settings import Settings

MetricFn = Callable[[Evaluation], MetricResult]


@dataclass(frozen=True)
class DodCheck:
    name: str
    asset: str                      # the derived table the check sits on in Dagster
    blocking: bool
    description: str
    severity: Literal["ERROR", "WARN"] = "ERROR"
    metric: MetricFn | None = None  # default: METRICS[name]

    @property
    def fn(self) -> MetricFn:
        return self.metric or METRICS[self.name]


def _schema(kind: str) -> str:
    return f"Exact columns, order and types of {kind.replace('raw_', 'raw ')} vs schemas.py"


def _monotonic(kind: str) -> str:
    return f"Timestamps of {kind} never go back in the table's defined order (inversions = 0)"


DOD_CHECKS: tuple[DodCheck, ...] = (
    # prices
    DodCheck("empty_bucket_rate", "prices", True,
             "Share of 1-minute buckets without a trade over the covered window"),
    DodCheck("duplicate_rate", "prices", True, "(rows - distinct agg_trade_id) / rows in raw agg_trade"),
    DodCheck("prices_duplicates", "prices", True, "Repeated agg_trade_id in prices (must be 0)"),
    DodCheck("latency_p99_ms", "prices", True, "p99 of latency_ms over ws rows of prices"),
    DodCheck("latency_p50_ms", "prices", True, "p50 of latency_ms over ws rows of prices"),
    DodCheck("missing_trades", "prices", True,
             "Holes in the agg_trade_id sequence inside the covered window (must be 0)"),
    DodCheck("schema_prices", "prices", True, _schema("prices")),
    DodCheck("schema_raw_agg_trade", "prices", True, _schema("raw_agg_trade")),
    DodCheck("monotonic_prices", "prices", True, _monotonic("prices")),
    DodCheck("raw_files_readable", "prices", True,
             "Damaged raw files (every page + CRC read once; must be 0, named)"),
    # cvd
    DodCheck("winsor_effect", "cvd", True, "1 - std(z_cvd)/std(z_raw); share clipped reported beside it"),
    DodCheck("schema_cvd", "cvd", True, _schema("cvd")),
    DodCheck("monotonic_cvd", "cvd", True, _monotonic("cvd")),
    DodCheck("regime_labels_seen", "cvd", False, "Regime labels seen (reported, not gated)"),
    # ofi
    DodCheck("crossed_book_rows", "ofi", True, "Raw book rows with best bid >= best ask (must be 0)"),
    DodCheck("book_pu_gaps", "ofi", False, "Book pu-chain gaps (reported, not gated)"),
    DodCheck("schema_ofi", "ofi", True, _schema("ofi")),
    DodCheck("schema_raw_book", "ofi", True, _schema("raw_book")),
    DodCheck("monotonic_ofi", "ofi", True, _monotonic("ofi")),
    # fusion
    DodCheck("schema_fusion", "fusion", True, _schema("fusion")),
    DodCheck("monotonic_fusion", "fusion", True, _monotonic("fusion")),
    # events
    DodCheck("events_per_72h", "events", True, "Signal events scaled to 72 h by covered hours"),
    DodCheck("events_per_hour", "events", False,
             "Signal events per covered hour, per type and in total (warns above the bound)",
             severity="WARN"),
    DodCheck("schema_events", "events", True, _schema("events")),
    DodCheck("schema_raw_ops", "events", True, _schema("raw_ops")),
    DodCheck("monotonic_events", "events", True, _monotonic("events")),
    DodCheck("clock_drift_events", "events", False, "Clock-drift ops events (reported, not gated)"),
)
BY_NAME: dict[str, DodCheck] = {c.name: c for c in DOD_CHECKS}
assert len(BY_NAME) == len(DOD_CHECKS), "duplicate DoD check name"
assert {c.name for c in DOD_CHECKS if c.severity == "WARN"} == WARN_METRICS, \
    "WARN-level checks and dq.metrics.WARN_METRICS (what the report warns on) must agree"


def checks_by_asset() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for c in DOD_CHECKS:
        out.setdefault(c.asset, []).append(c.name)
    return {a: tuple(n) for a, n in out.items()}


def evaluate(data_dir: str | Path, settings: Settings, date: str, symbol: str,
             names: Iterable[str] | None = None, *, derived_root: str | Path | None = None
             ) -> list[tuple[DodCheck, MetricResult]]:
    """Run the named checks (all by default) on one partition: the raw files under
    ``data_dir/raw`` and the derived tables under ``derived_root`` (default ``data_dir/ofi_cvd``;
    the gate points it at the staged tables). An unreadable input fails every check with the
    reason instead of raising."""
    wanted = [BY_NAME[n] for n in names] if names is not None else list(DOD_CHECKS)
    scope = Scope(data_dir, symbol, (date,), derived_root=derived_root or None)
    try:
        results = evaluate_fns(Evaluation(scope, settings), [(c.name, c.fn) for c in wanted])
    except UnusableInput as exc:
        results = [MetricResult(c.name, None, None, False, {"error": str(exc)}) for c in wanted]
    finally:
        scope.close()
    return list(zip(wanted, results))
