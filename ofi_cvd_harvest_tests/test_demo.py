"""The quick start stays true: `ofi-cvd-harvest demo` (what `make demo` runs) end to end."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def test_demo_captures_every_trade_and_derives(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "ofi_cvd_harvest.cli", "demo", "--run-seconds", "12",
         "--data-dir", str(tmp_path / "data"), "--artifacts-dir", str(tmp_path / "artifacts")],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DEMO OK: no trade missing" in proc.stdout
    assert "missing 0" in proc.stdout
    # every partition went through the gate, and what the demo printed says where it is: 12 s
    # inside one minute fail empty_bucket_rate (quarantined with dq.json, nothing in the lake);
    # 12 s across a minute boundary may pass (all five tables published, nothing quarantined)
    data = tmp_path / "data"
    kinds = {f"kind={k}" for k in ("prices", "ofi", "cvd", "fusion", "events")}
    reports = list((tmp_path / "artifacts" / "dq_reports").glob("dq_*.json"))
    assert len(reports) == 1
    doc = json.loads(reports[0].read_text())
    status = {}
    for sym in ("BTCUSDT", "ETHUSDT"):
        verdicts = list((data / "quarantine").glob(f"date=*/symbol={sym}/dq.json"))
        published = list((data / "ofi_cvd").glob(f"date=*/symbol={sym}/kind=*/part-*.parquet"))
        if verdicts:
            assert len(verdicts) == 1 and not published, (verdicts, published)
            assert f"-> {verdicts[0]}" in proc.stdout
            assert {p.parent.name for p in verdicts[0].parent.glob("kind=*/part-*.parquet")} == kinds
            status[sym] = "quarantined"
        else:
            assert {p.parent.name for p in published} == kinds, published
            status[sym] = "published"
        assert doc["per_symbol"][sym]["dedup"]["prices_rows"] > 0   # read where the gate left it
    assert sorted(g["status"] for g in doc["gate"].values()) == sorted(status.values())
    if "quarantined" in status.values():
        assert "DQ gate: FAIL" in proc.stdout
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow
def test_a_second_demo_starts_afresh_and_a_changed_output_is_kept(tmp_path: Path):
    """Run twice into the same directories: the second run removes the first's output (its
    simulator is a new exchange, whose ids start again) and reports on its own capture alone.
    Once a file changed after a run, the next one refuses and touches nothing."""
    def demo():
        return subprocess.run(
            [sys.executable, "-m", "ofi_cvd_harvest.cli", "demo", "--run-seconds", "12",
             "--data-dir", str(tmp_path / "data"), "--artifacts-dir", str(tmp_path / "artifacts")],
            capture_output=True, text=True, timeout=240)

    first = demo()
    assert first.returncode == 0 and "removed the previous demo" not in first.stdout
    second = demo()
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "removed the previous demo run's output" in second.stdout
    assert "DEMO OK: no trade missing" in second.stdout
    assert len(list((tmp_path / "artifacts" / "dq_reports").glob("dq_*.json"))) == 1
    assert len(list((tmp_path / "artifacts" / "run_logs").glob("*.log"))) == 1
    trades = sorted((tmp_path / "data" / "raw").rglob("stream=agg_trade/*.parquet"))
    ids = [i for f in trades for i in pq.read_table(f, columns=["agg_trade_id"])
           .column(0).to_pylist()]
    assert ids and len(ids) == len(set(ids))   # one capture's trades, none twice

    keep = trades[0]
    time.sleep(0.05)
    keep.write_bytes(keep.read_bytes())        # changed after the run: e.g. a UI capture since
    third = demo()
    assert third.returncode == 2 and "Nothing was removed" in third.stderr, third.stderr
    assert keep.exists() and len(list((tmp_path / "artifacts" / "dq_reports").glob("*"))) == 1
