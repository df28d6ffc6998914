"""prices: dedup, ts/latency rules for ws and rest rows, receive rate."""

from __future__ import annotations

import polars as pl

from ofi_cvd_harvest.signals.prices import prices_table, recv_rate_tps, trades_from_raw

from .helpers import D0, SYM, trades_table


def frame(rows):
    return pl.from_arrow(trades_table(rows))


def test_dedup_prefers_ws_and_orders_by_id():
    raw = frame([
        {"id": 3, "t": D0 + 300, "price": 10, "qty": 1, "buy": True},
        {"id": 1, "t": D0 + 100, "price": 10, "qty": 1, "buy": True, "source": "rest"},
        {"id": 1, "t": D0 + 100, "price": 10, "qty": 1, "buy": True, "recv": D0 + 150},
        {"id": 2, "t": D0 + 200, "price": 11, "qty": 2, "buy": False, "source": "rest"},
        {"id": 3, "t": D0 + 300, "price": 10, "qty": 1, "buy": True, "recv": D0 + 999},  # later dup
    ])
    p = prices_table(trades_from_raw(raw, D0, D0 + 86_400_000), SYM, D0, D0 + 86_400_000)
    assert p["agg_trade_id"].to_list() == [1, 2, 3]
    assert p["source"].to_list() == ["ws", "rest", "ws"]
    assert p["ts_ms"].to_list() == [D0 + 150, D0 + 200, D0 + 305]       # rest: trade time
    assert p["event_ts_ms"].to_list() == [D0 + 101, D0 + 200, D0 + 301]  # rest: T
    assert p["latency_ms"].to_list() == [49, None, 4]


def test_recv_rate_trailing_second_including_self():
    ts = pl.Series([0, 100, 999, 1000, 1000, 2500, 50])   # unordered on purpose
    # window (ts-1000, ts]: 0->{0}, 100->{0,50,100}, 999->+999, 1000->(0,1000] five, 50->{0,50}
    assert recv_rate_tps(ts).to_list() == [1.0, 3.0, 4.0, 5.0, 5.0, 1.0, 2.0]


def test_day_filter_uses_event_time_and_rate_counts_rows_before_midnight():
    raw = frame([{"id": i, "t": D0 - 500 + 200 * i, "E": D0 - 500 + 200 * i, "recv": D0 - 500 + 200 * i,
                  "price": 1, "qty": 1, "buy": True} for i in range(6)])
    tr = trades_from_raw(raw, D0 - 3_600_000, D0 + 86_400_000)
    p = prices_table(tr, SYM, D0, D0 + 86_400_000)
    assert p["agg_trade_id"].to_list() == [3, 4, 5]          # E = D0+100, +300, +500
    assert p["recv_rate_tps"].to_list() == [4.0, 5.0, 5.0]   # counts the rows before 00:00
