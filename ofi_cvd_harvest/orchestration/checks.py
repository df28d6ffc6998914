"""Blocking, partitioned asset checks: the DoD gate of SPEC §6 inside Dagster.

One multi-asset check per derived asset evaluates that asset's metrics for the run's
``date|SYMBOL`` partition (read by ``context.partition_key``, never by "latest materialisation",
which races in concurrent backfills) with the same engine as the report (:mod:`ofi_cvd_harvest.dq`).
Gating checks are ``blocking``: a failure (severity ERROR) stops the downstream assets of the same
run. Reported-only figures (book ``pu`` gaps, regime labels, clock drift) always pass and carry
their numbers as metadata. Every result's metadata holds the measured value, the threshold from
``acceptance_criteria`` and the worst offenders.
"""

import warnings
from typing import Any, Iterator

import dagster as dg

from ..dq.base import MetricResult
from ..dq.metrics import METRICS, WARN_METRICS, partition_metrics
from ..dq.source import UnusableInput
from .partitions import date_symbol_partitions, split_key
from .resources import HarvestSettings

# asset -> the metrics checked on it (each metric sits on the asset whose data it judges)
CHECKS_BY_ASSET: dict[str, tuple[str, ...]] = {
    "prices": ("empty_bucket_rate", "duplicate_rate", "prices_duplicates", "latency_p99_ms",
               "latency_p50_ms", "missing_trades", "schema_prices", "schema_raw_agg_trade",
               "monotonic_prices", "raw_files_readable"),
    "cvd": ("winsor_effect", "schema_cvd", "monotonic_cvd", "regime_labels_seen"),
    "ofi": ("crossed_book_rows", "book_pu_gaps", "schema_ofi", "schema_raw_book", "monotonic_ofi"),
    "fusion": ("schema_fusion", "monotonic_fusion"),
    "events": ("events_per_72h", "events_per_hour", "schema_events", "schema_raw_ops", "monotonic_events",
               "clock_drift_events"),
}
REPORTED_ONLY = {"book_pu_gaps", "regime_labels_seen", "clock_drift_events"}
DESCRIPTIONS = {
    "empty_bucket_rate": "Share of 1-minute buckets without a trade over the covered window",
    "duplicate_rate": "(rows - distinct agg_trade_id) / rows in raw agg_trade",
    "prices_duplicates": "Repeated agg_trade_id in prices (must be 0)",
    "latency_p99_ms": "p99 of latency_ms over ws rows of prices",
    "latency_p50_ms": "p50 of latency_ms over ws rows of prices",
    "missing_trades": "Holes in the agg_trade_id sequence inside the covered window (must be 0)",
    "events_per_72h": "Signal events scaled to 72 h by covered hours",
    "events_per_hour": "Signal events per covered hour, per type and in total (warns above the bound)",
    "winsor_effect": "1 - std(z_cvd)/std(z_raw); share clipped reported beside it",
    "crossed_book_rows": "Raw book rows with best bid >= best ask (must be 0)",
    "book_pu_gaps": "Book pu-chain gaps (reported, not gated)",
    "regime_labels_seen": "Regime labels seen (reported, not gated)",
    "clock_drift_events": "Clock-drift ops events (reported, not gated)",
    "raw_files_readable": "Damaged raw files (every page + CRC read once; must be 0, named)",
}
assert all(m in METRICS for ms in CHECKS_BY_ASSET.values() for m in ms)


def _describe(name: str) -> str:
    if name.startswith("schema_"):
        return f"Exact columns, order and types of {name[7:].replace('raw_', 'raw ')} vs schemas.py"
    if name.startswith("monotonic_"):
        return f"Timestamps of {name[10:]} never go back in the table's defined order (inversions = 0)"
    return DESCRIPTIONS[name]


def _meta_value(v: Any) -> Any:
    if v is None:
        return dg.MetadataValue.text("n/a")
    if isinstance(v, (dict, list, tuple)):
        return dg.MetadataValue.json(v)
    return v


def metadata(r: MetricResult) -> dict[str, Any]:
    """Value, threshold, comparison and the details (worst offenders) as Dagster metadata."""
    out = {"value": _meta_value(r.value), "threshold": _meta_value(r.threshold),
           "comparison": r.op or "reported", "gated": r.passed is not None}
    for k, v in r.details.items():
        out[k] = _meta_value(v)
    return out


def _result(key: dg.AssetCheckKey, r: MetricResult) -> dg.AssetCheckResult:
    if r.passed is None:
        passed, verdict = True, "reported"
    else:
        passed = bool(r.passed)
        verdict = "pass" if passed else ("WARN" if r.name in WARN_METRICS else "FAIL")
    value = f"{r.value:.6g}" if isinstance(r.value, float) else r.value
    text = (f"{r.name} = {value} (needs {r.op} {r.threshold}): {verdict}" if r.passed is not None
            else f"{r.name} = {value} (reported)")
    if "error" in r.details:
        text += f" — {r.details['error']}"
    return dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=passed,
                               severity=(dg.AssetCheckSeverity.WARN if r.name in WARN_METRICS
                                         else dg.AssetCheckSeverity.ERROR), metadata=metadata(r),
                               description=text)


def _build(asset: str, names: tuple[str, ...]) -> dg.AssetChecksDefinition:
    with warnings.catch_warnings():   # partitioned check specs are "preview" in Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [dg.AssetCheckSpec(n, asset=dg.AssetKey(asset), blocking=n not in REPORTED_ONLY | WARN_METRICS,
                                   description=_describe(n), partitions_def=date_symbol_partitions)
                 for n in names]

    @dg.multi_asset_check(name=f"{asset}_dq_checks", specs=specs, can_subset=True,
                          description=f"DQ gate (SPEC §6) for {asset}")
    def _checks(context: dg.AssetCheckExecutionContext, harvest: HarvestSettings
                ) -> Iterator[dg.AssetCheckResult]:
        date, symbol = split_key(context.partition_key)
        settings = harvest.settings()
        keys = {k.name: k for k in context.selected_asset_check_keys}
        wanted = [n for n in names if n in keys]
        try:
            results = partition_metrics(settings.data_dir, settings, date, symbol, wanted)
        except UnusableInput as exc:
            context.log.error(str(exc))
            results = [MetricResult(n, None, None, False, {"error": str(exc)}) for n in wanted]
        for r in results:
            context.log.info(f"{date}|{symbol} {r.name}: value={r.value} threshold={r.threshold} "
                             f"passed={r.passed}")
            yield _result(keys[r.name], r)

    return _checks


all_checks: list[dg.AssetChecksDefinition] = [_build(a, n) for a, n in CHECKS_BY_ASSET.items()]
