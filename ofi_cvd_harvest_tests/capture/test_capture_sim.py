"""Must-show (issue 2 / issue 6 item 2): real captures against the product simulator."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from ofi_cvd_harvest.capture import checkpoint as ckpt
from ofi_cvd_harvest.capture.runner import run_capture_sync

from .rawcheck import (assert_book_chain, assert_trades_complete, capture_settings, no_temp_files,
                       read, truth_ids)

SYMS = ("BTCUSDT", "ETHUSDT")


def test_short_capture_has_every_trade_exactly_once(simulator, tmp_path):
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url)
    summary = run_capture_sync(s, run_seconds=4)
    for sym in SYMS:
        trades = read(s.data_dir, "agg_trade", sym)   # read() asserts the exact schema
        assert len(trades) > 30
        assert_trades_complete(trades, truth_ids(simulator, sym))
        book = read(s.data_dir, "book", sym)
        assert len(book) >= 30
        assert assert_book_chain(book) == 1           # pu chain intact after the connect row
        assert summary.symbols[sym].book_gaps == 0
    no_temp_files(s.data_dir)
    assert summary.errors == 0
    assert not list((s.data_dir / "raw" / "_segments").glob("*"))


def test_bad_input_from_simulator_faults(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=21, faults="malformed=0.03,badvalue=0.05")
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url)
    summary = run_capture_sync(s, run_seconds=3.5)
    stats = sim.stats
    assert stats["fault_malformed"] > 0 and stats["fault_badvalue"] > 0
    de = summary.decode_errors
    # every faulty message the capture received is counted; only frames still in flight when
    # the capture closed its connections (a handful at most) may be missing from its counts
    sent = stats["fault_malformed"] + stats["fault_badvalue"]
    assert 0 < de.get("malformed_json", 0) <= stats["fault_malformed"]
    assert sent - 5 <= sum(de.values()) <= sent
    assert {"unknown_event", "bad_field", "bad_value"} <= set(de)
    ops = read(s.data_dir, "ops")
    assert (ops["event_type"] == "decode_error").sum() >= min(sum(de.values()), 100)
    for sym in SYMS:   # replaced trades are healed; nothing corrupt is written
        trades = read(s.data_dir, "agg_trade", sym)
        assert_trades_complete(trades, truth_ids(sim, sym))
        assert trades["price"].is_finite().all() and (trades["qty"] > 0).all()
        book = read(s.data_dir, "book", sym)
        assert_book_chain(book)
        for col in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
            v = book[col].explode()
            assert v.is_finite().all() and (v >= 0).all()
    no_temp_files(s.data_dir)


def test_dropped_duplicated_reordered_messages_heal_to_exact_set(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=22, faults="drop=0.03,duplicate=0.03,reorder=0.03")
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url)
    summary = run_capture_sync(s, run_seconds=3.5)
    for sym in SYMS:
        trades = read(s.data_dir, "agg_trade", sym)
        assert_trades_complete(trades, truth_ids(sim, sym))   # no loss, no duplicate
        assert summary.symbols[sym].duplicates > 0
        book = read(s.data_dir, "book", sym)
        gaps = assert_book_chain(book)
        assert gaps >= 2 and summary.symbols[sym].book_gaps == gaps - 1
    healed = read(s.data_dir, "agg_trade").filter(pl.col("source") == "rest")
    assert len(healed) > 0 and (healed["event_ts_ms"] == healed["trade_ts_ms"]).all()
    ops = read(s.data_dir, "ops")
    kinds = set(ops["event_type"])
    assert {"gap_detected", "gap_healed", "book_gap", "dedup_hits"} <= kinds
    assert "gap_unhealed" not in kinds


def test_disconnects_and_flaky_rest_still_lose_nothing(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=23, faults="disconnect=0.01,http429=0.1,http5xx=0.1")
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url)
    summary = run_capture_sync(s, run_seconds=4)
    assert summary.reconnects >= 1
    stats = sim.stats
    assert stats["fault_disconnect"] >= 1
    cp = ckpt.load(ckpt.path_in(s.artifacts_dir))
    if any(c.open_gaps for c in cp.symbols.values()):
        # REST was still failing at shutdown: the owed ids are in the checkpoint, and the
        # next start heals them (never silent, never lost)
        run_capture_sync(s, run_seconds=4)
    for sym in SYMS:
        assert_trades_complete(read(s.data_dir, "agg_trade", sym), truth_ids(sim, sym))
    ops = read(s.data_dir, "ops", "BTCUSDT")
    metas = [orjson.loads(m) for m in ops.filter(pl.col("event_type") == "gap_healed")["meta_json"]]
    assert metas and any(m["reason"] == "reconnect" for m in metas)


def test_diff_depth_mode_produces_the_same_rows(simulator, tmp_path):
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url, book_source="diff")
    summary = run_capture_sync(s, run_seconds=4)
    for sym in SYMS:
        book = read(s.data_dir, "book", sym)   # same schema as partial mode
        assert len(book) > 20 and summary.symbols[sym].book_rows == len(book)
        assert assert_book_chain(book) >= 1
        assert (book["bid_px"].list.first() < book["ask_px"].list.first()).all()
        assert book["bid_px"].list.len().max() == 10
        assert_trades_complete(read(s.data_dir, "agg_trade", sym), truth_ids(simulator, sym))


def test_partitions_split_at_utc_midnight_of_event_time(simulator_factory, tmp_path):
    midnight = 1_721_347_200_000            # 2024-07-19T00:00:00Z
    sim = simulator_factory(SYMS, seed=24, start_ms=midnight - 1500)
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url, parquet_rotate_sec=60.0)
    run_capture_sync(s, run_seconds=3)
    for sym in SYMS:
        for date, lo, hi in (("2024-07-18", midnight - 86_400_000, midnight),
                             ("2024-07-19", midnight, midnight + 86_400_000)):
            for stream, col in (("agg_trade", "event_ts_ms"), ("book", "event_ts_ms")):
                fs = list(s.data_dir.glob(f"raw/date={date}/symbol={sym}/stream={stream}/*.parquet"))
                assert fs, (date, sym, stream)
                df = pl.concat([pl.read_parquet(f) for f in fs])
                assert df[col].min() >= lo and df[col].max() < hi
        assert_trades_complete(read(s.data_dir, "agg_trade", sym), truth_ids(sim, sym))
    ops = read(s.data_dir, "ops", "BTCUSDT")
    assert "clock_drift" in set(ops["event_type"])   # the simulated clock is years behind


def test_more_streams_than_one_connection_takes(simulator_factory, tmp_path):
    syms = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")
    sim = simulator_factory(syms, seed=25)
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url, symbols=syms,
                         max_streams_per_connection=2)
    summary = run_capture_sync(s, run_seconds=3)
    ops = read(s.data_dir, "ops", "BTCUSDT")
    connects = ops.filter(pl.col("event_type") == "connect")
    assert len(connects) == 2                      # its trade and its book connection
    assert sim.stats["connections"] == 6           # 3 market + 3 public for 5 symbols
    for sym in syms:
        assert summary.symbols[sym].book_rows > 0
        trades = read(s.data_dir, "agg_trade", sym)
        if len(trades):
            assert_trades_complete(trades, truth_ids(sim, sym))
