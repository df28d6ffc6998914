"""Runs on several hosts through Celery, for real: Redis broker, Dagster instance on PostgreSQL
(deploy/dagster.celery.yaml), two Celery worker processes listening on the queues "host-a" and
"host-b". A capture run tagged for host-a and a derive run tagged for host-b each land on their
host's worker: the worker's own records say so (the pid in the run's events is one of that
worker's processes, the task result names the worker node, the worker log received the task).
"""

from __future__ import annotations

import logging
import os
import signal
import time

import dagster as dg
import pytest
import redis

from ofi_cvd_harvest.orchestration.launcher import QUEUE_TAG, launcher_checks_workers

from ..orchestration.rawfixtures import write_raw
from ..servers.redis import RedisServer
from .celery_hosts import env_for_hosts, launch, make_home, wait_terminal, workers

PARTITION = "2024-07-19|BTCUSDT"
# CeleryRunLauncher.launch_run registers its task on its app again for every run (upstream)
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def deployment(tmp_path, pg_server, redis_server, simulator_factory, monkeypatch):
    """The shared instance (here, as on the daemon's host) and the environment of the worker
    hosts: one lake, the simulator as the exchange."""
    sim = simulator_factory(["BTCUSDT"], seed=11)
    url = pg_server.create_db(f"celery_{tmp_path.name[-20:].lower().replace('-', '_')}")
    home, shared = make_home(tmp_path, url, redis_server.url(0))
    data = tmp_path / "data"
    env = env_for_hosts({**shared, "DATA_DIR": str(data), "SYMBOLS": "BTCUSDT",
                         "WS_BASE_URL": sim.ws_url, "REST_BASE_URL": sim.rest_url,
                         "PROMETHEUS_PORT": "0", "PARQUET_ROTATE_SEC": "2"})
    for k, v in shared.items():
        monkeypatch.setenv(k, v)
    with dg.DagsterInstance.get() as instance:
        yield instance, env, data


@pytest.fixture
def hosts(deployment, tmp_path):
    """Two worker "hosts" sharing the lake."""
    instance, env, data = deployment
    with workers(["host-a", "host-b"], env, tmp_path) as (a, b):
        yield instance, a, b, data


def _event_pids(instance, run_id) -> set[int]:
    """Pids the run worker stamped on its own events (DagsterEvent.pid)."""
    return {r.dagster_event.pid for r in instance.all_logs(run_id)
            if r.dagster_event is not None and r.dagster_event.pid is not None}


def test_runs_land_on_their_host_queue(hosts, redis_server):
    instance, a, b, data = hosts
    assert launcher_checks_workers(instance)   # CeleryRunLauncher + run monitoring on
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=6)
    capture = launch(instance, "capture_job", tags={QUEUE_TAG: "host-a"},
                     run_config={"ops": {"capture": {"config": {"symbols": ["BTCUSDT"],
                                                                "run_seconds": 5}}}})
    derive = launch(instance, "derive_job",
                    tags={QUEUE_TAG: "host-b", "dagster/partition": PARTITION})
    runs = wait_terminal(instance, [capture, derive], timeout=180, logs=[a, b])
    for run_id, run in runs.items():
        assert run.status == dg.DagsterRunStatus.SUCCESS, (
            [r.user_message for r in instance.all_logs(run_id)][-20:], a.text()[-2000:],
            b.text()[-2000:])

    # each run executed inside its host's worker process tree, and only there
    a_pids, b_pids = a.pids(), b.pids()
    cap_pids, der_pids = _event_pids(instance, capture), _event_pids(instance, derive)
    assert cap_pids and cap_pids <= a_pids and not cap_pids & b_pids
    assert der_pids and der_pids <= b_pids and not der_pids & a_pids
    assert int(runs[capture].tags["ofi_cvd/pid"]) in a_pids   # what the capture op recorded

    # the task results the workers wrote: worker node and routing key of each run's task
    launcher = instance.run_launcher
    for run_id, w in ((capture, a), (derive, b)):
        task_id = runs[run_id].tags["dagster-celery/task_id"]
        result = launcher.celery.AsyncResult(task_id)
        assert result.state == "SUCCESS"
        assert result.worker.startswith(w.nodename_prefix)
        assert result.queue == w.queue          # the routing key it was delivered under
        assert f"execute_job[{task_id}] received" in w.text()
        other = b if w is a else a
        assert task_id not in other.text()
        # kept for run monitoring: Celery's default one-day expiry would turn a live 72 h
        # capture's STARTED state into PENDING, which the monitor reads as a dead worker
        ttl = redis.Redis.from_url(redis_server.url(0)).ttl(f"celery-task-meta-{task_id}")
        assert ttl == -1

    # the runs did their work in the shared lake
    assert list(data.glob("raw/date=*/symbol=BTCUSDT/stream=agg_trade/*.parquet"))
    assert (data / "ofi_cvd/date=2024-07-19/symbol=BTCUSDT/kind=events").exists()


def test_health_check_sees_a_killed_run_worker(deployment, tmp_path):
    """kill -9 of the process executing a capture run: the worker reports the task FAILED, the
    launcher's health check says so and Dagster's run monitoring marks the run failed; no pid
    check involved (it could not see another host's process anyway). The resume path stays off
    (max_resume_run_attempts: 0) because dagster-celery cannot start a resumed run."""
    from dagster._core.launcher import ResumeRunContext, WorkerStatus
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    instance, env, _ = deployment
    with workers(["host-a"], env, tmp_path) as (a,):
        run_id = launch(instance, "capture_job", tags={QUEUE_TAG: "host-a"},
                        run_config={"ops": {"capture": {"config": {"run_seconds": 120}}}})
        deadline = time.time() + 90
        while time.time() < deadline and "ofi_cvd/pid" not in instance.get_run_by_id(run_id).tags:
            time.sleep(0.3)
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.STARTED, a.text()[-3000:]
        launcher = instance.run_launcher
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        pid = int(run.tags["ofi_cvd/pid"])
        assert pid in a.pids()
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 60
        while time.time() < deadline and launcher.check_run_worker_health(run).status \
                == WorkerStatus.RUNNING:
            time.sleep(0.3)
        health = launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED, (health, a.text()[-3000:])
        assert "WorkerLostError" in a.text()     # the worker's own account of the lost child

        # one run-monitoring pass of the daemon: the run is failed, not resumed
        record = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))[0]
        monitor_started_run(instance, None, record, logging.getLogger("run_monitoring"))
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert len(failure) == 1
        assert "Detected run worker status" in failure[0].dagster_event.message
        assert "Celery task failed" in failure[0].dagster_event.message

        # why resuming stays off: dagster-celery 0.29.27 passes the resume task an argument it
        # does not take (if this stops raising, max_resume_run_attempts can go above 0)
        with pytest.raises(TypeError):
            launcher.resume_run(ResumeRunContext(dagster_run=run, workspace=None,
                                                 resume_attempt_number=1))
