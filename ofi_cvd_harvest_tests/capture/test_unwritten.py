"""A capture whose data directory stays unusable until the end (issue 12 "Exit codes"): it exits
4 naming the rows per table, the checkpoint of a first run owes the trades it could not write,
and the next start heals them; Dagster's capture op fails in that case."""

from __future__ import annotations

import os
import re
import subprocess

import dagster as dg
import pytest

from ofi_cvd_harvest.capture import checkpoint as ckpt
from ofi_cvd_harvest.capture.outcome import EXIT_UNWRITTEN
from ofi_cvd_harvest.capture.runner import run_capture_sync

from .miniexchange import MiniExchange
from .rawcheck import assert_trades_complete, capture_settings, read
from .test_cli import ROOT, capture_cmd

SYMS = ["BTCUSDT", "ETHUSDT"]


def fast_fail_config(tmp_path):
    """The shipped config with one write retry (each failed batch costs less waiting)."""
    cfg = tmp_path / "system.yaml"
    cfg.write_text((ROOT / "config/system.yaml").read_text().replace(
        "write_retries: 3", "write_retries: 1"))
    return cfg


@pytest.fixture
def ex():
    with MiniExchange(SYMS, seed=8) as x:
        yield x


def test_unwritable_until_the_end_exits_4_and_the_restart_heals(ex, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "raw").write_text("a file where the raw directory must go: every write fails")
    proc = subprocess.run(capture_cmd(tmp_path, ex, "--run-seconds", "3", "--prometheus-port", "0",
                                      "--config", str(fast_fail_config(tmp_path))),
                          cwd=ROOT, capture_output=True, text=True, timeout=90,
                          env={**os.environ, "PARQUET_ROTATE_SEC": "1"})
    assert proc.returncode == EXIT_UNWRITTEN, proc.stderr[-2000:]
    m = re.search(r"ofi-cvd-harvest capture: (\d+) rows could not be written: "
                  r"agg_trade=(\d+), book=(\d+), ops=(\d+)", proc.stderr)
    assert m, proc.stderr[-2000:]
    assert int(m.group(1)) == sum(int(m.group(i)) for i in (2, 3, 4)) and int(m.group(2)) > 0
    assert "Traceback" not in proc.stderr
    # a first run: nothing durable, yet the checkpoint owes everything from its first trade
    cp = ckpt.load(ckpt.path_in(tmp_path / "art"))
    for sym in SYMS:
        assert cp.symbols[sym].last_trade_id is not None, sym
    owed_from = {s: cp.symbols[s].last_trade_id + 1 for s in SYMS}
    # space comes back: the next start heals what was lost, from the first lost id on
    (data / "raw").unlink()
    s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, artifacts_dir=tmp_path / "art")
    summary = run_capture_sync(s, run_seconds=2.5)
    assert summary.rows_unwritten == 0 and summary.unwritten == {}
    for sym in SYMS:
        trades = read(data, "agg_trade", sym)
        assert_trades_complete(trades, ex.ground_truth_ids(sym))
        assert trades["agg_trade_id"].min() == owed_from[sym]
        assert summary.symbols[sym].trades_healed > 0


def test_dagster_capture_op_fails_on_unwritten_rows(ex, tmp_path, monkeypatch):
    from ofi_cvd_harvest.definitions import defs
    from ofi_cvd_harvest.orchestration.resources import HarvestSettings
    for k, v in {"WS_BASE_URL": ex.ws_url, "REST_BASE_URL": ex.rest_url, "SYMBOLS": "BTCUSDT",
                 "DATA_DIR": str(tmp_path / "data"), "ARTIFACTS_DIR": str(tmp_path / "art"),
                 "PROMETHEUS_PORT": "0", "PARQUET_ROTATE_SEC": "60"}.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw").write_text("blocks every write")
    with dg.instance_for_test() as instance:
        result = defs.get_job_def("capture_job").execute_in_process(
            run_config={"ops": {"capture": {"config": {"symbols": ["BTCUSDT"], "run_seconds": 2}}}},
            instance=instance, raise_on_error=False,
            resources={"harvest": HarvestSettings(config_path=str(fast_fail_config(tmp_path)))})
    assert not result.success
    failures = [e.step_failure_data.error.message for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1 and "unwritten rows" in failures[0] and "agg_trade=" in failures[0]
