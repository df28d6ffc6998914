"""``ofi-cvd-harvest capture`` as a real process: SIGTERM mid-run finalises everything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ofi_cvd_harvest.capture import checkpoint as ckpt

from ..procs import free_port, reap, terminate
from .miniexchange import MiniExchange
from .rawcheck import assert_trades_complete, no_temp_files, read

ROOT = Path(__file__).resolve().parents[2]


def capture_cmd(tmp_path: Path, ex: MiniExchange, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols", "BTCUSDT,ETHUSDT",
            "--data-dir", str(tmp_path / "data"), "--artifacts-dir", str(tmp_path / "art"),
            "--ws-base-url", ex.ws_url, "--rest-base-url", ex.rest_url, *extra]


def test_sigterm_mid_run_finalises_every_received_trade(tmp_path):
    port = free_port()
    env = {**os.environ, "PARQUET_ROTATE_SEC": "60"}   # nothing rotates before the signal
    with MiniExchange(["BTCUSDT", "ETHUSDT"], seed=5) as ex:
        proc = subprocess.Popen(capture_cmd(tmp_path, ex, "--run-seconds", "120",
                                            "--prometheus-port", str(port)),
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            body = ""
            deadline = time.time() + 30
            while time.time() < deadline:   # the metrics endpoint is live while it runs
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                  timeout=2).read().decode()
                    if re.search(r'messages_total\{endpoint="market"\} [1-9]', body):
                        break
                except OSError:
                    pass
                time.sleep(0.3)
            assert "capture_up 1.0" in body
            time.sleep(1.5)
            out, err = terminate(proc)
        finally:
            reap(proc)
        assert proc.returncode == 0, err
        truth = {s: ex.ground_truth_ids(s) for s in ("BTCUSDT", "ETHUSDT")}
    data = tmp_path / "data"
    cp = ckpt.load(ckpt.path_in(tmp_path / "art"))
    for sym in ("BTCUSDT", "ETHUSDT"):
        trades = read(data, "agg_trade", sym)
        assert_trades_complete(trades, truth[sym])
        n = int(re.search(rf"{sym}: trades=(\d+)", out).group(1))
        assert n == len(trades) > 0            # every trade the process took is in a file
        assert cp.symbols[sym].last_trade_id == trades["agg_trade_id"].max()
        assert len(read(data, "book", sym)) > 0
    ops = read(data, "ops", "BTCUSDT")
    assert "shutdown" in set(ops["event_type"])
    no_temp_files(data)


def test_precheck_only_gates_what_it_captured(tmp_path):
    """--precheck-only runs the precheck flow (ofi_cvd_harvest/precheck.py): a 3 s capture covers
    no whole minute, so the gate quarantines it, nothing reaches ofi_cvd/, exit status 1."""
    cfg = tmp_path / "system.yaml"
    cfg.write_text("data_harvest:\n  data_quality:\n    precheck_minutes: 0.05\n")
    with MiniExchange(["BTCUSDT"], seed=6) as ex:
        cmd = capture_cmd(tmp_path, ex, "--precheck-only", "--config", str(cfg),
                          "--prometheus-port", "0")
        cmd[cmd.index("BTCUSDT,ETHUSDT")] = "BTCUSDT"
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "QUARANTINED" in proc.stdout and "empty_bucket_rate" in proc.stdout
    assert "PRECHECK: FAIL" in proc.stdout
    assert not list((tmp_path / "data" / "ofi_cvd").rglob("*.parquet"))
    assert list((tmp_path / "data" / "quarantine").glob("date=*/symbol=BTCUSDT/dq.json"))
    assert list((tmp_path / "art" / "dq_reports").glob("dq_*.json"))


def test_bad_cli_value_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols",
                           "btc/usd", "--run-seconds", "1", "--data-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SYMBOLS" in lines[0]


def test_kill_9_loses_no_trade_and_at_most_a_second_of_book(tmp_path):
    env = {**os.environ, "PARQUET_ROTATE_SEC": "60"}   # nothing is finalised before the kill
    with MiniExchange(["BTCUSDT", "ETHUSDT"], seed=8) as ex:
        cmd = capture_cmd(tmp_path, ex, "--run-seconds", "120", "--prometheus-port", "0")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(4.0)
            killed_at_ms = int(time.time() * 1000)
            proc.kill()                      # SIGKILL: no flush, no finalisation
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        segs = list((tmp_path / "data" / "raw" / "_segments").glob("*.arrows"))
        assert segs, "the killed process left its crash-safe segments"
        assert not list((tmp_path / "data").glob("raw/date=*/*/*/*.parquet"))  # none final yet
        time.sleep(0.5)
        proc = subprocess.run(capture_cmd(tmp_path, ex, "--run-seconds", "2.5",
                                          "--prometheus-port", "0"),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        truth = {s: ex.ground_truth_ids(s) for s in ("BTCUSDT", "ETHUSDT")}
    data = tmp_path / "data"
    assert not list((data / "raw" / "_segments").glob("*.arrows"))
    for sym in ("BTCUSDT", "ETHUSDT"):
        trades = read(data, "agg_trade", sym)
        lo, hi = assert_trades_complete(trades, truth[sym])   # no loss, no duplicates
        assert trades.filter(trades["recv_ts_ms"] < killed_at_ms).height > 20
        book = read(data, "book", sym)
        before_kill = book.filter(book["recv_ts_ms"] < killed_at_ms)
        assert killed_at_ms - before_kill["recv_ts_ms"].max() <= 1500   # <= ~1 s of book lost
    ops = read(data, "ops", "BTCUSDT")
    assert "segments_recovered" in set(ops["event_type"])
    no_temp_files(data)
