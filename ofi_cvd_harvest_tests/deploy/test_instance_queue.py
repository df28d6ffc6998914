"""The shipped instance configs: ``deploy/dagster.postgres.yaml`` loads on the real PostgreSQL with
the URL from the environment, and both it and the project's ``dagster.yaml`` (SQLite) give the
run queue the same limits (Dagster 1.13 ``concurrency:`` schema): one capture run per group,
at most 2 derivations (pool ``derive``), today's partitions before backfills
(``dagster/priority``). The sensors decide against the PostgreSQL instance as on SQLite.

The queue's decisions are taken by Dagster's own queued-run daemon code over runs stored in
the instance (``_get_runs_to_dequeue``: what its ``run_iteration`` launches); launching them
for real is test_pg_runs.py.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml
from dagster._check import CheckError
from dagster._core.instance.config import PoolGranularity
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import \
    QueuedRunCoordinatorDaemon

from ofi_cvd_harvest import cli
from ofi_cvd_harvest.definitions import defs
from ofi_cvd_harvest.deploy.cli import prepare_pools
from ofi_cvd_harvest.orchestration import sensors
from ofi_cvd_harvest.orchestration.jobs import GROUP_TAG, capture_run_tags
from ofi_cvd_harvest.orchestration.resources import HarvestSettings
from ofi_cvd_harvest.orchestration.run_queue import (DERIVE_POOL, PRIORITY_TAG, derive_priority,
                                                     derive_priority_tags)

from ..orchestration.rawfixtures import write_raw
from ..orchestration.test_sensors import _add_run, _apply, _evaluate, _origin
from .conftest import PG_YAML, SQLITE_YAML

NOON = dt.datetime(2024, 7, 20, 12, tzinfo=dt.timezone.utc).timestamp()


def test_instance_loads_from_the_shipped_config(pg_home, pg_instance, capsys):
    assert type(pg_instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(pg_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(pg_instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert pg_instance.run_storage.postgres_url == pg_home.url   # from DAGSTER_POSTGRES_URL
    assert isinstance(pg_instance.run_coordinator, QueuedRunCoordinator)
    tables = set(pg_home.sql("select tablename from pg_tables where schemaname = 'public'"))
    assert {"runs", "event_logs", "jobs", "instigators", "concurrency_limits"} <= tables
    assert pg_home.sql('select concurrency_key from concurrency_limits') == []
    assert cli.main(["instance", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"instance {pg_home.home}: PostgresRunStorage at {pg_home.url}, 0 runs",
                   "run queue: ≤ 6 runs; ofi_cvd/capture_group per value ≤ 1, dagster/backfill ≤ 2",
                   "pools: default limit 2, granularity run; pool 'derive' limit 2"]
    assert pg_home.sql('select concurrency_key, "limit", using_default_limit '
                       'from concurrency_limits') == ["derive|2|t"]
    assert cli.main(["instance", "check"]) == 0   # again: nothing to change, no error
    assert capsys.readouterr().out.splitlines()[2].endswith("pool 'derive' limit 2")


def test_both_configs_give_the_queue_the_same_limits(pg_instance, sqlite_home):
    pg, lite = yaml.safe_load(PG_YAML.read_text()), yaml.safe_load(SQLITE_YAML.read_text())
    assert {k: v for k, v in pg.items() if k != "storage"} == \
           {k: v for k, v in lite.items() if k != "storage"}
    assert "run_coordinator" not in pg and "run_queue" not in pg   # the 1.13 schema only
    with dg.DagsterInstance.from_config(str(sqlite_home)) as sqlite_instance:
        for instance in (pg_instance, sqlite_instance):
            cc = instance.get_concurrency_config()
            assert cc.run_queue_config.max_concurrent_runs == 6
            assert cc.run_queue_config.tag_concurrency_limits == [
                {"key": GROUP_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
                {"key": "dagster/backfill", "limit": 2}]
            assert cc.pool_config.pool_granularity == PoolGranularity.RUN
            assert cc.pool_config.default_pool_limit == 2
            assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
            assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
    derive_op = defs.get_job_def("derive_job").graph.node_defs[0]
    assert derive_op.pool == DERIVE_POOL


def test_resume_attempts_need_a_launcher_that_checks_workers(sqlite_home):
    """docs/deploy.md: ``max_resume_run_attempts`` only with Celery/K8s launchers; with the
    default launcher Dagster refuses the instance."""
    config = sqlite_home / "dagster.yaml"
    config.write_text(config.read_text().replace(
        "  poll_interval_seconds: 60\n", "  poll_interval_seconds: 60\n  max_resume_run_attempts: 2\n"))
    with pytest.raises(CheckError, match="does not support resuming runs"):
        dg.DagsterInstance.from_config(str(sqlite_home))


def test_priority_puts_today_first():
    assert derive_priority("2024-07-20|BTCUSDT", NOON) == 2
    assert derive_priority("2024-07-19|ETHUSDT", NOON) == 1
    assert derive_priority("2024-07-18|BTCUSDT", NOON) == 0
    assert derive_priority("2024-07-21|BTCUSDT", NOON) == 0
    midnight = dt.datetime(2024, 7, 21, tzinfo=dt.timezone.utc).timestamp()
    assert derive_priority("2024-07-20|BTCUSDT", midnight - 0.001) == 2
    assert derive_priority("2024-07-20|BTCUSDT", midnight) == 1
    assert derive_priority_tags("2024-07-20|BTCUSDT", NOON) == {PRIORITY_TAG: "2"}
    assert derive_priority_tags("2024-07-01|BTCUSDT", NOON) == {}


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request):
    if request.param == "sqlite":
        home = request.getfixturevalue("sqlite_home")
    else:
        home = request.getfixturevalue("pg_home").home
    with dg.DagsterInstance.from_config(str(home)) as inst:
        yield inst


def _queue(instance, job_name, tags):
    job = defs.get_job_def(job_name)
    return instance.create_run_for_job(job, run_config={}, tags={**job.tags, **tags},
                                       status=dg.DagsterRunStatus.QUEUED,
                                       remote_job_origin=_origin(job_name))


def _dequeued(instance) -> list[str]:
    """Run ids the queued-run daemon would launch now, in launch order."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    return [r.run_id for r in daemon._get_runs_to_dequeue(
        instance, instance.get_concurrency_config(), fixed_iteration_time=None)]


def test_queue_limits_captures_per_group_derivations_and_puts_today_first(instance):
    prepare_pools(instance)   # as `ofi-cvd-harvest instance check` does
    _add_run(instance, "capture_job", dg.DagsterRunStatus.STARTED,
             capture_run_tags(("BTCUSDT",), 3600))
    same_group = _queue(instance, "capture_job", capture_run_tags(("BTCUSDT",), 3600))
    other_group = _queue(instance, "capture_job", capture_run_tags(("ETHUSDT",), 3600))
    old = [_queue(instance, "derive_job", {"dagster/partition": f"2024-07-0{d}|BTCUSDT"})
           for d in (1, 2)]
    today = _queue(instance, "derive_job", {"dagster/partition": "2024-07-20|BTCUSDT",
                                            **derive_priority_tags("2024-07-20|BTCUSDT", NOON)})
    assert all(r.run_op_concurrency.all_pools == {DERIVE_POOL} for r in (*old, today))
    launched = _dequeued(instance)
    # the group already capturing waits; a capture goes before any derivation (priority 3),
    # two derivations fit the pool, today's before the backfill's
    assert launched == [other_group.run_id, today.run_id, old[0].run_id]
    assert same_group.run_id not in launched and old[1].run_id not in launched


def test_instance_check_makes_the_queue_count_the_derive_pool(pg_home, pg_instance):
    """Why `instance check` stores the derive pool's limit (deploy/cli.py prepare_pools): on a
    new pool Dagster's first queue pass counts nothing, and on PostgreSQL a changed
    ``default_limit`` breaks the count for good until the stored limit is re-created."""
    for d in (1, 2, 3, 4):
        _queue(pg_instance, "derive_job", {"dagster/partition": f"2024-07-0{d}|BTCUSDT"})
    assert len(_dequeued(pg_instance)) == 4       # Dagster's first pass: pool not counted yet
    assert len(_dequeued(pg_instance)) == 2
    assert prepare_pools(pg_instance) == {DERIVE_POOL: 2}          # stored already: unchanged
    config = pg_home.home / "dagster.yaml"
    config.write_text(config.read_text().replace("default_limit: 2", "default_limit: 3"))
    with dg.DagsterInstance.from_config(str(pg_home.home)) as changed:
        assert len(_dequeued(changed)) == 4       # Dagster cannot update the limit: no count
        assert prepare_pools(changed) == {DERIVE_POOL: 3}
        assert len(_dequeued(changed)) == 3
        changed.event_log_storage.set_concurrency_slots(DERIVE_POOL, 1)   # set by hand: kept
        assert prepare_pools(changed) == {DERIVE_POOL: 1}
        assert len(_dequeued(changed)) == 1


def test_sensors_on_postgres(pg_instance, tmp_path, monkeypatch):
    for var in ("SYMBOLS", "CAPTURE_SYMBOL_GROUPS", "DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    harvest = HarvestSettings(data_dir=str(tmp_path / "data"))
    first = _apply(pg_instance, _evaluate(sensors.capture_sensor, pg_instance, harvest))
    assert [r.tags[GROUP_TAG] for r in first.run_requests] == ["BTCUSDT-ETHUSDT"]
    assert pg_instance.get_dynamic_partitions("symbol") == ["BTCUSDT", "ETHUSDT"]
    run = _add_run(pg_instance, "capture_job", dg.DagsterRunStatus.STARTED,
                   capture_run_tags(("BTCUSDT", "ETHUSDT"), 3600))
    again = _evaluate(sensors.capture_sensor, pg_instance, harvest)
    assert not again.run_requests and f"run {run.run_id[:8]} STARTED" in again.skip_reason.skip_message

    write_raw(tmp_path / "data", "2024-07-19", "BTCUSDT", minutes=1)
    write_raw(tmp_path / "data", "2024-07-20", "BTCUSDT", minutes=1)
    monkeypatch.setattr(sensors, "now", lambda: NOON)
    derive = _evaluate(sensors.derive_sensor, pg_instance, harvest)
    assert {(r.partition_key, r.tags["ofi_cvd/trigger"], r.tags.get(PRIORITY_TAG))
            for r in derive.run_requests} == {("2024-07-19|BTCUSDT", "final", "1"),
                                             ("2024-07-20|BTCUSDT", "refresh", "2")}
