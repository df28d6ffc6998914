"""Where runs execute on several hosts: run tags for the Celery queue and for the Kubernetes Job,
and whether the instance's run launcher watches its run workers itself (docs/deploy.md,
"Many hosts").

- ``launcher_checks_workers``: Dagster's run monitoring asks the launcher whether a STARTED run's
  worker is still alive (``CeleryRunLauncher``: the Celery task state; ``K8sRunLauncher``: the
  Job's status). Where it can, the project's own pid check (capture_sensor) is redundant — and
  blind anyway to a worker on another host; the default launcher cannot, so the pid check stays
  for the one-box deployment.
- ``RUN_RESOURCES``: the one place for the CPU/memory a run asks of Kubernetes, from measured
  figures (docs/performance.md): a capture of the whole universe (300 symbols) held 470–780 MB
  RSS plus the live CVD window's ~180 MB bound at 58–70 % of one core; deriving one partition
  peaks at 0.6–2.5 GB (1.24 GB for a full day of BTCUSDT).
  ``k8s_config_tags(role)`` turns them into the ``dagster-k8s/config`` run tag that
  ``K8sRunLauncher`` applies to that run's Job.

The tag names are dagster-celery's and dagster-k8s's (tested equal); they are spelled in
``tags.py`` so the code location does not import the deployment-only packages.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from .tags import K8S_CONFIG_TAG, QUEUE_TAG

# Requests = what the scheduler reserves on a node (above the measured peak, so a node is never
# overcommitted by design); limits = where the kernel OOM-kills the container (well above the
# peak: a killed capture loses minutes to REST healing, a killed derivation is retried).
# No CPU limit on the capture: throttling a real-time consumer turns into backlog.
RUN_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "capture": {"requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"memory": "2Gi"}},
    "derive": {"requests": {"cpu": "1", "memory": "3Gi"},
               "limits": {"cpu": "2", "memory": "4Gi"}},
}


def launcher_checks_workers(instance: dg.DagsterInstance) -> bool:
    """True when run monitoring is on and the run launcher health-checks run workers, so a
    dead worker's run is failed (or resumed) by the daemon rather than by a pid check."""
    return bool(instance.run_monitoring_enabled
                and instance.run_launcher.supports_check_run_worker_health)


def k8s_config_tags(role: str) -> dict[str, str]:
    """The ``dagster-k8s/config`` tag giving a ``capture``/``derive`` run's Job container its
    resources (``ValueError`` for an unknown role: a run without them would be scheduled as
    best-effort and evicted first)."""
    if role not in RUN_RESOURCES:
        raise ValueError(f"no Kubernetes resources for run role {role!r} "
                         f"(known: {', '.join(sorted(RUN_RESOURCES))})")
    # SHALLOW: the role's resources replace the chart's default for untagged runs
    # (runLauncher...runK8sConfig in deploy/k8s/values.yaml) instead of being deep-merged into it
    config: dict[str, Any] = {"container_config": {"resources": RUN_RESOURCES[role]},
                              "merge_behavior": "SHALLOW"}
    return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)}


def queue_tags(host: str) -> dict[str, str]:
    """The Celery queue tag sending a run to the workers of ``host`` (one queue per host)."""
    host = host.strip()
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"a Celery queue name must be one word, got {host!r}")
    return {QUEUE_TAG: host}
