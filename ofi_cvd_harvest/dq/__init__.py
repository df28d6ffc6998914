"""Data-quality gate (docs/dq.md): DoD metrics with DuckDB over the Parquet partitions, the JSON
report, the ``validate`` command and the precheck. Checks, report and CLI share one engine."""

from .metrics import MetricResult, partition_metrics, scope_metrics
from .source import UnusableInput

__all__ = ["MetricResult", "UnusableInput", "partition_metrics", "scope_metrics"]
