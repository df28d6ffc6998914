"""Runs on several hosts through Celery, for real: Redis broker, Dagster instance on PostgreSQL
(deploy/dagster.celery.yaml), two Celery worker processes listening on the queues "host-a" and
"host-b". A capture run tagged for host-a and a derive run tagged for host-b each land on their
host's worker: the worker's own records say so (the pid in the run's events is one of that
worker's processes, the task result names the worker node, the worker log received the task).
"""

from __future__ import annotations

import json

import dagster as dg
import pytest
import redis

from ofi_cvd_harvest.orchestration.launcher import QUEUE_TAG, launcher_checks_workers

from ..orchestration.rawfixtures import write_raw
from ..servers.redis import RedisServer
from .celery_hosts import env_for_hosts, launch, make_home, wait_terminal, workers

PARTITION = "2024-07-19|BTCUSDT"


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def hosts(tmp_path, pg_server, redis_server, simulator_factory, monkeypatch):
    """Two worker "hosts" sharing the lake, and an instance of the same deployment here."""
    sim = simulator_factory(["BTCUSDT"], seed=11)
    url = pg_server.create_db(f"celery_{tmp_path.name[-20:].lower().replace('-', '_')}")
    home, shared = make_home(tmp_path, url, redis_server.url(0))
    data = tmp_path / "data"
    env = env_for_hosts({**shared, "DATA_DIR": str(data), "SYMBOLS": "BTCUSDT",
                         "WS_BASE_URL": sim.ws_url, "REST_BASE_URL": sim.rest_url,
                         "PROMETHEUS_PORT": "0", "PARQUET_ROTATE_SEC": "2"})
    for k, v in shared.items():
        monkeypatch.setenv(k, v)
    with dg.DagsterInstance.get() as instance, \
            workers(["host-a", "host-b"], env, tmp_path) as (a, b):
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
