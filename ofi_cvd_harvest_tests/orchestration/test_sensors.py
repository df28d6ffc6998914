"""Sensors against a real (temporary) DagsterInstance: capture keep-alive, raw reports, derive trigger."""

import datetime as dt
import json
import os
import subprocess
import time

import dagster as dg
from dagster._core.remote_origin import (InProcessCodeLocationOrigin, RemoteJobOrigin,
                                         RemoteRepositoryOrigin)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_run_id
import pytest

from ofi_cvd_harvest.orchestration import sensors
from ofi_cvd_harvest.orchestration.jobs import GROUP_TAG, HOST_TAG, PID_TAG, capture_run_tags
from ofi_cvd_harvest.orchestration.partitions import register_symbols
from ofi_cvd_harvest.orchestration.resources import HarvestSettings

from .rawfixtures import write_raw

GROUP = ("BTCUSDT", "ETHUSDT")


@pytest.fixture
def harvest(tmp_path, monkeypatch):
    for var in ("SYMBOLS", "CAPTURE_SYMBOL_GROUPS", "DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    return HarvestSettings(data_dir=str(tmp_path / "data"))


def _evaluate(sensor, instance, harvest, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"harvest": harvest})
    return sensor(ctx)


def _apply(instance, result):
    """What the daemon does with a tick's dynamic partition requests: adds the keys."""
    for req in result.dynamic_partitions_requests or ():
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return result


def _origin(job_name):
    """Queued runs must say where their job comes from (the daemon launches them from there)."""
    loc = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="ofi_cvd_harvest.definitions"))
    return RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(loc, "__repository__"),
                           job_name=job_name)


def _add_run(instance, job_name, status, tags):
    run = dg.DagsterRun(job_name=job_name, run_id=make_new_run_id(), status=status, tags=tags,
                        remote_job_origin=_origin(job_name))
    instance.add_run(run)
    return run


def _add_capture_run(instance, status, tags=None):
    return _add_run(instance, "capture_job", status,
                    {**capture_run_tags(GROUP, 3600), **(tags or {})})


def test_no_run_launches_exactly_one(instance, harvest):
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    assert req.tags[GROUP_TAG] == "BTCUSDT-ETHUSDT"
    assert int(req.tags["dagster/max_runtime"]) >= 72 * 3600
    assert req.run_config["ops"]["capture"]["config"]["symbols"] == list(GROUP)
    assert req.run_key == "capture:BTCUSDT-ETHUSDT:first"


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
                                    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING])
def test_live_run_blocks_a_second(instance, harvest, status):
    run = _add_capture_run(instance, status)
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    assert not result.run_requests
    assert run.run_id[:8] in result.skip_reason.skip_message
    assert status.value in result.skip_reason.skip_message


def test_failed_run_relaunches_only_after_cooldown(instance, harvest, monkeypatch):
    run = _add_capture_run(instance, dg.DagsterRunStatus.STARTED)
    instance.report_run_failed(run, "too many write errors")
    failed_at = time.time()
    cooldown = harvest.settings().error_cooldown_sec
    assert cooldown == 300

    monkeypatch.setattr(sensors, "now", lambda: failed_at + 10)
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    assert not result.run_requests
    assert "cool-down" in result.skip_reason.skip_message
    assert "FAILURE" in result.skip_reason.skip_message

    monkeypatch.setattr(sensors, "now", lambda: failed_at + cooldown - 5)
    assert not _evaluate(sensors.capture_sensor, instance, harvest).run_requests

    monkeypatch.setattr(sensors, "now", lambda: failed_at + cooldown + 5)
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    assert len(result.run_requests) == 1
    assert result.run_requests[0].run_key == f"capture:BTCUSDT-ETHUSDT:after:{run.run_id}"


def test_successful_run_relaunches_at_once(instance, harvest):
    run = _add_capture_run(instance, dg.DagsterRunStatus.STARTED)
    instance.report_run_canceled(run)  # ends it; then mark a finished one after it
    done = _add_capture_run(instance, dg.DagsterRunStatus.SUCCESS)
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    assert [r.run_key for r in result.run_requests] == [f"capture:BTCUSDT-ETHUSDT:after:{done.run_id}"]


def test_other_group_does_not_block(instance, harvest, monkeypatch):
    _add_capture_run(instance, dg.DagsterRunStatus.STARTED)
    monkeypatch.setenv("CAPTURE_SYMBOL_GROUPS", "BTCUSDT,ETHUSDT;SOLUSDT")
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    assert [r.tags[GROUP_TAG] for r in result.run_requests] == ["SOLUSDT"]


def test_dead_worker_is_marked_failed_then_cooled_down(instance, harvest):
    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid that no longer exists
    run = _add_capture_run(instance, dg.DagsterRunStatus.STARTED,
                           {PID_TAG: str(proc.pid), HOST_TAG: os.uname().nodename})
    result = _evaluate(sensors.capture_sensor, instance, harvest)
    assert not result.run_requests
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert "cool-down" in result.skip_reason.skip_message


def test_raw_partitions_reported_as_they_fill(instance, harvest, tmp_path, monkeypatch):
    data = tmp_path / "data"
    first = write_raw(data, "2024-07-19", "BTCUSDT", minutes=2)
    write_raw(data, "2024-07-19", "ETHUSDT", minutes=2)
    t = dt.datetime(2024, 7, 19, 12, tzinfo=dt.timezone.utc).timestamp()
    monkeypatch.setattr(sensors, "now", lambda: t)
    # first tick: the symbols found in the raw tree become partitions, their files wait
    added = _apply(instance, _evaluate(sensors.raw_partitions_sensor, instance, harvest))
    assert not added.asset_events and "symbol partitions added" in added.skip_reason.skip_message
    assert instance.get_dynamic_partitions("symbol") == ["BTCUSDT", "ETHUSDT"]
    result = _evaluate(sensors.raw_partitions_sensor, instance, harvest, cursor=added.cursor)
    assert not result.dynamic_partitions_requests
    events = result.asset_events
    assert sorted((e.asset_key.to_user_string(), str(e.partition)) for e in events) == sorted(
        (f"raw_{s}", f"2024-07-19|{sym}") for s in ("agg_trade", "book", "ops")
        for sym in ("BTCUSDT", "ETHUSDT"))
    trades = next(e for e in events if e.asset_key.to_user_string() == "raw_agg_trade"
                  and "BTCUSDT" in str(e.partition))
    assert trades.metadata["files"].value == 2 and trades.metadata["rows"].value > 2000
    for e in events:  # what the daemon does with them: the UI shows the partitions filled
        instance.report_runless_asset_event(e)
    filled = instance.get_materialized_partitions(dg.AssetKey("raw_agg_trade"))
    assert filled == {"2024-07-19|BTCUSDT", "2024-07-19|ETHUSDT"}

    # nothing new -> nothing reported
    again = _evaluate(sensors.raw_partitions_sensor, instance, harvest, cursor=result.cursor)
    assert not again.asset_events
    # a new file of a closed day (now is the next day) is reported at once, with new counts
    monkeypatch.setattr(sensors, "now", lambda: t + 86400)
    time.sleep(0.01)
    more = write_raw(data, "2024-07-19", "BTCUSDT", minutes=1, start_minute=5, seed=9)
    third = _evaluate(sensors.raw_partitions_sensor, instance, harvest, cursor=again.cursor)
    assert [(e.asset_key.to_user_string(), str(e.partition)) for e in third.asset_events] == [
        ("raw_agg_trade", "2024-07-19|BTCUSDT"), ("raw_book", "2024-07-19|BTCUSDT"),
        ("raw_ops", "2024-07-19|BTCUSDT")]
    assert third.asset_events[0].metadata["files"].value == 3
    assert third.asset_events[0].metadata["rows"].value == first["agg_trade"] + more["agg_trade"]
    assert trades.metadata["rows"].value == first["agg_trade"]


def test_derive_sensor_refreshes_today_and_finalises_after_midnight(instance, harvest, tmp_path,
                                                                    monkeypatch):
    data = tmp_path / "data"
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=2)
    register_symbols(instance, GROUP)   # what the sensors or the code location's load did
    noon = dt.datetime(2024, 7, 19, 12, tzinfo=dt.timezone.utc).timestamp()

    def tick(t, cursor):
        monkeypatch.setattr(sensors, "now", lambda: t)
        r = _evaluate(sensors.derive_sensor, instance, harvest, cursor=cursor)
        return [(q.partition_key, q.tags["ofi_cvd/trigger"]) for q in r.run_requests], r

    reqs, r = tick(noon, None)
    assert reqs == [("2024-07-19|BTCUSDT", "refresh")]  # ETHUSDT has no raw data
    reqs, r = tick(noon + 60, r.cursor)
    assert reqs == [] and "no new raw files" in r.skip_reason.skip_message
    time.sleep(0.01)
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=1, start_minute=10, seed=3)
    reqs, r = tick(noon + 120, r.cursor)
    assert reqs == [] and "next in" in r.skip_reason.skip_message  # not before 15 min
    reqs, r = tick(noon + 901, r.cursor)
    assert reqs == [("2024-07-19|BTCUSDT", "refresh")]
    # a queued derive run for the partition holds the next refresh back
    busy = _add_run(instance, "derive_job", dg.DagsterRunStatus.QUEUED,
                    {"dagster/partition": "2024-07-19|BTCUSDT"})
    time.sleep(0.01)
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=1, start_minute=30, seed=4)
    reqs, r = tick(noon + 1900, r.cursor)
    assert reqs == [] and "in progress" in r.skip_reason.skip_message
    instance.report_run_canceled(busy)
    midnight = noon + 12 * 3600
    reqs, r = tick(midnight + 30, r.cursor)
    assert reqs == []  # grace period for the midnight rotation
    reqs, r = tick(midnight + sensors.FINAL_GRACE_SEC + 1, r.cursor)
    assert reqs == [("2024-07-19|BTCUSDT", "final")]
    assert r.run_requests[0].run_key == "derive-final:2024-07-19|BTCUSDT"
    reqs, r = tick(midnight + 3600, r.cursor)
    assert reqs == []  # finalised once


def test_symbol_groups_get_their_own_checkpoint_and_metrics_port(harvest, monkeypatch):
    from ofi_cvd_harvest.orchestration.jobs import CaptureConfig, effective_settings

    s, seconds = effective_settings(harvest, CaptureConfig(run_seconds=30))
    assert seconds == 30 and s.symbols == GROUP and s.artifacts_dir.name != "BTCUSDT-ETHUSDT"
    monkeypatch.setenv("CAPTURE_SYMBOL_GROUPS", "BTCUSDT,ETHUSDT;SOLUSDT")
    a, _ = effective_settings(harvest, CaptureConfig(symbols=["ETHUSDT", "BTCUSDT"]))
    b, _ = effective_settings(harvest, CaptureConfig(symbols=["solusdt"], run_hours=2))
    assert a.artifacts_dir.name == "BTCUSDT-ETHUSDT" and b.artifacts_dir.name == "SOLUSDT"
    assert b.prometheus_port == a.prometheus_port + 1
    _, precheck_seconds = effective_settings(harvest, CaptureConfig(precheck=True))
    assert precheck_seconds == harvest.settings().precheck_minutes * 60


def test_derive_sensor_backs_off_a_partition_the_gate_keeps_quarantining(instance, harvest,
                                                                         tmp_path, monkeypatch):
    """A partition whose refreshes keep failing the gate is not re-derived every 15 minutes:
    the wait doubles with each failure in a row (dq.json), and the tick says so."""
    from ofi_cvd_harvest.gate.run import gate_partition
    from ofi_cvd_harvest.settings import load_settings
    from ofi_cvd_harvest.storage.fs import Storage

    from ..gate.rawedit import cross_book

    data = tmp_path / "data"
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=4)
    cross_book(data, "2024-07-19", "BTCUSDT")
    register_symbols(instance, ["BTCUSDT"])
    noon = dt.datetime(2024, 7, 19, 12, tzinfo=dt.timezone.utc).timestamp()

    def tick(t, cursor):
        monkeypatch.setattr(sensors, "now", lambda: t)
        r = _evaluate(sensors.derive_sensor, instance, harvest, cursor=cursor)
        return [q.partition_key for q in r.run_requests], r

    def failing_run(t):   # what the requested run does: the gate quarantines the partition
        monkeypatch.setattr("time.time", lambda: t)
        out = gate_partition(Storage(data), load_settings(env={}, data_dir=data), "2024-07-19",
                             "BTCUSDT", run="test")
        monkeypatch.undo()
        for var in ("SYMBOLS", "CAPTURE_SYMBOL_GROUPS", "DATA_DIR"):
            monkeypatch.delenv(var, raising=False)
        assert out.status == "quarantined"

    reqs, r = tick(noon, None)
    assert reqs == ["2024-07-19|BTCUSDT"]
    failing_run(noon + 30)                                    # 1 failure: wait 30 min
    time.sleep(0.01)
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=1, start_minute=10, seed=3)
    reqs, r = tick(noon + 901, r.cursor)                      # new raw, 15 min: would refresh
    msg = r.skip_reason.skip_message
    assert reqs == [] and "quarantined (crossed_book_rows failed, 1 in a row); backing off" in msg
    assert json.loads(r.cursor)["backoff"]["2024-07-19|BTCUSDT"] == noon + 30 + 1800
    reqs, r = tick(noon + 30 + 1801, r.cursor)
    assert reqs == ["2024-07-19|BTCUSDT"]
    failing_run(noon + 1900)                                  # 2 in a row: wait 60 min
    time.sleep(0.01)
    write_raw(data, "2024-07-19", "BTCUSDT", minutes=1, start_minute=20, seed=4)
    reqs, r = tick(noon + 1900 + 3000, r.cursor)
    assert reqs == [] and "2 in a row" in r.skip_reason.skip_message
    reqs, r = tick(noon + 1900 + 3601, r.cursor)
    assert reqs == ["2024-07-19|BTCUSDT"]
