"""Shared segment files in a real capture (issue 15): a ``kill -9`` leaves one segment file per
stream (not one per symbol) and the restart writes every row of them exactly once; a partition
whose write keeps failing keeps the shared file alive while the other symbols' rows in it are
already durable, and the restart recovers that partition without duplicating the others."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
from collections import Counter

import polars as pl

from ofi_cvd_harvest.capture.runner import run_capture_sync
from ofi_cvd_harvest.capture.segments import by_symbol, read_segment

from .miniexchange import MiniExchange
from .rawcheck import assert_trades_complete, capture_settings, no_temp_files, read
from .test_cli import ROOT, capture_cmd

MANY = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT",
        "LINKUSDT", "AVAXUSDT", "LTCUSDT", "DOTUSDT", "TRXUSDT"]
KEYS = {"agg_trade": ["agg_trade_id"], "book": ["final_update_id", "recv_ts_ms"],
        "ops": ["recv_ts_ms", "event_type", "meta_json"]}
NAME = re.compile(r".+-g(\d+)n\d+-([a-z_]+)-(\d{4}-\d{2}-\d{2})\.arrows")


def segment_rows(seg_dir) -> dict[tuple[str, str], pl.DataFrame]:
    """Every complete row of the segment files, by (stream, partition symbol)."""
    out: dict[tuple[str, str], list] = {}
    for p in sorted(seg_dir.glob("*.arrows")):
        stream = NAME.fullmatch(p.name).group(2)
        table = read_segment(p)
        for sym, t in by_symbol(table) if table is not None else ():
            out.setdefault((stream, sym), []).append(pl.from_arrow(t))
    return {k: pl.concat(v) for k, v in out.items()}


def assert_once(final: pl.DataFrame, seg: pl.DataFrame, stream: str) -> None:
    """Each segment row is in the final files exactly once."""
    keys = KEYS[stream]
    counts = final.group_by(keys).len()
    hits = seg.select(keys).join(counts, on=keys, how="left")
    assert hits["len"].null_count() == 0, f"{stream}: segment rows missing from final files"
    assert (hits["len"] == 1).all(), f"{stream}: segment rows written more than once"


def test_kill_9_leaves_one_segment_file_per_stream_and_recovers_every_row_once(tmp_path):
    env = {**os.environ, "PARQUET_ROTATE_SEC": "60", "PYTHONPATH": str(ROOT)}
    seg_dir = tmp_path / "data" / "raw" / "_segments"
    with MiniExchange(MANY, seed=15) as ex:
        cmd = capture_cmd(tmp_path, ex, "--run-seconds", "120", "--prometheus-port", "0")
        cmd[cmd.index("BTCUSDT,ETHUSDT")] = ",".join(MANY)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(5.0)
            proc.kill()                      # SIGKILL: no flush, no finalisation
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        names = [NAME.fullmatch(p.name) for p in seg_dir.glob("*.arrows")]
        assert names and all(names), [p.name for p in seg_dir.glob("*")]
        # one file per (generation, stream, date) for all 12 symbols, not one per symbol
        per_key = Counter((m.group(1), m.group(2), m.group(3)) for m in names)
        assert set(per_key.values()) == {1}, per_key
        assert {k[1] for k in per_key} == {"agg_trade", "book", "ops"}
        seg = segment_rows(seg_dir)
        assert {sym for _, sym in seg} == set(MANY)
        proc = subprocess.run([*cmd[:cmd.index("--run-seconds")], "--run-seconds", "2.5",
                               "--prometheus-port", "0"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
        assert proc.returncode == 0, proc.stderr[-2000:]
        truth = {s: ex.ground_truth_ids(s) for s in MANY}
    data = tmp_path / "data"
    assert not list(seg_dir.glob("*.arrows"))
    for (stream, sym), rows in seg.items():
        assert_once(read(data, stream, sym), rows, stream)
    for sym in MANY:
        assert_trades_complete(read(data, "agg_trade", sym), truth[sym])
        book = read(data, "book", sym)
        assert book.select(KEYS["book"]).is_unique().all()
    no_temp_files(data)


def test_a_failing_partition_keeps_the_shared_file_and_its_restart_duplicates_nothing(tmp_path):
    syms = ("BTCUSDT", "ETHUSDT")
    with MiniExchange(list(syms), seed=16) as ex:
        s = capture_settings(tmp_path, ex.ws_url, ex.rest_url, parquet_rotate_sec=1.0,
                             write_retries=1)
        seg_dir = s.data_dir / "raw" / "_segments"
        # a real failure for ETHUSDT's book partition only: a file where its directory must go
        today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        blocker = s.data_dir / "raw" / f"date={today}" / "symbol=ETHUSDT" / "stream=book"
        blocker.parent.mkdir(parents=True)
        blocker.write_text("not a directory")
        run_capture_sync(s, run_seconds=4)
        segs = sorted(seg_dir.glob("*.arrows"))
        # every other partition is durable and its files released; the book files stay, since
        # they hold ETHUSDT's unwritten rows — and BTCUSDT's, already in its final files
        assert segs and {NAME.fullmatch(p.name).group(2) for p in segs} == {"book"}, segs
        assert len(segs) >= 2        # one per rotation generation, all kept
        for p in segs:
            assert {sym for sym, _ in by_symbol(read_segment(p))} == set(syms), p.name
        held = segment_rows(seg_dir)
        btc_before = read(s.data_dir, "book", "BTCUSDT")
        assert_once(btc_before, held[("book", "BTCUSDT")], "book")
        assert len(read(s.data_dir, "book", "ETHUSDT")) == 0
        assert len(read(s.data_dir, "ops", "ETHUSDT")) > 0     # its other partitions were written
        # the disk is fixed; the restart writes ETHUSDT's rows, and BTCUSDT's not a second time
        blocker.unlink()
        run_capture_sync(s, run_seconds=2.5)
        truth = {sym: ex.ground_truth_ids(sym) for sym in syms}
    assert not list(seg_dir.glob("*.arrows"))
    eth = read(s.data_dir, "book", "ETHUSDT")
    assert_once(eth, held[("book", "ETHUSDT")], "book")
    btc = read(s.data_dir, "book", "BTCUSDT")
    assert_once(btc, held[("book", "BTCUSDT")], "book")
    for book in (eth, btc):
        assert book.select(KEYS["book"]).is_unique().all()
    # ETHUSDT's book rows of the first run: from its first second to its end, no hole
    first_run = eth.filter(pl.col("recv_ts_ms") <= btc_before["recv_ts_ms"].max())
    recv = first_run["recv_ts_ms"].sort()
    assert recv[0] - btc_before["recv_ts_ms"].min() < 1500
    assert recv.diff().drop_nulls().max() < 1500
    for sym in syms:
        assert_trades_complete(read(s.data_dir, "agg_trade", sym), truth[sym])
    no_temp_files(s.data_dir)
