"""Replaying this project's own raw partitions (agg_trade + book).

The partitions are built from the real BTCUSDT recording (trades as captured ``ws`` rows plus
one duplicate and one healed ``rest`` row; book rows = the top 10 of the independent
reconstruction, with a stretch removed so the chain breaks once and the next row has
``gap``), written with the project's schemas into ``raw/date=…/symbol=…/stream=…``. The
replay must serve every unique trade once, the recorded book rows exactly as partial depth,
and a diff stream from which a diff-depth client rebuilds exactly the recorded rows.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.protocol import decode
from ofi_cvd_harvest.protocol.localbook import BookTop, LocalBook
from ofi_cvd_harvest.sim import bookcheck, recordings
from ofi_cvd_harvest.sim.replay import open_replay
from ofi_cvd_harvest.storage.layout import raw_file, utc_date

pytestmark = pytest.mark.skipif(not HFT.is_dir(), reason="realdata/ not available")
CUT = (4000, 4030)          # book rows removed: the chain breaks once, at row 4030


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    recs = recordings.load(str(HFT / "btcusdt_2024071*.gz"))
    root = tmp_path_factory.mktemp("data")
    trades = []
    for r in recs:
        if r.kind == recordings.KIND_TRADE:
            d = r.data
            trades.append({"recv_ts_ms": int(r.recv_ms), "event_ts_ms": d["E"],
                           "trade_ts_ms": d["T"], "symbol": "BTCUSDT", "agg_trade_id": d["a"],
                           "price": float(d["p"]), "qty": float(d["q"]),
                           "first_trade_id": d["f"], "last_trade_id": d["l"],
                           "is_buyer_maker": d["m"], "source": "ws", "conn_id": 1})
    trades.append(dict(trades[50]))                                  # a duplicate row
    healed = trades.pop(70)                                          # healed later by REST
    trades.append(dict(healed, source="rest", recv_ts_ms=healed["recv_ts_ms"] + 5000))
    rows = []
    tops = [r for r in bookcheck.check_recording(recs)["BTCUSDT"].rows]
    for i, t in enumerate(tops):
        if CUT[0] <= i < CUT[1]:
            continue
        rec = t.rec
        rows.append({"recv_ts_ms": rec.event_ts_ms - 1400, "event_ts_ms": rec.event_ts_ms,
                     "transact_ts_ms": rec.transact_ts_ms, "symbol": "BTCUSDT",
                     "first_update_id": rec.first_update_id,
                     "final_update_id": rec.final_update_id,
                     "prev_final_update_id": rec.prev_final_update_id,
                     "bid_px": t.bid_px, "bid_qty": t.bid_qty, "ask_px": t.ask_px,
                     "ask_qty": t.ask_qty, "gap": i in (0, CUT[1]), "conn_id": 1})
    for stream, data, schema, ts in (("agg_trade", trades, schemas.AGG_TRADE, "event_ts_ms"),
                                     ("book", rows, schemas.BOOK, "event_ts_ms")):
        by_date: dict[str, list] = {}
        for row in data:
            by_date.setdefault(utc_date(row[ts]), []).append(row)
        for date, part in by_date.items():
            for k in range(0, len(part), 4000):                       # several files a day
                chunk = part[k:k + 4000]
                f = root / raw_file(date, "BTCUSDT", stream, chunk[0]["recv_ts_ms"], k)
                f.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist(chunk, schema=schema), f)
    return root, trades, rows


def _drain(src, streams):
    now = src.first_ms
    while not src.finished:
        now += 500
        yield src.poll(now, streams)


def test_raw_partitions_replay_trades_and_partial_rows_exactly(raw_dir):
    root, trades, rows = raw_dir
    assert sorted(p.name for p in (root / "raw").iterdir()) == ["date=2024-07-18",
                                                                "date=2024-07-19"]
    src = open_replay(root, speed=1, autostart=True, start_delay_s=0)
    assert src.symbols == ("BTCUSDT",)
    got_trades, got_rows = [], []
    for msgs in _drain(src, {"btcusdt@aggTrade", "btcusdt@depth10@100ms"}):
        for m in msgs:
            if m.stream.endswith("aggTrade"):
                t = decode.agg_trade(m.data)
                got_trades.append((t.agg_trade_id, t.price, t.qty, t.is_buyer_maker))
            else:
                got_rows.append(decode.depth_update(m.data))
    want = sorted({(t["agg_trade_id"], t["price"], t["qty"], t["is_buyer_maker"])
                   for t in trades})
    assert sorted(got_trades) == want and len(got_trades) == len(want) == 10_701
    assert [r.final_update_id for r in got_rows] == [r["final_update_id"] for r in rows]
    for g, w in zip(got_rows, rows):
        assert [p for p, _ in g.bids] == w["bid_px"] and [q for _, q in g.asks] == w["ask_qty"]
        assert g.prev_final_update_id == w["prev_final_update_id"]
    assert src.sync_problems and {p.kind for p in src.sync_problems} == {"pu_break"}


def test_raw_partitions_diff_client_rebuilds_the_recorded_rows(raw_dir):
    root, _, rows = raw_dir
    src = open_replay(root, speed=1, autostart=True, start_delay_s=0)
    book = LocalBook("BTCUSDT", levels=10)
    got, problems = [], []
    for msgs in _drain(src, {"btcusdt@depth@100ms"}):
        for m in msgs:
            for o in book.feed(decode.depth_update(m.data)):
                (got if isinstance(o, BookTop) else problems).append(o)
        if book.needs_snapshot and (got or problems or book.buffered):
            for o in book.apply_snapshot(decode.depth_snapshot(src.depth_snapshot("BTCUSDT",
                                                                                   1000))):
                (got if isinstance(o, BookTop) else problems).append(o)
    assert [p.kind for p in problems] == ["pu_break"]                # the recorded break
    want = {r["final_update_id"]: r for r in rows}
    # rows exist from each (re)sync on: the client syncs at the snapshot's lastUpdateId, so
    # the events of the poll step before it are (correctly) not rows of its own
    assert len(got) > len(rows) - 40
    tail_u = got[-1000].rec.final_update_id
    after = [r["final_update_id"] for r in rows if r["final_update_id"] >= tail_u]
    assert [g.rec.final_update_id for g in got[-1000:]] == after
    for g in got:
        w = want[g.rec.final_update_id]
        assert (g.bid_px, g.bid_qty, g.ask_px, g.ask_qty) == (
            w["bid_px"], w["bid_qty"], w["ask_px"], w["ask_qty"])
