"""Issue 6: the harvester's reaction to the simulator faults not covered elsewhere —
latency spikes, stalls and the (scaled) 24 h connection cut. Each must lose no trade."""

from __future__ import annotations

import polars as pl

from ofi_cvd_harvest.capture.runner import run_capture_sync
from ofi_cvd_harvest.monitoring import metrics

from .rawcheck import assert_book_chain, assert_trades_complete, capture_settings, read, truth_ids

SYMS = ("BTCUSDT", "ETHUSDT")


def _late_count(threshold_ms: float) -> float:
    """Observations of latency_ms above ``threshold_ms`` so far (all symbols)."""
    total = 0.0
    for fam in metrics.REGISTRY.collect():
        if fam.name != "latency_ms":
            continue
        by_sym: dict[str, tuple[float, float]] = {}
        for smp in fam.samples:
            sym = smp.labels.get("symbol", "")
            if smp.name == "latency_ms_count":
                by_sym.setdefault(sym, [0.0, 0.0])[0] = smp.value
            elif smp.name == "latency_ms_bucket" and float(smp.labels["le"]) == threshold_ms:
                by_sym.setdefault(sym, [0.0, 0.0])[1] = smp.value
        total += sum(count - under for count, under in by_sym.values())
    return total


def test_latency_spikes_show_in_rows_and_metric_and_lose_nothing(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=31, faults="latency=0.01,latency_ms=400")
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url)
    before = _late_count(300)
    run_capture_sync(s, run_seconds=4)
    assert _late_count(300) > before                      # the histogram saw the spikes
    for sym in SYMS:
        trades = read(s.data_dir, "agg_trade", sym)
        assert_trades_complete(trades, truth_ids(sim, sym))
        ws = trades.filter(pl.col("source") == "ws")
        late = ws.filter(pl.col("recv_ts_ms") - pl.col("event_ts_ms") >= 300)
        assert late.height > 0                              # recorded as measured, not hidden
        assert assert_book_chain(read(s.data_dir, "book", sym)) >= 1


def test_stalls_are_survived_without_loss(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=32, faults="stall=0.004,stall_s=1.5")
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url, heartbeat_timeout=1.0)
    run_capture_sync(s, run_seconds=5)
    assert sim.stats.get("fault_stall", 0) >= 1
    for sym in SYMS:
        assert_trades_complete(read(s.data_dir, "agg_trade", sym), truth_ids(sim, sym))


def test_connection_cut_at_max_age_reconnects_and_loses_nothing(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=33, faults="cut=1.5")
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url)
    summary = run_capture_sync(s, run_seconds=4.5)
    assert summary.reconnects >= 2
    for sym in SYMS:
        assert_trades_complete(read(s.data_dir, "agg_trade", sym), truth_ids(sim, sym))
        book = read(s.data_dir, "book", sym)
        assert assert_book_chain(book) >= 2                 # each new connection starts a gap row
    kinds = set(read(s.data_dir, "ops")["event_type"])
    assert {"connect", "disconnect"} <= kinds or "reconnect" in kinds
