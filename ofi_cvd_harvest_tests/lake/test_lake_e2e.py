"""capture → derive (the gate) → validate with ``DATA_DIR=s3://…`` on a real moto_server:
the same CLIs, the same report and exit codes as on a local directory (docs/deploy.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from ofi_cvd_harvest.capture.runner import run_capture_sync
from ofi_cvd_harvest.storage.objectstore import LakeUrl, ObjectStore, polars_storage_options

from ..capture.rawcheck import assert_trades_complete, capture_settings, truth_ids
from .lakecheck import Lister

ROOT = Path(__file__).resolve().parents[2]
SYMS = ("BTCUSDT", "ETHUSDT")


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARTIFACTS_DIR": str(tmp_path / "art")}
    env.pop("DAGSTER_HOME", None)                  # acceptance recorded in dq.json only
    return subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_capture_derive_validate_on_s3(simulator, lake, tmp_path):
    url, _ = lake
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url, data_dir=LakeUrl(url),
                         parquet_rotate_sec=2.0)
    run_capture_sync(s, run_seconds=6)
    derive = _cli("derive", "--data-dir", url, "--symbols", ",".join(SYMS), tmp_path=tmp_path)
    # a 6 s capture fails the 72 h DoD thresholds: quarantined, exit 1, nothing under ofi_cvd/
    assert derive.returncode == 1, derive.stdout + derive.stderr
    assert "QUARANTINED" in derive.stdout
    store, prefix = ObjectStore.for_url(url)
    keys = [k for k, _ in store.list(prefix)]
    assert not [k for k in keys if "/ofi_cvd/" in k]
    assert not [k for k in keys if "/.staging/" in k]                 # staging cleaned up
    quarantined = [k for k in keys if "/quarantine/" in k]
    assert {k.rsplit("/", 2)[-2] for k in quarantined if k.endswith(".parquet")} == {
        f"kind={k}" for k in ("prices", "cvd", "ofi", "fusion", "events")}
    dq = json.loads(store.get(next(k for k in quarantined if k.endswith("dq.json"))))
    assert dq["status"] == "quarantined" and dq["failed_checks"]

    # accept BTCUSDT explicitly (`publish`), re-derive ETHUSDT with --publish-on-fail
    date = next(p for p in quarantined[0].split("/") if p.startswith("date="))[5:]
    pub = _cli("publish", "--data-dir", url, "--date", date, "--symbol", "BTCUSDT", "--by", "t",
               tmp_path=tmp_path)
    assert pub.returncode == 0, pub.stdout + pub.stderr
    q_btc = [k for k, _ in store.list(f"{prefix}/quarantine/date={date}/symbol=BTCUSDT/")]
    assert [k.rsplit("/", 1)[1] for k in q_btc] == ["dq.json"]          # only the verdict stays
    verdict = json.loads(store.get(q_btc[0]))
    assert verdict["status"] == "accepted" and verdict["accepted"]["by"] == "t"
    again = _cli("publish", "--data-dir", url, "--date", date, "--symbol", "BTCUSDT",
                 tmp_path=tmp_path)
    assert again.returncode == 1 and "no quarantined tables" in again.stdout
    lister = Lister(f"{url}/ofi_cvd")           # readers' view while the gate publishes
    lister.start()
    derive = _cli("derive", "--data-dir", url, "--symbols", "ETHUSDT", "--publish-on-fail",
                  tmp_path=tmp_path)
    lister.stop()
    assert derive.returncode == 0, derive.stdout + derive.stderr
    lister.assert_only_whole_objects()
    assert any("symbol=ETHUSDT" in k for k in lister.seen)
    published = [k for k, _ in store.list(f"{prefix}/ofi_cvd/")]
    assert len(published) == 5 * len(SYMS)
    assert {k.rsplit("/", 2)[-2] for k in published} == {
        f"kind={k}" for k in ("prices", "cvd", "ofi", "fusion", "events")}
    assert not [k for k, _ in store.list(f"{prefix}/.staging/")]
    cvd = pl.scan_parquet(f"{url}/ofi_cvd/**/kind=cvd/*.parquet", hive_partitioning=True,
                          storage_options=polars_storage_options()).collect()
    assert sorted(cvd["symbol"].unique().to_list()) == sorted(SYMS)   # hive columns from keys
    for sym in SYMS:
        truth = truth_ids(simulator, sym)
        prices = pl.scan_parquet(f"{url}/ofi_cvd/date=*/symbol={sym}/kind=prices/*.parquet",
                                 storage_options=polars_storage_options()).collect()
        assert_trades_complete(prices, truth)                    # every trade once, derived

    # validate over s3:// (DuckDB through a registered s3fs filesystem): the report, exit 1
    val = _cli("validate", "--base-dir", f"{url}/ofi_cvd", "--output-dir", str(tmp_path / "dq"),
               tmp_path=tmp_path)
    assert val.returncode == 1, val.stdout + val.stderr         # FAIL: 6 s is not 72 h
    report = json.loads(next((tmp_path / "dq").glob("dq_*.json")).read_text())
    assert set(report["per_symbol"]) == set(SYMS)
    for sec in report["per_symbol"].values():
        assert sec["dedup"]["duplicate_rate"] == 0 and sec["dedup"]["raw_rows"] > 20
        assert sec["completeness"]["missing_trades"] == 0
    bad = _cli("validate", "--base-dir", f"{url}/nothing-here", tmp_path=tmp_path)
    assert bad.returncode == 2, bad.stdout + bad.stderr
