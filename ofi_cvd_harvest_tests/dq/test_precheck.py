"""Precheck: derive what was captured, gate on the DoD, mark extrapolated criteria, exit status."""

from __future__ import annotations

import json

import pytest

from ofi_cvd_harvest.dq import precheck
from ofi_cvd_harvest.settings import load_settings

from . import dataset as ds


@pytest.fixture
def captured(tmp_path):
    """Raw partitions as a capture leaves them (derived tables removed: the precheck derives)."""
    root = tmp_path / "data"
    ds.build_partition(root, symbol="BTCUSDT", minutes=12, seed=3)
    import shutil
    shutil.rmtree(root / "ofi_cvd")
    return load_settings(env={}, symbols=("BTCUSDT",), data_dir=root, artifacts_dir=tmp_path / "art",
                         precheck_minutes=12.0)


def test_precheck_passes_and_marks_scaled_criteria(captured, capsys):
    paths = precheck.derive_captured(captured, {"BTCUSDT": [ds.DATE]})
    assert len(paths) == 5
    rc, report, path = precheck.evaluate(captured, {"BTCUSDT": [ds.DATE]}, 12.0)
    out = capsys.readouterr().out
    assert rc == 0 and "PRECHECK: PASS" in out
    assert "events_per_72h is not judgeable on 12 minutes" in out
    doc = json.loads(path.read_text())
    assert doc["mode"] == "precheck" and path.parent == captured.artifacts_dir / "dq_reports"
    crit = doc["per_symbol"]["BTCUSDT"]["criteria"]["events_per_72h"]
    assert crit["scaled"] is True and "extrapolated" in crit["note"]
    assert doc["overall"]["criteria"]["events_per_72h"]["scaled"] is True


def test_precheck_fails_non_zero_on_a_bad_capture(captured, capsys):
    b = ds.Built(captured.data_dir, ds.DATE, "BTCUSDT", 0, 0, 0)
    ds.cross_book(b, row=10)
    precheck.derive_captured(captured, {"BTCUSDT": [ds.DATE]})
    rc, report, _ = precheck.evaluate(captured, {"BTCUSDT": [ds.DATE]}, 12.0)
    assert rc == 1 and "PRECHECK: FAIL" in capsys.readouterr().out
    assert "BTCUSDT:crossed_book_rows" in report["overall"]["failed"]


def test_precheck_with_nothing_captured_is_unusable(captured, capsys):
    rc, report, _ = precheck.evaluate(captured, {"BTCUSDT": []}, 12.0)
    assert rc == 2 and report is None
    assert "no data captured for BTCUSDT" in capsys.readouterr().err
