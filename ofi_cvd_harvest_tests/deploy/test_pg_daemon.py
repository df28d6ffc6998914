"""docs/deploy.md "One box + PostgreSQL" as written: ``ofi-cvd-harvest instance check``, then
``dagster-daemon run -w workspace.yaml`` on the shipped ``deploy/dagster.postgres.yaml``. The
daemon's capture_sensor launches a capture run against the simulator through the queue, the
raw sensor reports its partition, derive_sensor's derive run of today (``dagster/priority`` 2)
goes through the gate; all of it recorded in PostgreSQL. Slow: the derive sensor ticks once a
minute (about 1.5–2 min on the 2-core machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ofi_cvd_harvest.orchestration.run_queue import PRIORITY_TAG

from ..orchestration.test_ui_live import _wait
from ..procs import reap_group
from .conftest import ROOT

DONE = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)


@pytest.mark.slow
def test_daemon_on_postgres_runs_the_loop(pg_home, pg_instance, simulator_factory, tmp_path):
    sim = simulator_factory(symbols=("BTCUSDT",), seed=11)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(pg_home.home),
           "DAGSTER_POSTGRES_URL": pg_home.url, "OFI_CVD_CAPTURE_AUTOSTART": "1",
           "WS_BASE_URL": sim.ws_url, "REST_BASE_URL": sim.rest_url, "SYMBOLS": "BTCUSDT",
           "RUN_HOURS": "0.003", "DATA_DIR": str(tmp_path / "data"),
           "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "PROMETHEUS_PORT": "0",
           "PARQUET_ROTATE_SEC": "2"}
    env.pop("CAPTURE_SYMBOL_GROUPS", None)
    check = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "instance", "check"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "pool 'derive' limit 2" in check.stdout
    log = open(tmp_path / "daemon.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    instance = pg_instance
    try:
        def runs(job, sensor):
            found = instance.get_runs(dg.RunsFilter(job_name=job,
                                                    tags={"dagster/sensor_name": sensor}))
            return [r for r in found if r.status in DONE]

        capture = _wait(lambda: runs("capture_job", "capture_sensor"), 180,
                        "capture_sensor's capture run to end", proc)[-1]   # the oldest
        assert capture.status == dg.DagsterRunStatus.SUCCESS
        assert capture.tags["ofi_cvd/capture_group"] == "BTCUSDT"
        _wait(lambda: instance.get_materialized_partitions(dg.AssetKey("raw_agg_trade")), 120,
              "raw_partitions_sensor to report the raw partition", proc)
        derive = _wait(lambda: runs("derive_job", "derive_sensor"), 240,
                       "derive_sensor's derive run to end", proc)[-1]
        assert derive.tags[PRIORITY_TAG] == "2" and derive.tags["ofi_cvd/trigger"] == "refresh"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)   # the daemon asks its code server to stop
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        reap_group(proc)
        with contextlib.suppress(ProcessLookupError):   # the code server and run workers left
            os.killpg(proc.pid, signal.SIGKILL)          # in the daemon's group once it exited
        log.close()
    rows = pg_home.sql("select pipeline_name, status from runs where run_id in "
                       f"('{capture.run_id}', '{derive.run_id}') order by create_timestamp")
    assert rows == ["capture_job|SUCCESS", f"derive_job|{derive.status.value}"]
    checks = pg_home.sql("select count(*) from asset_check_executions "
                         f"where run_id = '{derive.run_id}'")
    assert int(checks[0]) > 0   # the gate's checks, passed or failed (a capture of seconds)
