"""The quick start stays true: `ofi-cvd-harvest demo` (what `make demo` runs) end to end."""

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
    for kind in ("prices", "ofi", "cvd", "fusion", "events"):
        assert list((tmp_path / "data" / "ofi_cvd").glob(f"date=*/symbol=BTCUSDT/kind={kind}/part-*.parquet"))
    assert list((tmp_path / "artifacts" / "dq_reports").glob("dq_*.json"))
    assert not list(tmp_path.rglob("*.tmp"))
