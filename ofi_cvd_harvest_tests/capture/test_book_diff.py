"""DiffBook (BOOK_SOURCE=diff) on the real recordings, with injected snapshot fetchers.

The end-to-end version (capture against the simulator replaying a recording over loopback)
is in ``test_book_diff_e2e.py``; here the handler is driven message by message so every
row, gap and resync can be checked against an independent reconstruction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pytest

from ofi_cvd_harvest_tests.metricvalue import metric
from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture.book_diff import DiffBook
from ofi_cvd_harvest.protocol import decode
from ofi_cvd_harvest.protocol.localbook import LocalBook
from ofi_cvd_harvest.protocol.records import DepthSnapshot, DepthUpdate
from ofi_cvd_harvest.sim import bookcheck, recordings

REAL = REALDATA
HFT = REAL / "hftbacktest_usdm"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="realdata/ not available")


@pytest.fixture(scope="module")
def btc():
    recs = recordings.load(str(HFT / "btcusdt_2024071*.gz"))
    depth = [decode.depth_update(r.data) for r in recs if r.kind == recordings.KIND_DEPTH]
    snap = next(decode.depth_snapshot(r.data) for r in recs if r.kind == "snapshot")
    tickers = [decode.book_ticker(r.data) for r in recs if r.kind == recordings.KIND_TICKER]
    return depth, snap, tickers


def resync_count(sym: str) -> float:
    return metric("book_resyncs_total", symbol=sym)


class Feeder:
    """Drives a DiffBook like the runner's book consumer, with a reference LocalBook fed the
    complete stream in lockstep; the fetcher answers with the reference's current state."""

    def __init__(self, snap: DepthSnapshot, first_snapshot: DepthSnapshot | None = None,
                 **kw):
        self.ref = LocalBook("BTCUSDT", levels=10)
        self.ref.apply_snapshot(snap)
        self.first = first_snapshot
        self.calls = 0
        self.gaps: list[dict] = []
        self.events: list[tuple[str, str, dict]] = []
        self.db = DiffBook(levels=10, fetch_snapshot=self.fetch, retry_sec=0.0,
                           on_gap=lambda s, m: self.gaps.append(m),
                           on_event=lambda e, s, m: self.events.append((e, s, m)), **kw)
        self.rows: list[dict] = []

    async def fetch(self, symbol: str, limit: int) -> DepthSnapshot:
        self.calls += 1
        if self.calls == 1 and self.first is not None:
            return self.first
        await asyncio.sleep(0)
        return self.ref.snapshot(limit)

    async def feed(self, recs: list[DepthUpdate], skip: int | None = None, conn_id: int = 1):
        for i, rec in enumerate(recs):
            self.ref.feed(rec)
            if i == skip:
                continue
            self.rows.extend(await self.db.on_depth(rec, 1000 + i, conn_id))
            await asyncio.sleep(0)          # let a snapshot task run, like a live loop


def assert_rows_valid(rows: list[dict]) -> None:
    t = pa.Table.from_pylist(rows, schema=schemas.BOOK)     # exact columns and types
    assert t.schema.names == schemas.BOOK.names
    for r in rows:
        assert len(r["bid_px"]) == 10 and len(r["ask_qty"]) == 10
        assert r["bid_px"][0] < r["ask_px"][0]              # never crossed
        assert r["bid_px"] == sorted(r["bid_px"], reverse=True)


def test_syncs_from_recorded_snapshot_and_matches_bookticker(btc):
    depth, snap, tickers = btc
    f = Feeder(snap, first_snapshot=snap)
    asyncio.run(f.feed(depth))
    rows = f.rows
    assert f.calls == 1 and f.gaps == [] and f.db.resyncs == {}
    assert_rows_valid(rows)
    assert rows[0]["gap"] and sum(r["gap"] for r in rows) == 1
    # rows of events buffered before the snapshot keep their own receive time
    assert rows[0]["recv_ts_ms"] < rows[1]["recv_ts_ms"]
    assert all(b["prev_final_update_id"] == a["final_update_id"]
               for a, b in zip(rows, rows[1:]))                        # one unbroken chain
    chk = bookcheck.SymbolCheck("BTCUSDT")
    tops = [_Top(r) for r in rows]
    bookcheck.compare(tops, tickers, chk)
    assert chk.compared > 8500 and chk.matched == chk.compared, chk.first_mismatch


class _Top:
    """A book row seen through the BookTop fields bookcheck.compare reads."""

    def __init__(self, row: dict):
        self.rec = DepthUpdate(row["event_ts_ms"], row["transact_ts_ms"], row["symbol"],
                               row["first_update_id"], row["final_update_id"],
                               row["prev_final_update_id"], [], [])
        self.bid_px, self.bid_qty = row["bid_px"], row["bid_qty"]
        self.ask_px, self.ask_qty = row["ask_px"], row["ask_qty"]


def test_removed_message_one_gap_one_resync_then_correct(btc):
    depth, snap, tickers = btc
    before = resync_count("BTCUSDT")
    f = Feeder(snap, first_snapshot=snap)
    victim = 1800
    asyncio.run(f.feed(depth, skip=victim))
    assert len(f.gaps) == 1 and f.gaps[0]["kind"] == "pu_break"
    assert f.gaps[0]["expected_pu"] == depth[victim - 1].final_update_id
    assert f.db.gaps == {"BTCUSDT": 1} and f.db.resyncs == {"BTCUSDT": 1}
    assert resync_count("BTCUSDT") - before == 1
    assert [e for e, _, _ in f.events] == ["book_resync"]
    assert f.calls == 2
    rows = f.rows
    assert_rows_valid(rows)
    gap_rows = [r for r in rows if r["gap"]]
    assert len(gap_rows) == 2                         # the initial sync and the resync
    assert gap_rows[1]["final_update_id"] > depth[victim].final_update_id
    # every written row equals the independent full reconstruction
    ref = {r.rec.final_update_id: r for r in
           bookcheck.check_recording(recordings.load(str(HFT / "btcusdt_2024071*.gz")))[
               "BTCUSDT"].rows}
    for r in rows:
        want = ref[r["final_update_id"]]
        assert (r["bid_px"], r["bid_qty"], r["ask_px"], r["ask_qty"]) == (
            want.bid_px, want.bid_qty, want.ask_px, want.ask_qty)
    after = [_Top(r) for r in rows if r["final_update_id"] >= gap_rows[1]["final_update_id"]]
    chk = bookcheck.compare(after, tickers, bookcheck.SymbolCheck("BTCUSDT"))
    assert chk.compared > 5000 and chk.matched == chk.compared


def test_reconnect_marks_gap_and_keeps_a_continuous_book(btc):
    depth, snap, _ = btc
    f = Feeder(snap, first_snapshot=snap)

    async def run():
        await f.feed(depth[:300])
        f.db.on_connect("BTCUSDT", 2)               # reconnect, nothing missed
        await f.feed(depth[300:400], conn_id=2)
        f.db.on_connect("BTCUSDT", 3)               # reconnect, 20 events missed
        for rec in depth[400:420]:
            f.ref.feed(rec)
        await f.feed(depth[420:600], conn_id=3)
    asyncio.run(run())
    by_u = {r["final_update_id"]: r for r in f.rows}
    assert by_u[depth[300].final_update_id]["gap"] and f.calls == 2
    assert by_u[depth[300].final_update_id]["conn_id"] == 2
    assert f.gaps == []                              # a reconnect explains the break
    assert [m["reason"] for e, _, m in f.events if e == "book_resync"] == ["reconnect"]
    gaps = [r for r in f.rows if r["gap"]]
    assert len(gaps) == 3 and gaps[2]["conn_id"] == 3


def test_snapshot_errors_are_retried(btc):
    depth, snap, _ = btc
    fails = {"n": 2}

    async def fetch(symbol, limit):
        if fails["n"]:
            fails["n"] -= 1
            raise OSError("connection refused")
        return snap
    events = []
    db = DiffBook(levels=10, fetch_snapshot=fetch, retry_sec=0.0,
                  on_event=lambda e, s, m: events.append(e))

    async def run():
        rows = []
        for i, rec in enumerate(depth[:200]):
            rows += await db.on_depth(rec, i, 1)
            await asyncio.sleep(0)
        return rows
    rows = asyncio.run(run())
    assert events == ["book_snapshot_error", "book_snapshot_error"]
    assert rows and rows[0]["gap"] and db.snapshots == {"BTCUSDT": 1}


def test_crossed_book_is_reported_and_never_written():
    bids = [(100.0 - i, 1.0) for i in range(20)]
    asks = [(101.0 + i, 1.0) for i in range(20)]
    calls = []

    async def fetch(symbol, limit):
        calls.append(1)
        return DepthSnapshot(10, 0, 0, bids, asks)
    gaps = []
    db = DiffBook(levels=10, fetch_snapshot=fetch, on_gap=lambda s, m: gaps.append(m))

    async def run():
        out = await db.on_depth(DepthUpdate(1, 1, "XUSDT", 5, 12, 4, [], []), 1, 1)
        await db.flush()
        out += await db.on_depth(DepthUpdate(1, 1, "XUSDT", 13, 14, 12, [], []), 2, 1)
        out += await db.on_depth(DepthUpdate(1, 1, "XUSDT", 15, 16, 14,
                                             [(101.0, 3.0)], []), 3, 1)    # locks the book
        return out
    rows = asyncio.run(run())
    assert [r["final_update_id"] for r in rows] == [12, 14]
    assert [g["kind"] for g in gaps] == ["crossed"] and db.crossed == {"XUSDT": 1}
    assert db.books["XUSDT"].needs_snapshot


def test_stream_name_and_runner_construction():
    class Rest:
        async def depth(self, symbol, limit=1000):
            raise AssertionError
    from ofi_cvd_harvest.settings import Settings
    db = DiffBook(Settings(book_levels=5), Rest())
    assert db.stream_name("BTCUSDT") == "btcusdt@depth@100ms" and db.levels == 5
