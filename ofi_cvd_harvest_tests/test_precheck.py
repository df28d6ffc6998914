"""Precheck (ofi_cvd_harvest/precheck.py): derive what was captured through the DQ gate, report the
DoD wherever each partition landed, mark extrapolated criteria, exit status."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from ofi_cvd_harvest import precheck
from ofi_cvd_harvest.settings import load_settings

from .dq import dataset as ds

PKG = Path(precheck.__file__).parent


@pytest.fixture
def captured(tmp_path):
    """Raw partitions as a capture leaves them (derived tables removed: the precheck derives)."""
    root = tmp_path / "data"
    ds.build_partition(root, symbol="BTCUSDT", minutes=12, seed=3)
    shutil.rmtree(root / "ofi_cvd")
    return load_settings(env={}, symbols=("BTCUSDT",), data_dir=root, artifacts_dir=tmp_path / "art",
                         precheck_minutes=12.0)


def _gate_and_evaluate(settings):
    dates = {"BTCUSDT": [ds.DATE]}
    outcomes = precheck.gate_captured(settings, dates)
    return outcomes, precheck.evaluate(settings, dates, outcomes, 12.0)


def test_precheck_publishes_passes_and_marks_scaled_criteria(captured, capsys):
    outcomes, res = _gate_and_evaluate(captured)
    out = capsys.readouterr().out
    assert [o.status for o in outcomes] == ["published"]
    assert len(list((captured.data_dir / "ofi_cvd").rglob("*.parquet"))) == 5
    assert res.status == precheck.PASS and "PRECHECK: PASS" in out
    assert f"{ds.DATE} BTCUSDT: prices " in out and "published" in out
    assert "events_per_72h is not judgeable on 12 minutes" in out
    doc = json.loads(res.path.read_text())
    assert doc["mode"] == "precheck" and res.path.parent == captured.artifacts_dir / "dq_reports"
    assert doc["gate"] == {f"{ds.DATE}|BTCUSDT": {"status": "published", "failed": [],
                                                  "warnings": [], "dq_json": None}}
    crit = doc["per_symbol"]["BTCUSDT"]["criteria"]["events_per_72h"]
    assert crit["scaled"] is True and "extrapolated" in crit["note"]
    assert doc["overall"]["criteria"]["events_per_72h"]["scaled"] is True
    assert res.facts()["gate"] == {f"{ds.DATE}|BTCUSDT": "published"}


def test_a_failing_capture_is_quarantined_and_still_reported(captured, capsys):
    """A crossed book row: nothing reaches ofi_cvd/, the report still shows every figure (read
    from quarantine/), names the dq.json, and the exit status is 1."""
    b = ds.Built(captured.data_dir, ds.DATE, "BTCUSDT", 0, 0, 0)
    ds.cross_book(b, row=10)
    outcomes, res = _gate_and_evaluate(captured)
    out = capsys.readouterr().out
    assert [o.status for o in outcomes] == ["quarantined"]
    assert not list((captured.data_dir / "ofi_cvd").rglob("*.parquet"))
    qdir = captured.data_dir / "quarantine" / f"date={ds.DATE}" / "symbol=BTCUSDT"
    assert len(list(qdir.rglob("*.parquet"))) == 5 and (qdir / "dq.json").is_file()
    assert res.status == precheck.FAIL and "PRECHECK: FAIL" in out
    assert f"quarantined {ds.DATE}|BTCUSDT (crossed_book_rows failed): {qdir / 'dq.json'}" in out
    doc = res.report
    assert "BTCUSDT:crossed_book_rows" in doc["overall"]["failed"]
    sec = doc["per_symbol"]["BTCUSDT"]
    # the derived figures come from the quarantined tables, not from an empty lake
    assert sec["dedup"]["prices_rows"] > 1000 and sec["signals"]["signal_events"] > 0
    assert sec["criteria"]["events_per_72h"]["passed"] is True
    assert doc["derived_roots"] == {f"{ds.DATE}|BTCUSDT": str(captured.data_dir / "quarantine")}
    assert doc["gate"][f"{ds.DATE}|BTCUSDT"]["failed"] == ["crossed_book_rows"]
    assert res.facts()["quarantined"] == {f"{ds.DATE}|BTCUSDT": str(qdir / "dq.json")}


def test_report_reads_this_run_not_an_older_published_version(captured, capsys):
    """A good version already published, then a failing capture of the same partition: the
    lake keeps the good one, the precheck judges the new (quarantined) one."""
    _gate_and_evaluate(captured)
    published = {p: p.read_bytes() for p in (captured.data_dir / "ofi_cvd").rglob("*.parquet")}
    ds.cross_book(ds.Built(captured.data_dir, ds.DATE, "BTCUSDT", 0, 0, 0), row=10)
    _, res = _gate_and_evaluate(captured)
    assert res.status == precheck.FAIL
    assert {p: p.read_bytes() for p in (captured.data_dir / "ofi_cvd").rglob("*.parquet")} == published
    assert res.report["per_symbol"]["BTCUSDT"]["book"]["crossed_rows"] == 1


def test_precheck_with_nothing_captured_is_unusable(captured, capsys):
    res = precheck.evaluate(captured, {"BTCUSDT": []}, [], 12.0)
    assert res.status == precheck.UNUSABLE and res.report is None
    assert "no data captured for BTCUSDT" in capsys.readouterr().err


def test_captured_dates_are_the_run_dates_with_raw_files(captured):
    t = 1721350800.0   # 2024-07-19 01:00 UTC
    assert precheck.captured_dates(captured, "BTCUSDT", t - 86400, t) == [ds.DATE]
    assert precheck.captured_dates(captured, "ETHUSDT", t, t) == []
    assert precheck.captured_dates(captured, "BTCUSDT", t + 86400, t + 86400) == []


def _imports(path: Path) -> set[str]:
    """Absolute names of the ofi_cvd_harvest modules a file imports (lazy imports included)."""
    pkg = "ofi_cvd_harvest." + ".".join(path.relative_to(PKG).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.rstrip(".").split(".")
                base = base[:len(base) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("ofi_cvd_harvest")}


@pytest.mark.parametrize("lower,upper", [("dq", "capture"), ("capture", "dq"),
                                         ("dq", "precheck"), ("gate", "precheck")])
def test_no_import_cycle_between_capture_and_dq(lower, upper):
    """dq (and gate) never import the capture or the precheck flow; capture never imports dq."""
    offenders = {str(p.relative_to(PKG)): sorted(m for m in _imports(p)
                                                 if m == f"ofi_cvd_harvest.{upper}"
                                                 or m.startswith(f"ofi_cvd_harvest.{upper}."))
                 for p in (PKG / lower).glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_import_scan_sees_lazy_relative_imports():
    """The scan above can fail: it resolves the capture CLI's lazy import of the precheck."""
    assert "ofi_cvd_harvest.precheck" in _imports(PKG / "capture" / "cli.py")
    assert "ofi_cvd_harvest.capture.runner" in _imports(PKG / "precheck.py")
