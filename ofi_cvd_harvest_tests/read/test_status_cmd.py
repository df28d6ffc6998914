"""``ofi-cvd-harvest status --json``: every section's fields against the lake of lake.py (built
through the gate) and a real DQ report written by ``validate``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from ofi_cvd_harvest import cli, schemas
from ofi_cvd_harvest.lake_status import collect

from . import lake

ROOT = Path(__file__).resolve().parents[2]


def _rows(paths) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def test_status_json_fields(data, tmp_path):
    artifacts = tmp_path / "artifacts"
    rc = cli.main(["validate", "--base-dir", str(data / "ofi_cvd"), "--output-dir",
                   str(artifacts / "dq_reports"), "--date", "2024-07-18", "--quiet"])
    assert rc in (0, 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "status", "--data-dir", str(data),
                        "--artifacts-dir", str(artifacts), "--json"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) >= {"format", "generated_at", "data_dir", "captured", "published", "quarantined",
                        "not_derived", "dq_reports", "totals"}
    # captured: every raw partition, rows and bytes per stream from the files themselves
    cap = {(e["date"], e["symbol"]): e for e in doc["captured"]}
    assert set(cap) == {(d, s) for d in lake.DATES for s in lake.SYMBOLS} | {lake.ONLY_Q}
    e = cap[("2024-07-18", "ETHUSDT")]
    for stream in schemas.RAW_STREAMS:
        files = sorted((data / f"raw/date=2024-07-18/symbol=ETHUSDT/stream={stream}").glob("*.parquet"))
        assert e["streams"][stream]["files"] == len(files)
        assert e["streams"][stream]["rows"] == _rows(files)
        assert e["streams"][stream]["bytes"] == sum(f.stat().st_size for f in files)
    assert e["bytes"] == sum(s["bytes"] for s in e["streams"].values())
    newest = max(f.stat().st_mtime for f in (data / "raw/date=2024-07-18/symbol=ETHUSDT").rglob("*.parquet"))
    assert abs(e["last_file_age_sec"] - (time.time() - newest)) < 60
    # published: the four gated partitions, rows per table
    pub = {(e["date"], e["symbol"]): e for e in doc["published"]}
    assert set(pub) == {(d, s) for d in lake.DATES for s in lake.SYMBOLS}
    for (d, s), e in pub.items():
        assert set(e["tables"]) == set(schemas.DERIVED_KINDS)
        assert e["tables"]["prices"]["rows"] == _rows(
            [data / f"ofi_cvd/date={d}/symbol={s}/kind=prices/part-00000.parquet"])
        assert e["accepted"] is None
        assert e["newer_version_quarantined"] == ((d, s) == lake.BOTH)
    # quarantined: why, from dq.json
    qua = {(e["date"], e["symbol"]): e for e in doc["quarantined"]}
    assert set(qua) == {lake.BOTH, lake.ONLY_Q}
    for key, e in qua.items():
        verdict = json.loads(Path(e["verdict_path"]).read_text())
        assert e["status"] == "quarantined" and e["failed_checks"] == verdict["failed_checks"] != []
        assert e["since"] == verdict["time"] and e["published_version"] == (key == lake.BOTH)
        assert set(e["tables"]) == set(schemas.DERIVED_KINDS)
    assert doc["not_derived"] == []
    # the DQ report validate just wrote
    (rep,) = doc["dq_reports"]
    written = json.loads(Path(rep["path"]).read_text())
    assert rep["verdict"] == written["overall"]["verdict"] and rep["dates"] == ["2024-07-18"]
    assert doc["totals"]["raw_partitions"] == 5 and doc["totals"]["quarantined_partitions"] == 2
    # the human view names the same things
    text = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "status", "--data-dir", str(data),
                           "--artifacts-dir", str(artifacts)], env=env, capture_output=True,
                          text=True, timeout=120).stdout
    assert "captured (raw): 5 partitions" in text and "quarantined" in text
    assert f"{lake.ONLY_Q[0]} {lake.ONLY_Q[1]}: failed " in text


def test_status_names_unreadable_and_underived(tmp_path, data):
    root = tmp_path / "data"
    src = data / "raw/date=2024-07-18/symbol=BTCUSDT"
    shutil.copytree(src, root / "raw/date=2024-07-18/symbol=BTCUSDT")
    bad = root / "raw/date=2024-07-18/symbol=BTCUSDT/stream=book/part-9-000999.parquet"
    bad.write_bytes(b"PAR1 truncated")
    doc = collect(root, tmp_path / "no-artifacts")
    (e,) = doc["captured"]
    assert e["streams"]["book"]["unreadable"] == [str(bad)]
    assert doc["not_derived"] == [{"date": "2024-07-18", "symbol": "BTCUSDT"}]
    assert doc["published"] == [] and doc["quarantined"] == [] and doc["dq_reports"] == []
