"""Columnar buffers: exact schemas, partition by UTC date of E, flattened book levels."""

import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.capture.buffers import DateCache, RawBuffers
from ofi_cvd_harvest.protocol.records import AggTrade

MIDNIGHT = 1_721_347_200_000   # 2024-07-19


def book_row(E, u, nb, na, sym="BTCUSDT"):
    return {"recv_ts_ms": E + 5, "event_ts_ms": E, "transact_ts_ms": E - 1, "symbol": sym,
            "first_update_id": u - 3, "final_update_id": u, "prev_final_update_id": u - 4,
            "bid_px": [100.0 - i for i in range(nb)], "bid_qty": [1.0 + i for i in range(nb)],
            "ask_px": [101.0 + i for i in range(na)], "ask_qty": [2.0 + i for i in range(na)],
            "gap": u == 10, "conn_id": 3}


def test_date_cache():
    d = DateCache()
    assert d(MIDNIGHT - 1) == "2024-07-18" and d(MIDNIGHT) == "2024-07-19"
    assert d(MIDNIGHT - 1) == "2024-07-18"


def test_date_cache_never_raises_on_implausible_times():
    """The decoder rejects them (bad_time); should one get through, its row lands in today's
    partition, not in date=1969-12-31 or a ValueError that ends the capture."""
    import datetime as dt
    d = DateCache()
    for ts in (10**16, -1, 0, -(2**63), 2**63 - 1):
        today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        assert d(ts) in (today, dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"))
    b = RawBuffers()
    b.add_trade(MIDNIGHT, AggTrade(10**16, "BTCUSDT", 1, 1.5, 0.25, 1, 1, -1, True), "ws", 1)
    b.add_book_row(book_row(-1, 10, 1, 1))
    assert {x.date for x in b.drain()} <= {dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
                                           today}


def test_drain_exact_schemas_and_midnight_split():
    b = RawBuffers()
    for i, E in enumerate((MIDNIGHT - 10, MIDNIGHT + 10)):
        b.add_trade(E + 3, AggTrade(E, "BTCUSDT", 100 + i, 1.5, 0.25, 7, 8, E - 1, True), "ws", 2)
    b.add_book_row(book_row(MIDNIGHT - 5, 10, 10, 10))
    b.add_book_row(book_row(MIDNIGHT - 4, 14, 3, 0))        # uneven / empty sides
    b.add_book_row(book_row(MIDNIGHT + 4, 20, 10, 10))
    b.add_ops(MIDNIGHT + 1, "BTCUSDT", "", "connect", "{}")
    assert b.pending_rows() == 6
    assert sorted(b.buffered_trade_ids("BTCUSDT")) == [100, 101]
    batches = {(x.stream, x.date): x for x in b.drain()}
    assert b.pending_rows() == 0
    assert set(batches) == {("agg_trade", "2024-07-18"), ("agg_trade", "2024-07-19"),
                            ("book", "2024-07-18"), ("book", "2024-07-19"), ("ops", "2024-07-19")}
    for (stream, _), x in batches.items():
        assert x.table.schema == schemas.RAW_SCHEMAS[stream]
    bk = batches[("book", "2024-07-18")].table.to_pylist()
    assert bk[0]["bid_px"] == [100.0 - i for i in range(10)] and bk[0]["gap"] is True
    assert bk[1]["bid_qty"] == [1.0, 2.0, 3.0] and bk[1]["ask_px"] == [] and bk[1]["gap"] is False
    tr = batches[("agg_trade", "2024-07-18")]
    assert tr.trade_ids == [100] and tr.first_recv_ms == MIDNIGHT - 7
    row = tr.table.to_pylist()[0]
    assert row == {"recv_ts_ms": MIDNIGHT - 7, "event_ts_ms": MIDNIGHT - 10,
                   "trade_ts_ms": MIDNIGHT - 11, "symbol": "BTCUSDT", "agg_trade_id": 100,
                   "price": 1.5, "qty": 0.25, "first_trade_id": 7, "last_trade_id": 8,
                   "is_buyer_maker": True, "source": "ws", "conn_id": 2}
