"""Kubernetes without a cluster: the Dagster instance the Helm chart renders from
deploy/k8s/values.yaml (storage on a real PostgreSQL through the values' driver scheme), and the
Job specs its K8sRunLauncher builds for a capture run, a derive run and an untagged run. The
launcher's own code runs end to end; only the Kubernetes API it would POST the Job to is replaced
by a recorder of the request body.
"""

from __future__ import annotations

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import deserialize_value
from kubernetes.client import ApiClient

from ofi_cvd_harvest.orchestration.jobs import GROUP_TAG
from ofi_cvd_harvest.orchestration.launcher import (K8S_CONFIG_TAG, RUN_RESOURCES,
                                                    k8s_config_tags, launcher_checks_workers)

from . import chart

RELEASE, NAMESPACE = "ofi", "ofi"
PARTITION = "2024-07-19|BTCUSDT"


class RecordingBatchApi:
    """Stands where the cluster's batch/v1 API would: keeps each Job body it is sent."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, dict]] = []

    def create_namespaced_job(self, body, namespace, **_kwargs):
        self.jobs.append((namespace, ApiClient().sanitize_for_serialization(body)))
        return body


@pytest.fixture
def values():
    return chart.load_values()


@pytest.fixture
def k8s_instance(tmp_path, values, pg_server, monkeypatch):
    """The chart's dagster.yaml for our values, pointed at the test PostgreSQL; in-cluster
    config swapped for a kubeconfig naming an unreachable API server (never contacted)."""
    values["postgresql"].update(postgresqlHost="127.0.0.1", postgresqlUsername="postgres",
                                postgresqlDatabase=pg_server.create_db(
                                    f"k8s_{tmp_path.name[-20:].lower().replace('-', '_')}"
                                ).rsplit("/", 1)[1])
    values["postgresql"]["service"]["port"] = pg_server.port
    config = chart.instance_yaml(values, RELEASE, NAMESPACE)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "none", "user": {"token": "x"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}]}))
    config["run_launcher"]["config"].update(load_incluster_config=False,
                                            kubeconfig_file=str(kubeconfig))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    with dg.DagsterInstance.get() as instance:
        api = RecordingBatchApi()
        instance.run_launcher._api_client.batch_api = api  # the one stand-in: no cluster here
        yield instance, api


def _image(values) -> str:
    image = values["dagster-user-deployments"]["deployments"][0]["image"]
    return f"{image['repository']}:{image['tag']}"


def _launch(instance, values, job_name, tags) -> str:
    """A run as the code server would create it: origin with the deployment's image."""
    repo = ReconstructableRepository.for_module(
        "ofi_cvd_harvest.definitions", fn_name="defs", container_image=_image(values))
    recon = repo.get_reconstructable_job(job_name)
    run = instance.create_run_for_job(recon.get_definition(), tags=tags,
                                      job_code_origin=recon.get_python_origin())
    instance.launch_run(run.run_id, workspace=None)
    return run.run_id


def test_chart_instance_and_run_jobs(k8s_instance, values):
    instance, api = k8s_instance
    # the values' scheme reached a real PostgreSQL through psycopg2 (storage works)
    assert instance.get_runs() == []
    assert type(instance.run_launcher).__name__ == "K8sRunLauncher"
    assert instance.run_monitoring_max_resume_run_attempts == 3
    assert launcher_checks_workers(instance)     # the pid check is not needed here

    capture = _launch(instance, values, "capture_job",
                      {GROUP_TAG: "shard-0", **k8s_config_tags("capture")})
    derive = _launch(instance, values, "derive_job",
                     {"dagster/partition": PARTITION, **k8s_config_tags("derive")})
    plain = _launch(instance, values, "derive_job", {"dagster/partition": PARTITION})
    jobs = {body["metadata"]["name"]: (ns, body) for ns, body in api.jobs}
    assert len(jobs) == 3

    default = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"][
        "containerConfig"]["resources"]
    for run_id, job_name, resources in ((capture, "capture_job", RUN_RESOURCES["capture"]),
                                        (derive, "derive_job", RUN_RESOURCES["derive"]),
                                        (plain, "derive_job", default)):
        ns, body = jobs[f"dagster-run-{run_id}"]
        assert ns == NAMESPACE
        assert body["apiVersion"] == "batch/v1" and body["kind"] == "Job"
        assert body["spec"]["backoffLimit"] == 0
        assert body["spec"]["ttlSecondsAfterFinished"] == 86400
        labels = body["metadata"]["labels"]
        assert labels["dagster/job"] == job_name and labels["dagster/run-id"] == run_id
        assert labels["app.kubernetes.io/component"] == "run_worker"
        assert labels["app.kubernetes.io/part-of"] == "ofi-cvd-harvest"
        pod = body["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["serviceAccountName"] == chart.fullname(RELEASE)
        (container,) = pod["containers"]
        assert container["image"] == _image(values)
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["resources"] == resources
        args = container["args"]
        assert args[:3] == ["dagster", "api", "execute_run"]
        packed = deserialize_value(args[3], ExecuteRunArgs)   # what the pod will decode
        assert packed.run_id == run_id and packed.job_origin.job_name == job_name
        assert packed.set_exit_code_on_failure is True          # failPodOnRunFailure
        # the pod's instance: the shared PostgreSQL storage, passed inline
        assert packed.instance_ref.run_storage_data.class_name == "PostgresRunStorage"
        env = {e["name"]: e for e in container["env"]}
        assert env["DAGSTER_HOME"]["value"] == "/opt/dagster/dagster_home"
        assert env["DAGSTER_RUN_JOB_NAME"]["value"] == job_name
        assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": values["global"]["postgresqlSecretName"], "key": "postgresql-password"}
        env_from = [s["secretRef"]["name"] for s in container.get("envFrom", [])
                    if "secretRef" in s]
        assert "ofi-cvd-harvest-env" in env_from
        assert instance.get_run_by_id(run_id).tags["dagster/image"] == _image(values)


def test_run_resources_cover_measured_peaks():
    """Requests above the measured peaks (docs/performance.md), limits above the requests, and
    no CPU limit on the real-time capture."""
    from ofi_cvd_harvest.orchestration.launcher import RUN_RESOURCES as res

    def mib(q: str) -> float:
        return float(q[:-2]) * (1024 if q.endswith("Gi") else 1)

    assert mib(res["capture"]["requests"]["memory"]) * 1.048576 >= 780 + 180  # MB: RSS + CVD window
    assert mib(res["derive"]["requests"]["memory"]) * 1.048576 >= 2540
    for role in res:
        assert mib(res[role]["limits"]["memory"]) > mib(res[role]["requests"]["memory"])
    assert "cpu" not in res["capture"]["limits"]


def test_k8s_tags_are_dagster_k8s_config():
    from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY, UserDefinedDagsterK8sConfig
    from dagster_k8s.job import get_user_defined_k8s_config

    assert K8S_CONFIG_TAG == USER_DEFINED_K8S_CONFIG_KEY
    cfg = get_user_defined_k8s_config(k8s_config_tags("capture"))
    assert isinstance(cfg, UserDefinedDagsterK8sConfig)
    assert cfg.container_config["resources"] == RUN_RESOURCES["capture"]
    assert cfg.merge_behavior.value == "SHALLOW"
    # a default for untagged runs with a CPU limit must not leak into the capture's container
    # (dagster-k8s deep-merges the tag into the launcher's run_k8s_config unless SHALLOW)
    from dagster_k8s.container_context import K8sContainerContext
    default = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig(
        container_config={"resources": {"limits": {"cpu": "1", "memory": "8Gi"}}}))
    merged = default.merge(K8sContainerContext(run_k8s_config=cfg))
    assert merged.run_k8s_config.container_config["resources"] == RUN_RESOURCES["capture"]
    for bad in ("", "Capture", "research", None):
        with pytest.raises(ValueError, match="no Kubernetes resources"):
            k8s_config_tags(bad)


def test_values_tag_limits_match_the_one_box_queue(values):
    """One fact, three files: the run queue's tag limits and derive pool of dagster.yaml (one
    box), deploy/dagster.celery.yaml and the Helm values are the same."""
    def tag_limits(doc: dict) -> list:
        if "concurrency" in doc and "runs" in doc["concurrency"]:
            return doc["concurrency"]["runs"]["tag_concurrency_limits"]
        return doc["run_coordinator"]["config"]["tag_concurrency_limits"]

    one_box = tag_limits(yaml.safe_load((chart.ROOT / "dagster.yaml").read_text()))
    celery = tag_limits(yaml.safe_load((chart.ROOT / "deploy/dagster.celery.yaml").read_text()))
    helm = chart.concurrency(values)["runs"]["tag_concurrency_limits"]
    assert one_box == celery == helm
    pools = [yaml.safe_load((chart.ROOT / f).read_text())["concurrency"]["pools"]
             for f in ("dagster.yaml", "deploy/dagster.celery.yaml")]
    assert pools[0] == pools[1] == chart.concurrency(values)["pools"] == {
        "default_limit": 2, "granularity": "run"}
    assert {"key": GROUP_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in helm
