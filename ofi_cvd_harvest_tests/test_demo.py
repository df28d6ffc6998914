"""The quick start stays true: `ofi-cvd-harvest demo` (what `make demo` runs) end to end."""

import json
import subprocess
import sys
from pathlib import Path


def test_demo_captures_every_trade_and_derives(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "ofi_cvd_harvest.cli", "demo", "--run-seconds", "12",
         "--data-dir", str(tmp_path / "data"), "--artifacts-dir", str(tmp_path / "artifacts")],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DEMO OK: no trade missing" in proc.stdout
    assert "missing 0" in proc.stdout
    # 12 s cover no whole minute: the gate quarantines every partition (empty_bucket_rate),
    # says so with the dq.json, keeps the lake empty, and the report still shows the figures
    data = tmp_path / "data"
    for sym in ("BTCUSDT", "ETHUSDT"):
        verdicts = list((data / "quarantine").glob(f"date=*/symbol={sym}/dq.json"))
        assert len(verdicts) == 1
        assert f"(empty_bucket_rate failed) -> {verdicts[0]}" in proc.stdout
        for kind in ("prices", "ofi", "cvd", "fusion", "events"):
            assert list(verdicts[0].parent.glob(f"kind={kind}/part-*.parquet"))
    assert not list((data / "ofi_cvd").rglob("*.parquet"))
    assert "OVERALL: FAIL" in proc.stdout and "DQ gate: FAIL" in proc.stdout
    reports = list((tmp_path / "artifacts" / "dq_reports").glob("dq_*.json"))
    assert len(reports) == 1
    doc = json.loads(reports[0].read_text())
    assert doc["per_symbol"]["BTCUSDT"]["dedup"]["prices_rows"] > 0   # read from quarantine/
    assert {g["status"] for g in doc["gate"].values()} == {"quarantined"}
    assert not list(tmp_path.rglob("*.tmp"))
