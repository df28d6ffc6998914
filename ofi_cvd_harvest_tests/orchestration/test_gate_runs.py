"""The DQ gate in real Dagster runs of the derived multi-asset (docs/dagster.md, "The publish rule"):
a failing partition publishes nothing and is quarantined with its verdict and failed checks in
the UI; ``publish_on_fail`` and ``ofi-cvd-harvest publish`` accept it, recorded in the asset's
metadata; several partitions run side by side as separate runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg

from ofi_cvd_harvest.gate.checks import DOD_CHECKS
from ofi_cvd_harvest.orchestration.assets import derived_assets
from ofi_cvd_harvest.orchestration.partitions import register_symbols
from ofi_cvd_harvest.orchestration.raw_assets import raw_specs
from ofi_cvd_harvest.orchestration.resources import HarvestSettings

from ..gate.rawedit import KINDS, cross_book, published, short_capture, table_bytes
from ..procs import reap_group
from .rawfixtures import write_raw

DATE, SYM = "2024-07-19", "BTCUSDT"
PARTITION = f"{DATE}|{SYM}"
ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
ACCEPT = {"ops": {"derived_tables": {"config": {"publish_on_fail": True}}}}


def materialize(instance, data, run_config=None, selection=KINDS, partition=PARTITION):
    register_symbols(instance, [partition.split("|")[1]])   # as the sensors or the load do
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dg.materialize([*raw_specs, *derived_assets], partition_key=partition,
                              instance=instance, selection=selection, run_config=run_config,
                              resources={"harvest": HarvestSettings(data_dir=str(data))},
                              raise_on_error=False)


def failed_checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}


def step_failure(result) -> str:
    ev = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return ev.step_failure_data.error.message


def test_failing_partition_publishes_nothing_and_shows_why(tmp_path, instance):
    data = tmp_path / "data"
    write_raw(data, DATE, SYM, minutes=6)
    assert materialize(instance, data).success
    before = published(data)
    cross_book(data, DATE, SYM)
    res = materialize(instance, data)
    assert not res.success and not res.get_asset_materialization_events()
    assert published(data) == before                              # byte-identical
    failed = failed_checks(res)
    assert list(failed) == ["crossed_book_rows"]
    assert failed["crossed_book_rows"].severity == dg.AssetCheckSeverity.ERROR
    assert failed["crossed_book_rows"].metadata["evaluated_on"].value.startswith("staged")
    assert len(res.get_asset_check_evaluations()) == len(DOD_CHECKS)   # every check still reported
    msg = step_failure(res)
    assert "blocking DQ checks failed: crossed_book_rows" in msg and "quarantine/date=2024-07-19" in msg
    v = json.loads((data / f"quarantine/date={DATE}/symbol={SYM}/dq.json").read_text())
    assert v["status"] == "quarantined" and v["run"] == f"dagster run {res.run_id}"
    assert sorted(table_bytes(data, DATE, SYM, "quarantine")) == sorted(KINDS)
    # the published version stays the latest materialisation of each asset
    latest = instance.get_latest_materialization_event(dg.AssetKey("events"))
    assert latest.run_id != res.run_id


def test_publish_on_fail_accepts_and_records_it(tmp_path, instance):
    data = tmp_path / "data"
    write_raw(data, DATE, SYM, minutes=1)
    short_capture(data, DATE, SYM, seconds=20)                    # the short capture
    res = materialize(instance, data)
    assert not res.success and "empty_bucket_rate" in failed_checks(res)
    assert not (data / "ofi_cvd").exists()
    res = materialize(instance, data, run_config=ACCEPT)
    assert res.success
    mats = {m.asset_key.path[-1]: m.metadata for m in res.get_asset_materialization_events()
            for m in [m.event_specific_data.materialization]}
    assert sorted(mats) == sorted(KINDS)
    md = mats["prices"]
    assert md["dq/verdict"].value == "accepted" and "empty_bucket_rate" in md["dq/failed_checks"].value
    assert md["dq/accepted_by"].value and md["dq/accepted_via"].value.endswith(f"(run {res.run_id})")
    ebr = failed_checks(res)["empty_bucket_rate"]
    assert ebr.severity == dg.AssetCheckSeverity.WARN and "accepted by" in ebr.description
    v = json.loads((data / f"quarantine/date={DATE}/symbol={SYM}/dq.json").read_text())
    assert v["status"] == "accepted" and v["accepted"]["by"] == md["dq/accepted_by"].value
    assert sorted(table_bytes(data, DATE, SYM)) == sorted(KINDS)


def test_publish_command_is_recorded_in_the_asset_metadata(tmp_path):
    data = tmp_path / "data"
    home = tmp_path / "dagster_home"
    write_raw(data, DATE, SYM, minutes=6)
    cross_book(data, DATE, SYM)
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        assert not materialize(instance, data).success
        held = table_bytes(data, DATE, SYM, "quarantine")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(home)}
        proc = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "publish", "--date",
                               DATE, "--symbol", SYM, "--data-dir", str(data), "--by", "carol"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "recorded in Dagster" in proc.stdout
        assert table_bytes(data, DATE, SYM) == held
        ev = instance.get_latest_materialization_event(dg.AssetKey("cvd"))
        md = ev.asset_materialization.metadata
        assert ev.asset_materialization.partition == PARTITION
        assert md["dq/verdict"].value == "accepted" and md["dq/accepted_by"].value == "carol"
        assert md["dq/failed_checks"].value == ["crossed_book_rows"]
        assert md["dq/accepted_via"].value == "ofi-cvd-harvest publish"


def test_several_partitions_as_concurrent_runs(tmp_path, monkeypatch):
    """A backfill's shape: one run per partition, side by side on one instance (as the run queue
    launches them, within dagster.yaml's limit of 2 derive runs). Each partition is gated on its
    own: the clean ones publish, the broken one is quarantined, staging is left empty."""
    data = tmp_path / "data"
    parts = [("2024-07-19", "BTCUSDT"), ("2024-07-19", "ETHUSDT"), ("2024-07-20", "BTCUSDT")]
    for i, (d, s) in enumerate(parts):
        write_raw(data, d, s, minutes=4, seed=i + 1)
    cross_book(data, "2024-07-19", "ETHUSDT")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATA_DIR": str(data),
           "SYMBOLS": "BTCUSDT,ETHUSDT", "PYTHONPATH": str(ROOT)}
    env.pop("OFI_CVD_CAPTURE_AUTOSTART", None)
    subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get()"],
                   env=env, check=True)
    procs = [subprocess.Popen([DAGSTER, "job", "execute", "-m", "ofi_cvd_harvest.definitions",
                               "-j", "derive_job", "--tags", json.dumps({"dagster/partition": f"{d}|{s}"})],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for d, s in parts[:2]]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    last = subprocess.run([DAGSTER, "job", "execute", "-m", "ofi_cvd_harvest.definitions", "-j",
                           "derive_job", "--tags", json.dumps({"dagster/partition": "2024-07-20|BTCUSDT"})],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    outs.append(last.stdout + last.stderr)
    assert "RUN_SUCCESS" in outs[0] and "RUN_SUCCESS" in outs[2], outs[0][-3000:] + outs[2][-3000:]
    assert "RUN_FAILURE" in outs[1] and "crossed_book_rows" in outs[1]
    assert sorted(table_bytes(data, "2024-07-19", "BTCUSDT")) == sorted(KINDS)
    assert sorted(table_bytes(data, "2024-07-20", "BTCUSDT")) == sorted(KINDS)
    assert table_bytes(data, "2024-07-19", "ETHUSDT") == {}
    assert sorted(table_bytes(data, "2024-07-19", "ETHUSDT", "quarantine")) == sorted(KINDS)
    assert not list((data / ".staging").rglob("*.parquet"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))   # dagster.yaml's storage follows $DAGSTER_HOME
    with dg.DagsterInstance.get() as inst:
        runs = inst.get_run_records(dg.RunsFilter(job_name="derive_job"))
        assert sorted(r.dagster_run.status.value for r in runs) == ["FAILURE", "SUCCESS", "SUCCESS"]


def test_sigkilled_derive_run_then_the_next_run_cleans_up(tmp_path, monkeypatch):
    """``dagster job execute -j derive_job`` killed (SIGKILL, whole process group) after it
    published prices and ofi: every published file is whole (old or new); the next run rolls the
    dead run's publish forward, removes its staging and publishes the partition."""
    import time

    from ofi_cvd_harvest.gate.publish import PAUSE_ENV, PAUSE_FILE_ENV

    from ..gate.rawedit import rescale

    data = tmp_path / "data"
    write_raw(data, DATE, SYM, minutes=4)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATA_DIR": str(data), "SYMBOLS": SYM,
           "PYTHONPATH": str(ROOT)}
    env.pop("OFI_CVD_CAPTURE_AUTOSTART", None)
    cmd = [DAGSTER, "job", "execute", "-m", "ofi_cvd_harvest.definitions", "-j", "derive_job",
           "--tags", json.dumps({"dagster/partition": PARTITION})]
    first = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "RUN_SUCCESS" in first.stdout + first.stderr
    old = table_bytes(data, DATE, SYM)
    rescale(data, DATE, SYM)
    marker = tmp_path / "paused"
    proc = subprocess.Popen(cmd, env={**env, PAUSE_ENV: "moved:ofi", PAUSE_FILE_ENV: str(marker)},
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, "the run never reached the pause"
            time.sleep(0.1)
        reap_group(proc)                  # SIGKILL mid-publish: the case under test
    finally:
        reap_group(proc)
    assert not list((data / "ofi_cvd").rglob("*.tmp"))
    mid = table_bytes(data, DATE, SYM)
    assert [k for k in KINDS if mid[k] != old[k]] == ["prices", "ofi"]   # whole files, old or new
    assert list((data / ".staging").glob("date=*/symbol=*/journal.json"))
    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = again.stdout + again.stderr
    assert "RUN_SUCCESS" in out and "finished what crashed runs left" in out, out[-3000:]
    new = table_bytes(data, DATE, SYM)
    assert new["prices"] == mid["prices"] and all(new[k] != old[k] for k in KINDS)
    assert not list((data / ".staging").rglob("*.parquet"))
    assert not list((data / ".staging").glob("date=*"))
