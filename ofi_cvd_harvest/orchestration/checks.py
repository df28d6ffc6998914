"""The DoD checks (docs/dq.md) as the derived multi-asset's ``check_specs`` and results.

Thin: the checks themselves are the gate's registry (:data:`ofi_cvd_harvest.gate.checks.DOD_CHECKS`
— adding a check is one entry there); here each becomes a partitioned ``AssetCheckSpec`` on its
asset, and each evaluation an ``AssetCheckResult`` whose metadata holds the measured value, the
threshold from ``acceptance_criteria`` and the worst offenders. The checks run *inside* the
multi-asset's step, on the staged tables, before anything is published
(``orchestration/assets.py``); a failed blocking check therefore fails the step with nothing
published. Reported-only figures (``passed is None``) always pass with their numbers; a failed
non-blocking check shows with its own severity (WARN) and holds nothing back. A failure the
user accepted (``publish_on_fail``) shows as failed with severity WARN, saying who accepted it.
"""

import warnings
from typing import Any

import dagster as dg

from ..dq.base import MetricResult
from ..gate.checks import DOD_CHECKS, DodCheck, checks_by_asset
from .partitions import date_symbol_partitions

# asset -> the checks on it (each check sits on the asset whose data it judges)
CHECKS_BY_ASSET: dict[str, tuple[str, ...]] = checks_by_asset()
REPORTED_ONLY = {c.name for c in DOD_CHECKS if not c.blocking}


def check_specs() -> list[dg.AssetCheckSpec]:
    with warnings.catch_warnings():   # partitioned check specs are "preview" in Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(c.name, asset=dg.AssetKey(c.asset), blocking=c.blocking,
                                  description=c.description, partitions_def=date_symbol_partitions,
                                  metadata={"severity": c.severity})
                for c in DOD_CHECKS]


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


def check_result(c: DodCheck, r: MetricResult, *, accepted_by: str | None = None,
                 staged: bool = True) -> dg.AssetCheckResult:
    """The Dagster result of one evaluation. ``accepted_by``: the run publishes despite failed
    blocking checks (``publish_on_fail``), so a failure shows as a warning naming who accepted."""
    if r.passed is None:
        passed, verdict = True, "reported"
    else:
        passed = bool(r.passed)
        verdict = "pass" if passed else ("WARN" if c.severity == "WARN" else "FAIL")
    value = f"{r.value:.6g}" if isinstance(r.value, float) else r.value
    text = (f"{r.name} = {value} (needs {r.op} {r.threshold}): {verdict}" if r.passed is not None
            else f"{r.name} = {value} (reported)")
    if "error" in r.details:
        text += f" — {r.details['error']}"
    severity = dg.AssetCheckSeverity.WARN if c.severity == "WARN" else dg.AssetCheckSeverity.ERROR
    md = metadata(r)
    md["evaluated_on"] = "staged tables (before publishing)" if staged else "published tables"
    if not passed and c.blocking and accepted_by:
        severity = dg.AssetCheckSeverity.WARN
        text += f" — accepted by {accepted_by} (publish_on_fail)"
        md["accepted_by"] = accepted_by
    return dg.AssetCheckResult(asset_key=dg.AssetKey(c.asset), check_name=c.name, passed=passed,
                               severity=severity, metadata=md, description=text)
