"""REST on the simulator's port, through real loopback HTTP (urllib): Binance semantics, errors,
request weight and 429."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest


def get(base: str, path: str) -> tuple[int, dict, object]:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


@pytest.fixture(scope="module")
def sim(module_simulator_factory):
    sim = module_simulator_factory(["BTCUSDT", "ETHUSDT", "NEWCOINUSDT"], seed=3, speed=30)
    time.sleep(1.0)  # 30 simulated seconds of history
    return sim


def test_time_and_exchange_info(sim):
    st, h, body = get(sim.rest_url, "/fapi/v1/time")
    assert st == 200 and isinstance(body["serverTime"], int)
    assert int(h["X-MBX-USED-WEIGHT-1m"]) >= 1
    st, _, info = get(sim.rest_url, "/fapi/v1/exchangeInfo")
    assert st == 200
    ticks = {s["symbol"]: [f for f in s["filters"] if f["filterType"] == "PRICE_FILTER"][0]
             ["tickSize"] for s in info["symbols"]}
    assert ticks["BTCUSDT"] == "0.1" and ticks["ETHUSDT"] == "0.01" and "NEWCOINUSDT" in ticks
    assert info["rateLimits"][0]["limit"] == 2400


def test_agg_trades_semantics(sim):
    st, h, latest = get(sim.rest_url, "/fapi/v1/aggTrades?symbol=BTCUSDT&limit=1000")
    assert st == 200 and h["X-MBX-USED-WEIGHT-1m"]
    assert 100 < len(latest) <= 1000
    ids = [t["a"] for t in latest]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert set(latest[0]) == {"a", "p", "q", "f", "l", "T", "m"}
    assert isinstance(latest[0]["p"], str) and isinstance(latest[0]["m"], bool)
    default = get(sim.rest_url, "/fapi/v1/aggTrades?symbol=BTCUSDT")[2]
    assert len(default) == min(500, len(latest)) or len(default) == 500
    # fromId: ascending from that id, limit respected
    _, _, page = get(sim.rest_url, f"/fapi/v1/aggTrades?symbol=BTCUSDT&fromId={ids[10]}&limit=7")
    assert [t["a"] for t in page] == ids[10:17]
    assert page == latest[10:17]
    # startTime/endTime inclusive on T
    t0, t1 = latest[20]["T"], latest[60]["T"]
    _, _, win = get(sim.rest_url, f"/fapi/v1/aggTrades?symbol=BTCUSDT&startTime={t0}&endTime={t1}"
                                  f"&limit=1000")
    assert win and all(t0 <= t["T"] <= t1 for t in win)
    assert {t["a"] for t in latest[20:61]} <= {t["a"] for t in win}
    # a future id: empty list, not an error
    assert get(sim.rest_url, f"/fapi/v1/aggTrades?symbol=BTCUSDT&fromId={ids[-1] + 10**6}")[2] == []


@pytest.mark.parametrize("query,status,code", [
    ("", 400, -1102),
    ("symbol=", 400, -1102),
    ("symbol=XRPUSDT", 400, -1121),
    ("symbol=btcusdt", 400, -1121),
    ("symbol=BTCUSDT&limit=0", 400, -1130),
    ("symbol=BTCUSDT&limit=1001", 400, -1130),
    ("symbol=BTCUSDT&limit=abc", 400, -1100),
    ("symbol=BTCUSDT&fromId=-5", 400, -1100),
    ("symbol=BTCUSDT&startTime=1000&endTime=3601001", 400, -1127),
    ("symbol=BTCUSDT&startTime=5000&endTime=1000", 400, -1130),
])
def test_agg_trades_bad_params(sim, query, status, code):
    st, h, body = get(sim.rest_url, "/fapi/v1/aggTrades?" + query)
    assert (st, body["code"]) == (status, code)
    assert body["msg"]


def test_depth(sim):
    st, h, snap = get(sim.rest_url, "/fapi/v1/depth?symbol=ETHUSDT&limit=5")
    assert st == 200 and set(snap) == {"lastUpdateId", "E", "T", "bids", "asks"}
    assert len(snap["bids"]) == len(snap["asks"]) == 5
    bids = [float(p) for p, _ in snap["bids"]]
    asks = [float(p) for p, _ in snap["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    big = get(sim.rest_url, "/fapi/v1/depth?symbol=ETHUSDT&limit=1000")[2]
    assert len(big["bids"]) >= 50
    assert get(sim.rest_url, "/fapi/v1/depth?symbol=ETHUSDT&limit=7")[2]["code"] == -1130
    assert get(sim.rest_url, "/fapi/v1/depth?symbol=NOPE")[2]["code"] == -1121


def test_unknown_path(sim):
    st, _, body = get(sim.rest_url, "/fapi/v1/nothing")
    assert st == 404 and body["code"] == -1000


def test_weight_accounting_and_429(simulator_factory):
    sim = simulator_factory(["BTCUSDT"], weight_limit=100)
    used = []
    statuses = []
    for _ in range(8):   # aggTrades weighs 20: 5 fit in 100
        st, h, body = get(sim.rest_url, "/fapi/v1/aggTrades?symbol=BTCUSDT&limit=10")
        statuses.append(st)
        used.append(int(h["X-MBX-USED-WEIGHT-1m"]))
    if used != sorted(used):   # a wall-clock minute boundary fell inside the loop
        pytest.skip("minute boundary")
    assert [b - a for a, b in zip(used, used[1:])] == [20] * 7
    assert statuses == [200 if u <= 100 else 429 for u in used]
    assert statuses.count(429) >= 3
    st, h, body = get(sim.rest_url, "/fapi/v1/time")
    assert st == 429 and body["code"] == -1003 and int(h["Retry-After"]) >= 1
