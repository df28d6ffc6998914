"""The full-day derivation benchmark as a (slow) test: < 20 s and < 2 GB (issue 3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_derive.py"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_full_day_benchmark_meets_target(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True)
    print(proc.stdout)
    assert "prices=2000" in proc.stdout and "ofi=864000" in proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
