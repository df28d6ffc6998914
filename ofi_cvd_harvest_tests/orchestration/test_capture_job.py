"""capture_job for real: against the local simulator, in process and as a terminated CLI run;
then the five derived assets materialised from the captured partition."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ofi_cvd_harvest.capture.runner")
pytest.importorskip("ofi_cvd_harvest.sim.server")
pytest.importorskip("ofi_cvd_harvest.signals.derive")

from ofi_cvd_harvest.definitions import defs  # noqa: E402
from ofi_cvd_harvest.orchestration.assets import derived_assets  # noqa: E402
from ofi_cvd_harvest.orchestration.raw_assets import raw_specs  # noqa: E402
from ofi_cvd_harvest.orchestration.resources import HarvestSettings  # noqa: E402
from ofi_cvd_harvest.orchestration.jobs import GROUP_TAG, MAX_RUNTIME_TAG, PID_TAG  # noqa: E402
from ofi_cvd_harvest.orchestration.ui import restore_signals  # noqa: E402

from ..procs import reap_group  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["prices", "ofi", "cvd", "fusion", "events"]


@pytest.fixture
def sim(simulator_factory):
    return simulator_factory(["BTCUSDT"], seed=11)


def _capture_env(tmp_path, sim) -> dict[str, str]:
    return {"WS_BASE_URL": sim.ws_url, "REST_BASE_URL": sim.rest_url,
            "DATA_DIR": str(tmp_path / "data"), "ARTIFACTS_DIR": str(tmp_path / "artifacts"),
            "PROMETHEUS_PORT": "0", "PARQUET_ROTATE_SEC": "2", "SYMBOLS": "BTCUSDT"}


def test_capture_job_then_derive_all_five(tmp_path, sim, monkeypatch):
    for k, v in _capture_env(tmp_path, sim).items():
        monkeypatch.setenv(k, v)
    with dg.instance_for_test() as instance:
        job = defs.get_job_def("capture_job")
        result = job.execute_in_process(
            run_config={"ops": {"capture": {"config": {"symbols": ["BTCUSDT"], "run_seconds": 8}}}},
            instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert GROUP_TAG in run.tags  # job default (the sensor sets it per group)
        assert int(run.tags[MAX_RUNTIME_TAG]) == 8 + 3600  # refined by the op to this run
        assert int(run.tags[PID_TAG]) == os.getpid()
        out = result.output_for_node("capture")
        md = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"
                  ).step_output_data.metadata
        assert md["metrics_endpoint"].value == "http://127.0.0.1:0/metrics"
        trades = md["BTCUSDT_trades"].value
        assert trades > 50 and out["symbols"]["BTCUSDT"]["book_rows"] > 20
        logs = [r.user_message for r in instance.all_logs(result.run_id)]
        assert any("capture start" in m for m in logs)  # the capture's logger -> run log

        # the partition the capture produced -> the five derived tables, in one Dagster run.
        # An 8 s capture covers less than a minute: empty_bucket_rate cannot be measured, the
        # gate quarantines the partition and publishes nothing (the case of issue 14) ...
        dates = sorted(p.name[5:] for p in (tmp_path / "data" / "raw").glob("date=*"))
        date = dates[-1]
        raw_trades = sum(pq.read_table(p).num_rows for p in (
            tmp_path / "data/raw" / f"date={date}/symbol=BTCUSDT/stream=agg_trade").glob("*.parquet"))
        res = dg.materialize([*raw_specs, *derived_assets], partition_key=f"{date}|BTCUSDT",
                             instance=instance, selection=KINDS, raise_on_error=False,
                             resources={"harvest": HarvestSettings()})
        assert not res.success and not res.get_asset_materialization_events()
        failed = {e.check_name for e in res.get_asset_check_evaluations() if not e.passed}
        assert "empty_bucket_rate" in failed
        assert not (tmp_path / "data/ofi_cvd").exists()
        verdict = json.loads((tmp_path / f"data/quarantine/date={date}/symbol=BTCUSDT/dq.json").read_text())
        assert verdict["status"] == "quarantined" and "empty_bucket_rate" in verdict["failed_checks"]
        # ... unless the user accepts it explicitly
        res = dg.materialize([*raw_specs, *derived_assets], partition_key=f"{date}|BTCUSDT",
                             instance=instance, selection=KINDS,
                             run_config={"ops": {"derived_tables": {"config": {"publish_on_fail": True}}}},
                             resources={"harvest": HarvestSettings()})
        assert res.success
        mats = {m.asset_key.to_user_string(): m.metadata
                for m in res.asset_materializations_for_node("derived_tables")}
        assert sorted(mats) == sorted(KINDS)
        prices = pq.read_table(tmp_path / f"data/ofi_cvd/date={date}/symbol=BTCUSDT/kind=prices")
        assert prices.num_rows == raw_trades == mats["prices"]["dagster/row_count"].value
        ofi = pq.read_table(tmp_path / f"data/ofi_cvd/date={date}/symbol=BTCUSDT/kind=ofi")
        assert ofi.num_rows == out["symbols"]["BTCUSDT"]["book_rows"]
        assert instance.get_materialized_partitions(dg.AssetKey("events")) == {f"{date}|BTCUSDT"}
        assert mats["events"]["dq/verdict"].value == "accepted"
        assert "empty_bucket_rate" in mats["events"]["dq/failed_checks"].value
        assert mats["events"]["dq/accepted_via"].value.startswith("run config publish_on_fail")


def test_terminated_capture_run_finalises(tmp_path, sim):
    """Dagster terminates a run by interrupting its process; the op must stop the capture,
    finalise its files and write the checkpoint, then end the run (not swallow the interrupt)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    cfg = tmp_path / "capture.yaml"
    cfg.write_text(json.dumps({"ops": {"capture": {"config": {"run_seconds": 600}}}}))
    env = {**os.environ, **_capture_env(tmp_path, sim), "DAGSTER_HOME": str(home)}
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m",
         "ofi_cvd_harvest.definitions", "-j", "capture_job", "-c", str(cfg)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=restore_signals)
    raw = tmp_path / "data" / "raw"
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not list(raw.glob("date=*/symbol=*/stream=agg_trade/*.parquet")):
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.5)
        assert list(raw.glob("date=*/symbol=*/stream=agg_trade/*.parquet")), "no raw file written"
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        reap_group(proc, timeout=10)
        log.close()
    assert not list((tmp_path / "data").rglob("*.tmp"))
    checkpoint = json.loads((tmp_path / "artifacts/state/checkpoint.json").read_text())
    assert "BTCUSDT" in json.dumps(checkpoint)
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(dg.RunsFilter(job_name="capture_job"))
            # CANCELED when terminated from the UI; FAILURE for a bare SIGINT/SIGTERM
            assert [r.status for r in runs] in ([dg.DagsterRunStatus.CANCELED],
                                                [dg.DagsterRunStatus.FAILURE])
            messages = [r.user_message for r in instance.all_logs(runs[0].run_id)]
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = old
    text = "\n".join(messages)
    assert "run terminated: stopping the capture" in text
    assert "capture stopped (stop requested)" in text  # the capture's own shutdown, in the run log
    assert text.index("capture stopped cleanly") > text.index("run terminated")


@pytest.mark.slow
def test_precheck_run_gates_on_the_dod(tmp_path, sim, monkeypatch):
    """precheck=true: capture precheck_minutes, then the precheck flow (ofi_cvd_harvest/precheck.py,
    same verdict as the CLI): derive through the DQ gate, report; the op fails on a FAIL verdict,
    links the report, and nothing that failed reaches ofi_cvd/."""
    for k, v in _capture_env(tmp_path, sim).items():
        monkeypatch.setenv(k, v)
    cfg = tmp_path / "system.yaml"
    cfg.write_text((ROOT / "config/system.yaml").read_text().replace(
        "precheck_minutes: 10", "precheck_minutes: 0.3"))
    with dg.instance_for_test() as instance:
        result = defs.get_job_def("capture_job").execute_in_process(
            run_config={"ops": {"capture": {"config": {"precheck": True}}}}, instance=instance,
            resources={"harvest": HarvestSettings(config_path=str(cfg))}, raise_on_error=False)
        logs = "\n".join(r.user_message for r in instance.all_logs(result.run_id))
        failures = [e.step_failure_data.error.message for e in result.all_events
                    if e.event_type_value == "STEP_FAILURE"]
    assert "precheck: {" in logs
    reports = list((tmp_path / "artifacts/dq_reports").glob("dq_*.json"))
    assert len(reports) == 1
    verdict = json.loads(reports[0].read_text())["overall"]["verdict"]
    assert result.success == (verdict == "PASS")
    if not result.success:  # 18 s rarely shows a full minute bucket: the gate must say so
        assert len(failures) == 1 and "precheck failed" in failures[0]
        assert "QUARANTINED" in logs and "PRECHECK: FAIL" in logs
        assert not list((tmp_path / "data/ofi_cvd").rglob("*.parquet"))
        assert list((tmp_path / "data/quarantine").glob("date=*/symbol=BTCUSDT/dq.json"))
    else:
        assert "PRECHECK: PASS" in logs
