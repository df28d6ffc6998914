"""End to end on a clean capture from the embedded simulator (slow: about 2.5 minutes).

One real capture via the precheck (capture → derive → gate), then the real Dagster assets and
blocking checks on the captured partition: every gated check passes on clean data.
"""

from __future__ import annotations

import json
import warnings

import dagster as dg
import pytest

from ofi_cvd_harvest.settings import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    server = pytest.importorskip("ofi_cvd_harvest.sim.server")
    pytest.importorskip("ofi_cvd_harvest.capture.runner")
    from ofi_cvd_harvest import precheck

    root = tmp_path_factory.mktemp("sim")
    with server.SimulatorThread(["BTCUSDT"], seed=5) as sim:
        settings = load_settings(env={}, symbols=("BTCUSDT",), data_dir=root / "data",
                                 artifacts_dir=root / "art", ws_base_url=sim.ws_url,
                                 rest_base_url=sim.rest_url, prometheus_port=0, precheck_minutes=2.0)
        rc = precheck.run_precheck(settings)
    return settings, rc


def test_precheck_passes_on_a_clean_capture(capture):
    settings, rc = capture
    reports = list((settings.artifacts_dir / "dq_reports").glob("dq_*.json"))
    assert len(reports) == 1
    doc = json.loads(reports[0].read_text())
    sec = doc["per_symbol"]["BTCUSDT"]
    assert doc["mode"] == "precheck" and sec["dedup"]["prices_rows"] > 1000
    assert sec["coverage_hours"] == pytest.approx(2 / 60, rel=0.1)
    assert sec["criteria"]["events_per_72h"]["scaled"] is True
    assert rc == 0, sec["failed"]
    # it passed the gate, so it is published (and only there)
    assert {g["status"] for g in doc["gate"].values()} == {"published"}
    assert len(list((settings.data_dir / "ofi_cvd").glob("date=*/symbol=BTCUSDT/kind=*/*.parquet"))) \
        == 5 * len(doc["gate"])
    assert not (settings.data_dir / "quarantine").exists()


def test_dagster_checks_pass_on_a_clean_capture(capture):
    from ofi_cvd_harvest.orchestration.assets import derived_assets
    from ofi_cvd_harvest.orchestration.checks import CHECKS_BY_ASSET
    from ofi_cvd_harvest.orchestration.partitions import register_symbols
    from ofi_cvd_harvest.orchestration.resources import HarvestSettings

    settings, _ = capture
    dates = sorted(p.name.split("=")[1] for p in (settings.data_dir / "raw").glob("date=*"))
    for date in dates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            instance = dg.DagsterInstance.ephemeral()
            register_symbols(instance, ["BTCUSDT"])
            result = dg.materialize(derived_assets, partition_key=f"{date}|BTCUSDT",
                                    instance=instance,
                                    resources={"harvest": HarvestSettings(data_dir=str(settings.data_dir))},
                                    raise_on_error=False)
        ev = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert len(ev) == sum(len(v) for v in CHECKS_BY_ASSET.values())
        assert all(e.passed for e in ev.values()), {n: e.description for n, e in ev.items() if not e.passed}
        assert result.success


def test_capture_cli_precheck_only_exit_status(tmp_path):
    """`ofi-cvd-harvest capture --precheck-only` as a user runs it (1-minute precheck)."""
    import os
    import subprocess
    import sys

    server = pytest.importorskip("ofi_cvd_harvest.sim.server")
    cfg = tmp_path / "system.yaml"
    cfg.write_text("data_harvest:\n  symbols: [BTCUSDT]\n  data_quality:\n    precheck_minutes: 1\n")
    exe = os.path.join(os.path.dirname(sys.executable), "ofi-cvd-harvest")
    with server.SimulatorThread(["BTCUSDT"], seed=9) as sim:
        proc = subprocess.run(
            [exe, "capture", "--precheck-only", "--config", str(cfg), "--ws-base-url", sim.ws_url,
             "--rest-base-url", sim.rest_url, "--data-dir", str(tmp_path / "data"),
             "--artifacts-dir", str(tmp_path / "art"), "--prometheus-port", "0"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "SYMBOLS": ""})
    assert "PRECHECK:" in proc.stdout, proc.stdout + proc.stderr
    verdict = "PASS" if "PRECHECK: PASS" in proc.stdout else "FAIL"
    assert proc.returncode == (0 if verdict == "PASS" else 1)
    assert list((tmp_path / "art" / "dq_reports").glob("dq_*.json"))
