"""The synthetic market driven directly (no sockets): determinism, ids, the U/u/pu chain, book
consistency between diff depth, partial depth, bookTicker and REST snapshots, realistic rates."""

from __future__ import annotations

import numpy as np
import pytest

from ofi_cvd_harvest.protocol import decode
from ofi_cvd_harvest.protocol.records import AggTrade
from ofi_cvd_harvest.sim.market import SyntheticMarket
from ofi_cvd_harvest.sim.source import MarketSource, payload
from ofi_cvd_harvest.sim.symbols import spec_for

START = 1_790_000_000_000
KINDS = ("aggTrade", "bookTicker", "depth@100ms", "depth5@100ms", "depth10@100ms",
         "depth20@100ms")


def streams_for(symbols, kinds=KINDS) -> frozenset[str]:
    return frozenset(f"{s.lower()}@{k}" for s in symbols for k in kinds)


def run(market: SyntheticMarket, seconds: float, streams, step_ms: int = 37):
    """Poll from the start to exactly start + seconds in steps of ``step_ms``."""
    out = []
    end = market.start_ms + int(seconds * 1000)
    for now in [*range(market.start_ms, end, step_ms), end]:
        out.extend(market.poll(now, streams))
    return out


def test_is_a_market_source():
    assert isinstance(SyntheticMarket(["BTCUSDT"]), MarketSource)


def test_bad_arguments():
    with pytest.raises(ValueError):
        SyntheticMarket([])
    with pytest.raises(ValueError):
        SyntheticMarket(["BTCUSDT"], speed=0)
    with pytest.raises(ValueError):
        SyntheticMarket(["BTCUSDT"], speed=float("nan"))


def test_same_seed_same_market_regardless_of_poll_pattern():
    syms = ["BTCUSDT", "ETHUSDT"]
    a = SyntheticMarket(syms, seed=5, start_ms=START)
    b = SyntheticMarket(syms, seed=5, start_ms=START)
    c = SyntheticMarket(syms, seed=6, start_ms=START)
    ma = run(a, 20, streams_for(syms), step_ms=13)
    mb = run(b, 20, streams_for(syms), step_ms=250)
    run(c, 20, streams_for(syms))
    assert [m.raw for m in ma] == [m.raw for m in mb]
    # subscriptions change what is built, never what happens
    d = SyntheticMarket(syms, seed=5, start_ms=START)
    run(d, 20, streams_for(syms, ("aggTrade",)))
    for s in syms:
        assert a.ground_truth(s) == b.ground_truth(s) == d.ground_truth(s)
        assert a.ground_truth(s) != c.ground_truth(s)


def test_messages_decode_ids_consecutive_and_time_ordered():
    syms = ["BTCUSDT", "ETHUSDT", "ZZTOPUSDT"]
    m = SyntheticMarket(syms, seed=1, start_ms=START)
    msgs = run(m, 30, streams_for(syms))
    assert [x.ts_ms for x in msgs] == sorted(x.ts_ms for x in msgs)
    last_a: dict[str, int] = {}
    last_l: dict[str, int] = {}
    kinds = set()
    for x in msgs:
        _, rec = decode.decode(x.raw)
        kinds.add(type(rec).__name__)
        if isinstance(rec, AggTrade):
            if rec.symbol in last_a:
                assert rec.agg_trade_id == last_a[rec.symbol] + 1
                assert rec.first_trade_id == last_l[rec.symbol] + 1
            last_a[rec.symbol] = rec.agg_trade_id
            last_l[rec.symbol] = rec.last_trade_id
            assert rec.event_ts_ms >= rec.trade_ts_ms
            assert rec.first_trade_id <= rec.last_trade_id
    assert kinds == {"AggTrade", "BookTicker", "DepthUpdate"}
    assert set(last_a) == set(syms)
    # REST ground truth has exactly the streamed trades
    for s in syms:
        gt = m.ground_truth(s)
        assert gt[-1]["agg_trade_id"] == last_a[s]
        assert [g["agg_trade_id"] for g in gt] == list(range(gt[0]["agg_trade_id"], last_a[s] + 1))


def test_update_id_chain_global_and_per_symbol():
    syms = ["BTCUSDT", "ETHUSDT"]
    m = SyntheticMarket(syms, seed=2, start_ms=START)
    msgs = [x for x in run(m, 30, streams_for(syms, ("depth@100ms", "depth10@100ms")))]
    diff = [payload(x) for x in msgs if x.stream.endswith("@depth@100ms")]
    part = [payload(x) for x in msgs if "@depth10@" in x.stream]
    assert len(diff) == len(part) > 500
    prev: dict[str, int] = {}
    last_u = 0
    for d in diff:
        assert d["U"] <= d["u"]
        assert d["u"] > last_u            # global sequence, increasing in emission order
        last_u = d["u"]
        if d["s"] in prev:
            assert d["pu"] == prev[d["s"]]
            assert d["U"] > d["pu"]
        prev[d["s"]] = d["u"]
    assert any(d["U"] != d["pu"] + 1 for d in diff)   # ids are global: U != pu + 1 happens
    # partial depth carries the same ids as the diff stream
    assert [(d["U"], d["u"], d["pu"]) for d in diff] == [(d["U"], d["u"], d["pu"]) for d in part]
    # ~10 depth events/s per symbol (every 100 ms when changed)
    assert len(diff) / 30 / 2 == pytest.approx(10, rel=0.05)


def test_diff_stream_rebuilds_partial_depth_and_book_ticker_exactly():
    """Snapshot + diffs (absolute quantities, 0 removes) == every partial depth20 message; the
    last bookTicker with u <= event u == the rebuilt top; never crossed."""
    m = SyntheticMarket(["BTCUSDT"], seed=3, start_ms=START)
    streams = streams_for(["BTCUSDT"], ("depth@100ms", "depth20@100ms", "bookTicker"))
    m.poll(START, streams)
    snap = m.depth_snapshot("BTCUSDT", 1000)
    bids = {p: q for p, q in snap["bids"]}
    asks = {p: q for p, q in snap["asks"]}
    assert len(bids) >= 20 and len(asks) >= 20
    msgs = run(m, 20, streams)[0:]
    first = True
    last_ticker = None
    checked = 0
    for x in msgs:
        d = payload(x)
        if x.stream.endswith("@bookTicker"):
            last_ticker = d
            continue
        if d["u"] < snap["lastUpdateId"]:
            continue
        if x.stream.endswith("@depth@100ms"):
            if first:
                assert d["U"] <= snap["lastUpdateId"] <= d["u"]
                first = False
            for side, book in (("b", bids), ("a", asks)):
                for p, q in d[side]:
                    if float(q) == 0:
                        book.pop(p, None)
                    else:
                        book[p] = q
            top_b = sorted(bids.items(), key=lambda kv: -float(kv[0]))[:20]
            top_a = sorted(asks.items(), key=lambda kv: float(kv[0]))[:20]
            assert float(top_b[0][0]) < float(top_a[0][0])
            if last_ticker is not None and last_ticker["u"] <= d["u"]:
                assert (last_ticker["b"], last_ticker["B"]) == tuple(top_b[0])
                assert (last_ticker["a"], last_ticker["A"]) == tuple(top_a[0])
        else:  # depth20 of the same event follows the diff (same E, stable order)
            assert [list(x) for x in top_b] == d["b"]
            assert [list(x) for x in top_a] == d["a"]
            checked += 1
    assert checked > 150


def test_tick_sizes_and_prices_on_grid():
    assert spec_for("BTCUSDT").tick_size == pytest.approx(0.1)
    assert spec_for("ETHUSDT").tick_size == pytest.approx(0.01)
    for name in ("FOOUSDT", "1000PEPEUSDT", "ZZ"):
        s = spec_for(name)
        assert s == spec_for(name)                       # deterministic per name
        assert 0.01 <= s.price <= 1000 and s.tick_size <= s.price / 1000
    m = SyntheticMarket(["ETHUSDT", "FOOUSDT"], seed=1, start_ms=START)
    info = m.exchange_info()
    ticks = {x["symbol"]: x["filters"][0]["tickSize"] for x in info["symbols"]}
    assert ticks["ETHUSDT"] == "0.01"
    msgs = run(m, 10, streams_for(["ETHUSDT", "FOOUSDT"], ("aggTrade",)))
    for x in msgs:
        dec = spec_for(payload(x)["s"]).tick_decimals
        p = payload(x)["p"]
        assert len(p.split(".")[1]) == dec if dec else "." not in p


@pytest.mark.parametrize("seconds", [
    600, pytest.param(3 * 3600, marks=pytest.mark.slow)])
def test_realistic_rates_and_size_quantiles(seconds):
    """Simulated BTCUSDT and ETHUSDT trades (10 min; 3 h in the slow run): rates and sizes near
    the real 2024-07-19 figures (docs/simulator.md); arrivals bursty (over-dispersed per second); price
    moves correlated with signed flow."""
    syms = ["BTCUSDT", "ETHUSDT"]
    m = SyntheticMarket(syms, seed=11, start_ms=START)
    run(m, seconds, streams_for(syms, ("aggTrade",)), step_ms=1000)
    want = {"BTCUSDT": (32, 0.013, 1.67), "ETHUSDT": (40, 0.044, 12.8)}
    for s, (rate, med, p99) in want.items():
        c = m.trade_columns(s)
        qty = c["qty"] * spec_for(s).lot_size
        assert len(qty) / seconds == pytest.approx(rate, rel=0.4)
        assert np.median(qty) == pytest.approx(med, rel=0.35)
        assert np.quantile(qty, 0.99) == pytest.approx(p99, rel=0.35)
        assert qty.max() <= spec_for(s).size_max
        per_s = np.bincount((c["T"] - START) // 1000)
        assert per_s.var() > 3 * per_s.mean()        # Poisson would give var == mean
        # price moves follow signed flow: 1-minute returns correlate with 1-minute signed volume
        minute = (c["T"] - START) // 60_000
        signed = np.where(c["m"], -qty, qty)
        flow = np.bincount(minute, weights=signed)
        last_px = np.array([c["px"][minute == k][-1] for k in range(minute.max() + 1)], float)
        ret = np.diff(np.log(last_px))
        assert np.corrcoef(ret, flow[1:])[0, 1] > 0.2


def test_unknown_symbol_rest_and_visibility():
    m = SyntheticMarket(["BTCUSDT"], seed=1, start_ms=START)
    with pytest.raises(KeyError):
        m.agg_trades("ETHUSDT")
    assert m.agg_trades("BTCUSDT") == []           # nothing emitted before the first poll
    m.poll(START + 5000, frozenset())
    rows = m.agg_trades("BTCUSDT", limit=1000)
    assert rows and all(r["T"] <= START + 5000 for r in rows)
    first = rows[0]["a"]
    assert m.agg_trades("BTCUSDT", from_id=first + 3, limit=2) == rows[3:5]
    win = m.agg_trades("BTCUSDT", start_ms=START + 1000, end_ms=START + 2000, limit=1000)
    assert win and all(START + 1000 <= r["T"] <= START + 2000 for r in win)
    assert set(rows[0]) == {"a", "p", "q", "f", "l", "T", "m"}
