"""The whole loop under ``dagster dev`` (slow: ~2 min): ``ofi-cvd-harvest-ui`` with the simulator,
the daemon's capture_sensor launching a capture run, raw partitions reported by the sensor,
derive_sensor deriving today's partitions through the DQ gate, a UI backfill (the webserver's GraphQL mutation)
over a date range, then a UI-style termination (the run launcher's terminate) ending the run
CANCELED with its files finalised."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from ofi_cvd_harvest.orchestration.ui import restore_signals

from ..procs import free_port as _free_port
from .rawfixtures import write_raw

pytest.importorskip("ofi_cvd_harvest.sim.server")
pytest.importorskip("ofi_cvd_harvest.capture.runner")

ROOT = Path(__file__).resolve().parents[2]


BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
KINDS = ["prices", "ofi", "cvd", "fusion", "events"]


def _graphql(port: int, query: str, variables: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query, "variables": variables}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _wait(pred, timeout, what, proc):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"launcher exited while waiting for {what}"
        value = pred()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_ui_runs_capture_and_derivation_then_terminates_cleanly(tmp_path):
    home = tmp_path / "dagster_home"
    port = _free_port()
    for date in ("2024-07-19", "2024-07-20"):  # older days, for the backfill
        write_raw(tmp_path / "data", date, "BTCUSDT", minutes=15)
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"),
           "ARTIFACTS_DIR": str(tmp_path / "artifacts"), "PROMETHEUS_PORT": str(_free_port()),
           "SYMBOLS": "BTCUSDT", "PARQUET_ROTATE_SEC": "5"}
    log = open(tmp_path / "ui.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ofi_cvd_harvest.orchestration.ui", "--port", str(port),
         "--dagster-home", str(home)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=restore_signals)
    old_home = os.environ.get("DAGSTER_HOME")
    try:
        _wait(lambda: (home / "dagster.yaml").exists(), 30, "DAGSTER_HOME", proc)
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance:
            def capture_run():
                runs = instance.get_runs(dg.RunsFilter(job_name="capture_job"))
                return runs[0] if runs and runs[0].status == dg.DagsterRunStatus.STARTED else None

            run = _wait(capture_run, 150, "capture_sensor to launch a capture run", proc)
            assert run.tags["dagster/sensor_name"] == "capture_sensor"
            assert run.tags["ofi_cvd/capture_group"] == "BTCUSDT"
            _wait(lambda: instance.get_materialized_partitions(dg.AssetKey("raw_agg_trade")),
                  120, "raw_partitions_sensor to report raw partitions", proc)
            def sensor_derive_run():
                runs = instance.get_runs(dg.RunsFilter(job_name="derive_job",
                                                       tags={"dagster/sensor_name": "derive_sensor"}))
                done = [r for r in runs if r.status in (dg.DagsterRunStatus.SUCCESS,
                                                        dg.DagsterRunStatus.FAILURE)]
                return done[-1] if done else None

            derived = _wait(sensor_derive_run, 180, "derive_sensor's derive_job run to end", proc)
            today = derived.tags["dagster/partition"]
            date, sym = today.split("|")
            if derived.status == dg.DagsterRunStatus.SUCCESS:   # the gate published it
                assert today in instance.get_materialized_partitions(dg.AssetKey("events"))
            else:   # a capture of seconds fails the gate (empty_bucket_rate): quarantined, unpublished
                verdict = json.loads((tmp_path / f"data/quarantine/date={date}/symbol={sym}/dq.json").read_text())
                assert verdict["status"] == "quarantined" and verdict["failed_checks"]
                assert not (tmp_path / f"data/ofi_cvd/date={date}/symbol={sym}").exists()
            assert len(instance.get_runs(dg.RunsFilter(
                job_name="capture_job", statuses=[dg.DagsterRunStatus.STARTED]))) == 1

            # UI backfill over a date range: Materialize… → partitions → Launch backfill
            old_days = ["2024-07-19|BTCUSDT", "2024-07-20|BTCUSDT"]
            reply = _graphql(port, BACKFILL, {"params": {
                "assetSelection": [{"path": [k]} for k in KINDS], "partitionNames": old_days,
                "title": "formula change"}})
            backfill_id = reply["data"]["launchPartitionBackfill"]["backfillId"]
            _wait(lambda: instance.get_backfill(backfill_id).status.value.startswith("COMPLETED"),
                  240, "the backfill to complete", proc)
            assert instance.get_backfill(backfill_id).status.value in ("COMPLETED", "COMPLETED_SUCCESS")
            for kind in KINDS:
                assert set(old_days) <= instance.get_materialized_partitions(dg.AssetKey(kind))

            assert instance.run_launcher.terminate(run.run_id)  # what the UI's Terminate does
            _wait(lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED,
                  120, "the capture run to end CANCELED", proc)
            messages = "\n".join(r.user_message for r in instance.all_logs(run.run_id))
            assert "capture stopped cleanly" in messages
        assert (tmp_path / "artifacts/state/checkpoint.json").exists()
        assert not list((tmp_path / "data").rglob("*.tmp"))
    finally:
        if old_home is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old_home
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
