"""Run tags the project sets and reads, stated once (docs/dagster.md).

``ofi_cvd/capture_group`` is the run queue's one-run-per-group limit (a symbol group, or a
shard's name in shards mode); the pid/host tags let capture_sensor see a dead worker under the
default launcher; ``dagster-celery/queue`` routes a run to one host's Celery queue and
``dagster-k8s/config`` gives a run's Kubernetes Job its resources (orchestration/launcher.py).
"""

from __future__ import annotations

GROUP_TAG = "ofi_cvd/capture_group"
ROLE_TAG = "ofi_cvd/role"
PID_TAG = "ofi_cvd/pid"
HOST_TAG = "ofi_cvd/host"
PID_START_TAG = "ofi_cvd/pid_create_time"
TRIGGER_TAG = "ofi_cvd/trigger"
MAX_RUNTIME_TAG = "dagster/max_runtime"
PARTITION_TAG = "dagster/partition"
PRIORITY_TAG = "dagster/priority"           # the run queue launches the highest first
QUEUE_TAG = "dagster-celery/queue"          # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG
K8S_CONFIG_TAG = "dagster-k8s/config"       # dagster_k8s.job.USER_DEFINED_K8S_CONFIG_KEY
# Beyond the planned duration: time to finalise, heal the last gap and write the checkpoint.
RUNTIME_MARGIN_SEC = 3600


def group_name(symbols) -> str:
    """The concurrency-limit tag value of a symbol group (order-insensitive)."""
    return "-".join(sorted(symbols))


def max_runtime_sec(run_seconds: float) -> int:
    return int(run_seconds) + RUNTIME_MARGIN_SEC


def capture_run_tags(symbols, run_seconds: float, *, name: str | None = None,
                     queue: str | None = None) -> dict[str, str]:
    """Tags of a capture run: the one-per-group concurrency key (``name``, else the group's
    symbols), a max runtime for this job only, the queue priority above derivations, its
    Kubernetes resources (ignored by other launchers) and the host queue when one is given."""
    from .launcher import k8s_config_tags, queue_tags
    from .run_queue import CAPTURE_PRIORITY
    tags = {GROUP_TAG: name or group_name(symbols), ROLE_TAG: "capture",
            MAX_RUNTIME_TAG: str(max_runtime_sec(run_seconds)),
            PRIORITY_TAG: str(CAPTURE_PRIORITY), **k8s_config_tags("capture")}
    if queue:
        tags.update(queue_tags(queue))
    return tags
