"""Connection life: roll-over without loss, stall detection, clock drift, metrics."""

from __future__ import annotations

import threading
import time

import orjson
import polars as pl

from ofi_cvd_harvest.capture.runner import run_capture_sync

from ..metricvalue import metric
from .miniexchange import MiniExchange
from .rawcheck import assert_book_chain, assert_trades_complete, capture_settings, read


def test_rollover_opens_new_connection_first_and_loses_nothing(tmp_path):
    with MiniExchange(["BTCUSDT", "ETHUSDT"], seed=11) as ex:
        s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, rollover_sec=1.2)
        before = metric("ws_reconnects_total", endpoint="market")
        summary = run_capture_sync(s, run_seconds=4)
        truth = {sym: ex.ground_truth_ids(sym) for sym in ("BTCUSDT", "ETHUSDT")}
    assert summary.reconnects == 0
    assert metric("ws_reconnects_total", endpoint="market") == before
    for sym in ("BTCUSDT", "ETHUSDT"):
        trades = read(s.data_dir, "agg_trade", sym)
        assert_trades_complete(trades, truth[sym])
        assert trades["conn_id"].n_unique() >= 2           # several connections carried data
        assert set(trades["source"]) == {"ws"}             # the overlap needed no healing
        book = read(s.data_dir, "book", sym)
        assert assert_book_chain(book) == 1                # the chain survives roll-overs
    ops = read(s.data_dir, "ops", "BTCUSDT")
    assert (ops["event_type"] == "rollover").sum() >= 4    # >= 2 per endpoint
    closes = [orjson.loads(m) for m in ops.filter(pl.col("event_type") == "disconnect")["meta_json"]]
    assert all(c["deliberate"] for c in closes)


def test_stall_is_detected_and_reconnected(tmp_path):
    with MiniExchange(["BTCUSDT"], seed=12) as ex:
        s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, symbols=("BTCUSDT",),
                             heartbeat_timeout=0.8)

        def stall():
            time.sleep(1.0)
            ex.stalled = True
            time.sleep(1.5)
            ex.stalled = False

        threading.Thread(target=stall, daemon=True).start()
        summary = run_capture_sync(s, run_seconds=4.5)
        truth = ex.ground_truth_ids("BTCUSDT")
    assert summary.reconnects >= 1
    ops = read(s.data_dir, "ops", "BTCUSDT")
    reasons = [orjson.loads(m)["reason"] for m in
               ops.filter(pl.col("event_type") == "disconnect")["meta_json"]]
    assert "stall" in reasons
    trades = read(s.data_dir, "agg_trade", "BTCUSDT")
    assert_trades_complete(trades, truth)   # trades sent during the stall came back via REST


def test_clock_drift_is_an_ops_event_and_a_metric(tmp_path):
    with MiniExchange(["BTCUSDT"], seed=13) as ex:
        ex.clock_offset_ms = 1500      # exchange 1.5 s ahead of us
        s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, symbols=("BTCUSDT",),
                             clock_check_interval_sec=1.0)
        run_capture_sync(s, run_seconds=2.5)
    assert -1700 < metric("clock_drift_ms") < -1300
    ops = read(s.data_dir, "ops", "BTCUSDT")
    drift = ops.filter(pl.col("event_type") == "clock_drift")
    assert len(drift) >= 2                               # at start and periodically
    assert -1700 < orjson.loads(drift["meta_json"][0])["drift_ms"] < -1300


def test_metrics_track_the_run(tmp_path):
    with MiniExchange(["BTCUSDT"], seed=14) as ex:
        s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, symbols=("BTCUSDT",))
        rows0 = metric("data_rows_total", symbol="BTCUSDT", table="agg_trade")
        files0 = metric("files_finalised_total", table="agg_trade")
        lat0 = metric("latency_ms_count", symbol="BTCUSDT")
        summary = run_capture_sync(s, run_seconds=2.5)
    n = summary.symbols["BTCUSDT"].trades_written
    assert metric("data_rows_total", symbol="BTCUSDT", table="agg_trade") - rows0 == n
    assert metric("files_finalised_total", table="agg_trade") - files0 >= 1
    assert metric("latency_ms_count", symbol="BTCUSDT") - lat0 >= n * 0.5
    assert metric("capture_up") == 0
    assert metric("recv_rate_tps", symbol="BTCUSDT") > 0


def test_symbol_the_exchange_does_not_list_is_reported(tmp_path):
    with MiniExchange(["BTCUSDT"], seed=15) as ex:
        ex.market.exchange_info = lambda: {"symbols": [{"symbol": "BTCUSDT", "status": "TRADING"}]}
        s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, symbols=("BTCUSDT", "BTCUSTD"))
        summary = run_capture_sync(s, run_seconds=2)
    assert summary.symbols["BTCUSTD"].trades_written == 0
    ops = read(s.data_dir, "ops", "BTCUSTD")
    assert "symbol_unavailable" in set(ops["event_type"])
    assert "symbol_unavailable" not in set(read(s.data_dir, "ops", "BTCUSDT")["event_type"])
