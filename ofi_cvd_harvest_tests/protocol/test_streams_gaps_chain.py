"""Sans-I/O core: stream planning, trade-id gap tracking, pu-chain checking."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ofi_cvd_harvest.protocol.bookchain import ACCEPT, GAP, STALE, BookChain
from ofi_cvd_harvest.protocol.streams import (MARKET, PUBLIC, agg_trade_stream, combined_url,
                                              endpoint_of, partial_depth_stream, plan_connections)
from ofi_cvd_harvest.protocol.tradegaps import (DUPLICATE, FILLED, NEW, TradeIdTracker,
                                                id_intervals, merge_intervals)


def test_stream_names_lower_case_and_endpoints():
    assert agg_trade_stream("BTCUSDT") == "btcusdt@aggTrade"
    assert partial_depth_stream("ETHUSDT", 10) == "ethusdt@depth10@100ms"
    assert endpoint_of("btcusdt@aggTrade") == MARKET
    assert endpoint_of("btcusdt@depth10@100ms") == PUBLIC
    assert endpoint_of("btcusdt@depth@100ms") == PUBLIC
    assert endpoint_of("btcusdt@bookTicker") == PUBLIC
    assert combined_url("ws://h:1/", MARKET, ["a@aggTrade", "b@aggTrade"]) == \
        "ws://h:1/market/stream?streams=a@aggTrade/b@aggTrade"
    with pytest.raises(ValueError):
        combined_url("ws://h", MARKET, [])


def test_plan_splits_by_endpoint_and_limit():
    syms = [f"S{i:03d}USDT" for i in range(450)]
    streams = [agg_trade_stream(s) for s in syms] + [partial_depth_stream(s) for s in syms]
    plans = plan_connections("wss://fstream.binance.com", streams, 200)
    assert [p.endpoint for p in plans] == [MARKET] * 3 + [PUBLIC] * 3
    assert [len(p.streams) for p in plans] == [200, 200, 50] * 2
    assert all(p.url.startswith("wss://fstream.binance.com/market/stream?streams=")
               for p in plans[:3])
    assert all("/public/stream?streams=" in p.url for p in plans[3:])
    assert sum(len(p.symbols) for p in plans[:3]) == 450
    assert plans[0].symbols[0] == "S000USDT"
    with pytest.raises(ValueError):
        plan_connections("ws://x", streams, 201)
    # two symbols -> exactly two connections (trades and book are split)
    assert len(plan_connections("ws://x", ["a@aggTrade", "b@aggTrade", "a@depth10@100ms"])) == 2


def test_tracker_jump_out_of_order_and_duplicates():
    t = TradeIdTracker()
    assert t.observe(100) == (NEW, None)
    assert t.observe(101) == (NEW, None)
    status, gap = t.observe(105, now_ms=7)
    assert status == NEW and (gap.start, gap.end, gap.opened_ms) == (102, 104, 7)
    assert t.missing() == 3
    assert t.observe(103) == (FILLED, None)              # late delivery splits the gap
    assert t.snapshot() == [[102, 102], [104, 104]]
    assert t.observe(103) == (DUPLICATE, None)
    assert t.observe(101) == (DUPLICATE, None)
    assert t.fill(102) and t.fill(104) and not t.fill(104)
    assert t.gaps == [] and t.last_id == 105


def test_tracker_restore_from_checkpoint():
    t = TradeIdTracker()
    t.restore(50, [[10, 12]])
    assert t.is_missing(11) and not t.is_missing(13)
    status, gap = t.observe(60)
    assert (gap.start, gap.end) == (51, 59)
    assert t.snapshot() == [[10, 12], [51, 59]]


@given(st.lists(st.integers(0, 300), min_size=1, max_size=400))
@hsettings(max_examples=200, deadline=None)
def test_tracker_missing_is_exactly_the_complement(ids):
    """After any arrival order, the missing ids are exactly those in [min, max] not seen."""
    t = TradeIdTracker()
    seen: set[int] = set()
    first = ids[0]
    for i in ids:
        if i < first:
            continue  # ids before the first one are history we never owed
        status, _ = t.observe(i)
        assert (status == DUPLICATE) == (i in seen)
        seen.add(i)
    expected = [i for i in range(first, max(seen) + 1) if i not in seen]
    got = [i for a, b in t.snapshot() for i in range(a, b + 1)]
    assert got == expected


def test_intervals():
    assert id_intervals([5, 3, 4, 9, 9, 10]) == [[3, 5], [9, 10]]
    assert merge_intervals([[1, 3], [10, 12]], [[4, 4], [11, 20]]) == [[1, 4], [10, 20]]


def test_book_chain():
    c = BookChain()
    assert c.check(10, 5) == GAP            # first row after connect
    assert c.check(15, 10) == ACCEPT
    assert c.check(15, 10) == STALE         # duplicate
    assert c.check(12, 3) == STALE          # stale out-of-order
    assert c.check(30, 20) == GAP and c.gaps == 1   # broken chain (a dropped message)
    assert c.check(31, 30) == ACCEPT
    c.reset()
    assert c.fresh
    assert c.check(40, 31) == GAP           # (re)connect always starts a new chain
    assert c.check(41, 40) == ACCEPT
    c.reset()
    assert c.check(2, 1) == GAP             # a restarted (lower) sequence after reconnect
    assert c.stale == 2


def test_book_chain_global_sequence_real_style():
    """U != pu + 1 is normal; only pu == previous u matters."""
    c = BookChain()
    rng = random.Random(1)
    u = 1000
    assert c.check(u, 900) == GAP
    for _ in range(1000):
        new_u = u + rng.randint(1, 5000)
        assert c.check(new_u, u) == ACCEPT
        u = new_u


def test_fill_range():
    t = TradeIdTracker()
    t.restore(100, [[10, 20], [30, 40], [50, 60]])
    assert t.fill_range(15, 55) == 6 + 11 + 6
    assert t.snapshot() == [[10, 14], [56, 60]]
    assert t.fill_range(0, 5) == 0 and t.fill_range(10, 60) == 10 and t.gaps == []
