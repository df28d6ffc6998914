"""A corrupt checkpoint (issue 12 "Files"): set aside, the resume point rebuilt from the raw
files, and the downtime still healed — 0 missing against the simulator's ground truth."""

from __future__ import annotations

import time

import orjson
import polars as pl
import pyarrow.parquet as pq

from ofi_cvd_harvest.capture import checkpoint as ckpt
from ofi_cvd_harvest.capture import resume
from ofi_cvd_harvest.capture.runner import run_capture_sync
from ofi_cvd_harvest.storage.fs import Storage

from ..orchestration.rawfixtures import write_raw
from .rawcheck import assert_trades_complete, capture_settings, read, truth_ids

SYMS = ("BTCUSDT", "ETHUSDT")
GARBAGE = b'{"version": 1, "symbols": {"BTCUSDT": {"last_trade_id": "12\x00'


def test_corrupt_checkpoint_is_kept_aside_and_the_downtime_healed(simulator_factory, tmp_path):
    sim = simulator_factory(SYMS, seed=31)
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url)
    run_capture_sync(s, run_seconds=3)
    first = {sym: read(s.data_dir, "agg_trade", sym) for sym in SYMS}
    path = ckpt.path_in(s.artifacts_dir)
    path.write_bytes(GARBAGE)
    time.sleep(1.5)                       # downtime: trades nobody receives
    summary = run_capture_sync(s, run_seconds=3)
    for sym in SYMS:
        trades = read(s.data_dir, "agg_trade", sym)
        assert_trades_complete(trades, truth_ids(sim, sym))
        assert trades["agg_trade_id"].min() == first[sym]["agg_trade_id"].min()   # no hole
        healed = trades.filter(pl.col("source") == "rest")["agg_trade_id"]
        assert len(healed) > 0 and healed.min() == first[sym]["agg_trade_id"].max() + 1
        assert summary.symbols[sym].trades_healed > 0
    kept = list(path.parent.glob("checkpoint.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == GARBAGE       # not overwritten
    assert ckpt.load(path) is not None                                # a fresh, valid one
    ops = read(s.data_dir, "ops", "BTCUSDT")
    rebuilt = ops.filter(pl.col("event_type") == "checkpoint_rebuilt")["meta_json"]
    assert len(rebuilt) == 1
    meta = orjson.loads(rebuilt[0])
    assert meta["last_trade_ids"]["BTCUSDT"] == first["BTCUSDT"]["agg_trade_id"].max()
    log = "".join(p.read_text() for p in (s.artifacts_dir / "run_logs").glob("harvest_*.log"))
    assert "resuming from the raw files" in log


def test_resume_point_from_raw_has_last_id_time_holes_and_book(tmp_path):
    date = "2026-01-02"
    write_raw(tmp_path, date, "BTCUSDT", minutes=5)
    storage = Storage(tmp_path)
    files = storage.list_files(f"raw/date={date}/symbol=BTCUSDT/stream=agg_trade")
    mid = files[2]
    t = pq.read_table(mid)
    ids = t.column("agg_trade_id").to_pylist()
    hole = ids[10:15]
    keep = [i not in set(hole) for i in ids]
    pq.write_table(t.filter(keep), mid)
    (tmp_path / "raw" / f"date={date}" / "symbol=BTCUSDT" / "stream=agg_trade" / "junk.parquet"
     ).write_bytes(b"")                                   # a damaged file is skipped
    cp = resume.from_raw(storage, ["BTCUSDT", "ETHUSDT"])
    assert set(cp.symbols) == {"BTCUSDT"}                 # nothing captured for ETHUSDT
    c = cp.symbols["BTCUSDT"]
    trades = pl.concat([pl.read_parquet(f) for f in files])
    assert c.last_trade_id == trades["agg_trade_id"].max()
    assert c.last_event_ts_ms == trades.filter(
        pl.col("agg_trade_id") == c.last_trade_id)["event_ts_ms"][0]
    assert c.open_gaps == [[hole[0], hole[-1]]]
    book = pl.concat([pl.read_parquet(f) for f in
                      storage.list_files(f"raw/date={date}/symbol=BTCUSDT/stream=book")])
    assert c.last_book_update_id == book["final_update_id"].max()


def test_set_aside_keeps_the_bytes(tmp_path):
    p = tmp_path / "checkpoint.json"
    p.write_bytes(GARBAGE)
    kept = resume.set_aside(p)
    assert not p.exists() and kept.read_bytes() == GARBAGE and ".corrupt-" in kept.name
