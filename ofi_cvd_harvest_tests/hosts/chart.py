"""The parts of the Dagster Helm chart's ``dagster.yaml`` that deploy/k8s/values.yaml sets,
rendered here the way the chart's templates do (no ``helm`` binary, no chart offline).

Mirrors ``templates/helpers/instance/_run-launcher.tpl`` (``dagsterYaml.runLauncher.k8s``),
``_postgresql.tpl``, ``_concurrency.tpl`` and the ``run_monitoring`` block of
``configmap-instance.yaml`` of the dagster/dagster chart (1.13 line), for the keys our values
use; an unknown key under the run launcher fails loudly instead of being dropped. The result is
then checked by Dagster itself (instance config schema, K8sRunLauncher's config schema).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "deploy" / "k8s" / "values.yaml"

# values key -> K8sRunLauncher config key, for the keys the template copies as they are
_LAUNCHER_KEYS = {"kubeconfigFile": "kubeconfig_file", "envVars": "env_vars",
                  "volumeMounts": "volume_mounts", "volumes": "volumes", "labels": "labels",
                  "resources": "resources", "schedulerName": "scheduler_name",
                  "securityContext": "security_context"}
_RUN_K8S_KEYS = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                 "podTemplateSpecMetadata": "pod_template_spec_metadata",
                 "jobSpecConfig": "job_spec_config", "jobMetadata": "job_metadata"}


def load_values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def fullname(release: str) -> str:
    """``dagster.fullname`` for a release whose name does not contain the chart name."""
    return f"{release}-dagster"


def run_launcher(values: dict, release: str, namespace: str) -> dict[str, Any]:
    cfg = values["runLauncher"]["config"]["k8sRunLauncher"]
    handled = {"loadInclusterConfig", "jobNamespace", "imagePullPolicy", "envConfigMaps", "envSecrets", "failPodOnRunFailure",
               "runK8sConfig", *_LAUNCHER_KEYS}
    unknown = set(cfg) - handled
    if unknown:
        raise KeyError(f"values keys this renderer does not know: {sorted(unknown)}")
    out: dict[str, Any] = {
        "load_incluster_config": cfg["loadInclusterConfig"],
        "job_namespace": cfg.get("jobNamespace") or namespace,
        "image_pull_policy": cfg["imagePullPolicy"],
        "service_account_name": fullname(release),
        "dagster_home": values.get("global", {}).get("dagsterHome", "/opt/dagster/dagster_home"),
        "instance_config_map": f"{fullname(release)}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    for key, target in _LAUNCHER_KEYS.items():
        if cfg.get(key):
            out[target] = cfg[key]
    if cfg.get("envConfigMaps"):
        out["env_config_maps"] = [c["name"] for c in cfg["envConfigMaps"] if "name" in c]
    if cfg.get("envSecrets"):
        out["env_secrets"] = [s["name"] for s in cfg["envSecrets"] if "name" in s]
    if cfg.get("failPodOnRunFailure"):
        out["fail_pod_on_run_failure"] = True
    if cfg.get("runK8sConfig"):
        out["run_k8s_config"] = {_RUN_K8S_KEYS[k]: v for k, v in cfg["runK8sConfig"].items()}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": out}


def postgres_db(values: dict) -> dict[str, Any]:
    pg = values["postgresql"]
    out = {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
           "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
           "port": pg["service"]["port"], "params": pg.get("postgresqlParams") or {}}
    if pg.get("postgresqlScheme"):
        out["scheme"] = pg["postgresqlScheme"]
    return out


def run_monitoring(values: dict) -> dict[str, Any]:
    rm = values["dagsterDaemon"]["runMonitoring"]
    out = {"enabled": rm["enabled"], "start_timeout_seconds": rm["startTimeoutSeconds"],
           "poll_interval_seconds": rm["pollIntervalSeconds"]}
    if rm.get("maxResumeRunAttempts"):
        out["max_resume_run_attempts"] = rm["maxResumeRunAttempts"]
    return out


def concurrency(values: dict) -> dict[str, Any]:
    runs = values["concurrency"]["runs"]
    limits = [{"key": t["key"], **({"value": t["value"]} if t.get("value") else {}),
               "limit": t["limit"]} for t in runs.get("tagConcurrencyLimits", [])]
    out: dict[str, Any] = {"runs": {"max_concurrent_runs": runs["maxConcurrentRuns"],
                                    "tag_concurrency_limits": limits}}
    pools = values["concurrency"].get("pools")
    if pools:
        out["pools"] = {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]}
    return out


def instance_yaml(values: dict, release: str, namespace: str) -> dict[str, Any]:
    """The chart's ``dagster.yaml`` for our values (the parts above; storage as postgres_db)."""
    db = postgres_db(values)
    storage = {
        kind: {"module": f"dagster_postgres.{mod}", "class": cls, "config": {"postgres_db": db}}
        for kind, mod, cls in (("run_storage", "run_storage", "PostgresRunStorage"),
                               ("event_log_storage", "event_log", "PostgresEventLogStorage"),
                               ("schedule_storage", "schedule_storage",
                                "PostgresScheduleStorage"))}
    return {**storage,
            "run_launcher": run_launcher(values, release, namespace),
            "run_coordinator": {"module": "dagster.core.run_coordinator",
                                "class": values["dagsterDaemon"]["runCoordinator"]["type"]},
            "run_monitoring": run_monitoring(values),
            "concurrency": concurrency(values),
            "telemetry": {"enabled": values["telemetry"]["enabled"]}}
