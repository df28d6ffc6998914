"""Real runs on the PostgreSQL instance, launched by Dagster's queued-run daemon code the way
``dagster-daemon run`` does: a code server (``dagster api grpc``) for
``ofi_cvd_harvest.definitions`` and, per run, a run worker process it starts (the default run
launcher). Two capture runs of one symbol group against the
simulator: the second waits in the queue until the first has ended. Then the capture sensor and
the derive sensor read what the runs recorded, and the derive run it asks for (today first:
``dagster/priority``) goes through the same queue, the DQ gate and the pool. Everything the runs
recorded is in PostgreSQL (read back with psql)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._cli.job import _create_run
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._grpc.client import DagsterGrpcClient
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import \
    QueuedRunCoordinatorDaemon

from ofi_cvd_harvest.deploy.cli import prepare_pools
from ofi_cvd_harvest.orchestration import sensors
from ofi_cvd_harvest.orchestration.checks import check_specs
from ofi_cvd_harvest.orchestration.jobs import capture_run_tags
from ofi_cvd_harvest.orchestration.resources import HarvestSettings
from ofi_cvd_harvest.orchestration.run_queue import PRIORITY_TAG

from ..orchestration.test_capture_job import _capture_env
from ..orchestration.test_sensors import _evaluate
from ..procs import free_port, reap_group
from .conftest import ROOT

LOCATION = "ofi_cvd_harvest.definitions"
DONE = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
ACCEPT = {"ops": {"derived_tables": {"config": {"publish_on_fail": True}}}}


@contextlib.contextmanager
def code_server(log: Path):
    """``dagster api grpc`` for the definitions in its own process group: the run workers it
    starts are its children, so nothing outlives the test (a code server started by Dagster's
    workspace keeps running up to a minute after the workspace is closed)."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "api", "grpc", "-m", LOCATION,
             "--location-name", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        client = DagsterGrpcClient(host="127.0.0.1", port=port)
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                client.ping("")
                break
            except Exception:
                assert time.time() < deadline, "code server did not answer"
                time.sleep(0.3)
        yield GrpcServerTarget(host="127.0.0.1", port=port, socket=None, location_name=LOCATION)
    finally:
        reap_group(proc)


def _submit(workspace, instance, job_name, run_config, tags) -> str:
    """What ``dagster job launch`` does: create the run from the code server's job, queue it."""
    request = workspace.create_request_context()
    location = request.get_code_location(LOCATION)
    repo = location.get_repository("__repository__")
    job = repo.get_full_job(job_name)
    run = _create_run(instance=instance, code_location=location, remote_repo=repo,
                      remote_job=job, run_config=run_config, tags=tags, op_selection=None,
                      run_id=None)
    instance.submit_run(run.run_id, request)
    return run.run_id


def _wait(instance, run_id, timeout=180.0) -> dg.DagsterRun:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.status in DONE:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {instance.get_run_by_id(run_id).status}")


def test_queue_capture_and_derive_runs_on_postgres(pg_home, pg_instance, simulator_factory,
                                                   tmp_path, monkeypatch):
    sim = simulator_factory(symbols=("BTCUSDT",), seed=11)
    for k, v in {**_capture_env(tmp_path, sim), "PYTHONPATH": str(ROOT)}.items():
        monkeypatch.setenv(k, v)   # inherited by the code server and its run workers
    monkeypatch.delenv("CAPTURE_SYMBOL_GROUPS", raising=False)
    instance = pg_instance
    prepare_pools(instance)
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    submitted: list[str] = []
    with code_server(tmp_path / "code_server.log") as target, \
            WorkspaceProcessContext(instance, target) as workspace:
        try:
            group = capture_run_tags(("BTCUSDT",), 3)
            for seconds in (3, 2):
                submitted.append(_submit(workspace, instance, "capture_job", {"ops": {"capture": {
                    "config": {"symbols": ["BTCUSDT"], "run_seconds": seconds}}}}, group))
            first, second = submitted
            list(daemon.run_iteration(workspace))
            assert instance.get_run_by_id(first).status != dg.DagsterRunStatus.QUEUED
            assert instance.get_run_by_id(second).status == dg.DagsterRunStatus.QUEUED
            assert _wait(instance, first).status == dg.DagsterRunStatus.SUCCESS
            list(daemon.run_iteration(workspace))
            assert _wait(instance, second).status == dg.DagsterRunStatus.SUCCESS
            a, b = (instance.get_run_record_by_id(r) for r in submitted)
            assert b.start_time >= a.end_time   # one capture of the group at a time

            # the sensors read the runs back from PostgreSQL
            harvest = HarvestSettings()
            tick = _evaluate(sensors.capture_sensor, instance, harvest)
            assert [r.tags["ofi_cvd/capture_group"] for r in tick.run_requests] == ["BTCUSDT"]
            why = sensors.decide_capture(instance, ("BTCUSDT",), 300, time.time()).reason
            assert f"run {second[:8]} finished" in why and "trades /" in why   # its STEP_OUTPUT
            derive = _evaluate(sensors.derive_sensor, instance, harvest)
            [request] = derive.run_requests
            assert request.tags[PRIORITY_TAG] == "2"   # today's partition
            submitted.append(_submit(workspace, instance, "derive_job", ACCEPT, {
                **request.tags, "dagster/partition": request.partition_key}))
            list(daemon.run_iteration(workspace))
            assert _wait(instance, submitted[-1]).status == dg.DagsterRunStatus.SUCCESS
        finally:
            for run_id in submitted:   # never leave a run worker behind a failed assertion
                if instance.get_run_by_id(run_id).status not in DONE:
                    instance.run_launcher.terminate(run_id)

    ids = ",".join(f"'{r}'" for r in submitted)
    assert pg_home.sql(f"select status from runs where run_id in ({ids}) order by create_timestamp"
                       ) == ["SUCCESS"] * 3
    derive_id = submitted[-1]
    assert pg_home.sql("select count(*) from event_logs where run_id = "
                       f"'{derive_id}' and dagster_event_type = 'ASSET_MATERIALIZATION'") == ["5"]
    checks = pg_home.sql("select check_name, execution_status from asset_check_executions "
                         f"where run_id = '{derive_id}' order by check_name")
    assert sorted(c.split("|")[0] for c in checks) == sorted(s.name for s in check_specs())
    assert {c.split("|")[1] for c in checks} <= {"SUCCEEDED", "FAILED"}
    trades = pg_home.sql("select count(*) from event_logs where run_id in "
                         f"('{submitted[0]}', '{submitted[1]}') and dagster_event_type = 'STEP_OUTPUT'")
    assert trades == ["2"]
