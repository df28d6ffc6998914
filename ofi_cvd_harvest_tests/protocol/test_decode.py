"""Decoding: every message of the real recordings decodes to the JSON's values; bad input is
rejected with a kind, never turned into a record."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import orjson
import pytest

from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest.protocol.decode import (ControlReply, DecodeError, decode, depth_snapshot,
                                             rest_agg_trades)
from ofi_cvd_harvest.protocol.records import AggTrade, BookTicker, DepthUpdate

REAL = REALDATA
CRYPTOFEED = REAL / "cryptofeed_binance_futures"
HFT = REAL / "hftbacktest_usdm"
needs_real = pytest.mark.skipif(not REAL.exists(), reason="realdata not available")


def cryptofeed_messages() -> list[str]:
    lines = (CRYPTOFEED / "BINANCE_FUTURES.ws.1.0").read_text().splitlines()[1:]
    return [ln.split(": ", 1)[1] for ln in lines if ln.strip()]


def hft_messages(name: str) -> list[str]:
    with gzip.open(HFT / name, "rt") as fh:
        return [ln.split(" ", 1)[1].rstrip("\n") for ln in fh if ln.strip()]


def check_equal(rec, d: dict) -> None:
    """Every field of the record equals the JSON's value."""
    if isinstance(rec, AggTrade):
        assert (rec.event_ts_ms, rec.symbol, rec.agg_trade_id) == (d["E"], d["s"], d["a"])
        assert rec.price == float(d["p"]) and rec.qty == float(d["q"])
        assert (rec.first_trade_id, rec.last_trade_id, rec.trade_ts_ms) == (d["f"], d["l"], d["T"])
        assert rec.is_buyer_maker is d["m"]
    elif isinstance(rec, DepthUpdate):
        assert (rec.event_ts_ms, rec.transact_ts_ms, rec.symbol) == (d["E"], d["T"], d["s"])
        assert (rec.first_update_id, rec.final_update_id, rec.prev_final_update_id) == (
            d["U"], d["u"], d["pu"])
        assert rec.bids == [(float(p), float(q)) for p, q in d["b"]]
        assert rec.asks == [(float(p), float(q)) for p, q in d["a"]]
    elif isinstance(rec, BookTicker):
        assert (rec.update_id, rec.event_ts_ms, rec.transact_ts_ms, rec.symbol) == (
            d["u"], d["E"], d["T"], d["s"])
        assert (rec.bid_px, rec.bid_qty, rec.ask_px, rec.ask_qty) == (
            float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
    else:  # pragma: no cover
        raise AssertionError(type(rec))


@needs_real
def test_cryptofeed_recording_decodes_exactly():
    kinds = {"aggTrade": 0, "depthUpdate": 0, "bookTicker": 0, "kline": 0}
    for msg in cryptofeed_messages():
        env = json.loads(msg)
        ev = env["data"]["e"]
        if ev == "kline":  # not captured: rejected as unknown, never mis-decoded
            with pytest.raises(DecodeError) as err:
                decode(msg)
            assert err.value.kind == "unknown_event"
            kinds["kline"] += 1
            continue
        stream, rec = decode(msg.encode())
        assert stream == env["stream"]
        check_equal(rec, env["data"])
        kinds[ev] += 1
    assert kinds == {"aggTrade": 91, "depthUpdate": 764, "bookTicker": 613, "kline": 67}


@needs_real
@pytest.mark.parametrize("name", ["btcusdt_20240718.gz", "ethusdt_20240719.gz"])
def test_hftbacktest_depth_and_bookticker_decode_exactly(name):
    counts = {"depthUpdate": 0, "bookTicker": 0, "trade": 0, "snapshot": 0}
    for msg in hft_messages(name):
        obj = orjson.loads(msg)
        if "lastUpdateId" in obj:
            snap = depth_snapshot(msg)
            assert snap.last_update_id == obj["lastUpdateId"]
            assert snap.bids[0] == (float(obj["bids"][0][0]), float(obj["bids"][0][1]))
            counts["snapshot"] += 1
            continue
        ev = obj["data"]["e"]
        if ev == "trade":  # raw trades are the replay helper's business, not aggTrade
            with pytest.raises(DecodeError, match="unknown_event"):
                decode(msg)
            counts["trade"] += 1
            continue
        _, rec = decode(msg)
        check_equal(rec, obj["data"])
        counts[ev] += 1
    assert counts["depthUpdate"] > 1000 and counts["bookTicker"] > 1000 and counts["trade"] > 100


@needs_real
def test_cryptofeed_rest_depth_snapshots():
    n = 0
    for line in (CRYPTOFEED / "BINANCE_FUTURES.http.0.0").read_text().splitlines():
        if "->" not in line:
            continue
        body = line.split(": ", 1)[1]
        snap = depth_snapshot(body)
        d = json.loads(body)
        assert snap.last_update_id == d["lastUpdateId"]
        assert len(snap.bids) == len(d["bids"]) and len(snap.asks) == len(d["asks"])
        n += 1
    assert n == 4


T0 = 1721347200000   # 2024-07-19: event/trade times must be plausible (protocol/plausible.py)
GOOD_TRADE = {"e": "aggTrade", "E": T0 + 1, "s": "BTCUSDT", "a": 5, "p": "100.5", "q": "0.25",
              "nq": "0.25", "f": 10, "l": 11, "T": T0 + 1, "m": True}


def env(data) -> bytes:
    return orjson.dumps({"stream": "btcusdt@aggTrade", "data": data})


def test_raw_payload_and_envelope():
    s, rec = decode(orjson.dumps(GOOD_TRADE))
    assert s is None and rec.price == 100.5 and rec.is_buyer_maker is True
    s, rec = decode(env(GOOD_TRADE).decode())
    assert s == "btcusdt@aggTrade" and rec.agg_trade_id == 5
    no_nq = dict(GOOD_TRADE)
    del no_nq["nq"]
    assert decode(env(no_nq))[1].qty == 0.25


def test_control_reply():
    _, rec = decode(b'{"result":null,"id":1}')
    assert isinstance(rec, ControlReply) and rec.id == 1


@pytest.mark.parametrize("raw,kind", [
    (b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTr', "malformed_json"),
    (b"not json", "malformed_json"),
    (b"", "malformed_json"),
    (b"[1,2,3]", "malformed_json"),
    (b'{"stream":"x","data":"str"}', "malformed_json"),
    (b'{"stream":"x","data":{"e":"markPriceUpdate","E":1}}', "unknown_event"),
    (b'{"stream":"x","data":{"E":1}}', "unknown_event"),
    (b'{"code":-1121,"msg":"Invalid symbol."}', "exchange_error"),
    (b'{"stream":5,"data":{}}', "bad_field"),
    (b'{"stream":"x"}', "bad_field"),
])
def test_bad_messages_have_a_kind(raw, kind):
    with pytest.raises(DecodeError) as err:
        decode(raw)
    assert err.value.kind == kind
    assert isinstance(err.value.sample, str)


@pytest.mark.parametrize("field,value,kind", [
    ("a", "5", "bad_field"), ("a", 5.0, "bad_field"), ("a", True, "bad_field"),
    ("E", None, "bad_field"), ("m", "true", "bad_field"), ("m", 1, "bad_field"),
    ("p", True, "bad_field"), ("p", "abc", "bad_field"), ("p", [1], "bad_field"),
    ("s", 7, "bad_field"), ("s", "", "bad_field"),
    ("p", "NaN", "bad_value"), ("q", "nan", "bad_value"), ("q", "-0.5", "bad_value"),
    ("q", "0", "bad_value"), ("p", "-1", "bad_value"), ("p", "inf", "bad_value"),
    ("q", -1.0, "bad_value"), ("a", None, "bad_field"),
])
def test_wrong_types_and_values_rejected(field, value, kind):
    d = dict(GOOD_TRADE)
    d[field] = value
    with pytest.raises(DecodeError) as err:
        decode(env(d))
    assert err.value.kind == kind, err.value


@pytest.mark.parametrize("missing", ["E", "s", "a", "p", "q", "f", "l", "T", "m"])
def test_missing_field(missing):
    d = dict(GOOD_TRADE)
    del d[missing]
    with pytest.raises(DecodeError, match="bad_field"):
        decode(env(d))


DEPTH = {"e": "depthUpdate", "E": T0 + 2, "T": T0 + 1, "s": "BTCUSDT", "U": 1, "u": 5, "pu": 0,
         "b": [["100.0", "1.5"], ["99.9", "0"]], "a": [["100.1", "2"]]}


def test_depth_levels_zero_qty_ok_but_bad_levels_rejected():
    _, rec = decode(orjson.dumps(DEPTH))
    assert rec.bids == [(100.0, 1.5), (99.9, 0.0)] and rec.asks == [(100.1, 2.0)]
    for b in ([["100", "-1"]], [["NaN", "1"]], [["0", "1"]], [["100"]], ["x"], "bids",
              [["100", "nan"]], [[None, "1"]]):
        d = dict(DEPTH, b=b)
        with pytest.raises(DecodeError) as err:
            decode(orjson.dumps(d))
        assert err.value.kind in ("bad_field", "bad_value")


def test_book_ticker():
    d = {"e": "bookTicker", "u": 9, "E": T0 + 3, "T": T0 + 2, "s": "ETHUSDT", "b": "1.5", "B": "0",
         "a": "1.6", "A": "3"}
    _, rec = decode(orjson.dumps(d))
    assert rec.bid_qty == 0.0 and rec.ask_px == 1.6


def test_rest_agg_trades():
    body = orjson.dumps([{"a": 7, "p": "10", "q": "1", "f": 1, "l": 2, "T": T0, "m": False}])
    (t,) = rest_agg_trades("BTCUSDT", body)
    assert (t.agg_trade_id, t.event_ts_ms, t.trade_ts_ms, t.symbol) == (7, T0, T0, "BTCUSDT")
    for bad in (b'{"a":1}', b'[{"a":1}]', b'[{"a":1,"p":"x","q":"1","f":1,"l":1,"T":1,"m":true}]',
                b"[1]"):
        with pytest.raises(DecodeError):
            rest_agg_trades("BTCUSDT", bad)


def test_never_returns_non_finite_values():
    """Property-ish: random junk either decodes to finite positive values or raises."""
    import random
    rng = random.Random(7)
    junk = ["1", "-1", "0", "NaN", "1e400", "abc", 1, -2, 0.0, None, True, [], {}]
    for _ in range(2000):
        d = dict(GOOD_TRADE)
        for k in rng.sample(sorted(d), 2):
            d[k] = rng.choice(junk)
        try:
            _, rec = decode(env(d))
        except DecodeError:
            continue
        assert math.isfinite(rec.price) and rec.price > 0 and math.isfinite(rec.qty) and rec.qty > 0
        assert type(rec.agg_trade_id) is int and type(rec.is_buyer_maker) is bool
