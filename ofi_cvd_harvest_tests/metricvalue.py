"""The current value of one Prometheus series in this process's registry (0 if never set), so a
test can compare a counter before and after what it drives."""

from __future__ import annotations

from ofi_cvd_harvest.monitoring import metrics


def metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0
