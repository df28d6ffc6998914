"""``ofi-cvd-harvest validate``: exit 0 pass, 1 fail, 2 unusable input (each with a clear message)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ofi_cvd_harvest.cli import main

from . import dataset as ds


def validate(capsys, base, out, *extra):
    rc = main(["validate", "--base-dir", str(base), "--output-dir", str(out), *extra])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_pass_exits_0_and_writes_report(data, tmp_path, capsys):
    rc, out, err = validate(capsys, data / "ofi_cvd", tmp_path / "reports")
    assert rc == 0, out + err
    assert "OVERALL: PASS" in out and "BTCUSDT: PASS" in out and "ETHUSDT: PASS" in out
    files = list((tmp_path / "reports").glob("dq_*.json"))
    assert len(files) == 1 and f"report: {files[0]}" in out
    doc = json.loads(files[0].read_text())
    assert doc["symbols"] == ["BTCUSDT", "ETHUSDT"] and doc["dates"] == [ds.DATE]


def test_fail_exits_1_and_names_the_failed_criteria(data, tmp_path, capsys):
    b = ds.Built(data, ds.DATE, "ETHUSDT", 0, 0, 50_000)
    ds.unwinsorise(b)
    rc, out, _ = validate(capsys, data / "ofi_cvd", tmp_path / "r")
    assert rc == 1
    assert "ETHUSDT: FAIL" in out and "FAIL winsor_effect" in out and "ETHUSDT:winsor_effect" in out
    assert "OVERALL: FAIL" in out


def test_symbol_and_date_selection(data, tmp_path, capsys):
    b = ds.Built(data, ds.DATE, "ETHUSDT", 0, 0, 50_000)
    ds.strip_events(b)
    rc, out, _ = validate(capsys, data / "ofi_cvd", tmp_path / "r", "--symbols", "btcusdt", "--date", ds.DATE)
    assert rc == 0 and "ETHUSDT" not in out


@pytest.mark.parametrize("case,message", [
    ("missing_base", "does not exist"),
    ("empty_base", "no date=YYYY-MM-DD partitions"),
    ("unknown_date", "no data for date 2024-07-20"),
    ("bad_date", "invalid --date"),
    ("unknown_symbol", "no data for symbol SOLUSDT"),
    ("missing_raw", "raw directory"),
    ("corrupt_derived", "unreadable Parquet file"),
])
def test_unusable_input_exits_2_with_reason(data, tmp_path, capsys, case, message):
    base, extra = data / "ofi_cvd", []
    if case == "missing_base":
        base = tmp_path / "nowhere" / "ofi_cvd"
    elif case == "empty_base":
        base = tmp_path / "empty" / "ofi_cvd"
        base.mkdir(parents=True)
        (base.parent / "raw").mkdir()
    elif case == "unknown_date":
        extra = ["--date", "2024-07-20"]
    elif case == "bad_date":
        extra = ["--date", "19/07/2024"]
    elif case == "unknown_symbol":
        extra = ["--symbols", "SOLUSDT"]
    elif case == "missing_raw":
        os.rename(data / "raw", data / "raw_moved")
    elif case == "corrupt_derived":
        f = data / "ofi_cvd" / f"date={ds.DATE}" / "symbol=ETHUSDT" / "kind=cvd" / "part-00000.parquet"
        f.write_bytes(b"PAR1 garbage")
    rc, out, err = validate(capsys, base, tmp_path / "r", *extra)
    assert rc == 2
    assert err.startswith("validate: unusable input:") and message in err
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("dq_*.json"))


def test_console_script_end_to_end(data, tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "ofi-cvd-harvest")
    proc = subprocess.run([exe, "validate", "--base-dir", str(data / "ofi_cvd"), "--output-dir",
                           str(tmp_path / "r"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("PASS ") and proc.stdout.strip().endswith(".json")
