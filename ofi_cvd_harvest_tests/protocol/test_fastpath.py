"""The typed fast path agrees with the strict decoder: on every real frame it decodes the frame
itself to the same record, and on damaged frames it never accepts what the strict decoder
rejects (it returns None and the strict decoder answers)."""

from __future__ import annotations

import json
import math

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from ofi_cvd_harvest.protocol.decode import DecodeError, decode, decode_strict
from ofi_cvd_harvest.protocol.fastpath import try_decode
from ofi_cvd_harvest_tests.protocol.test_decode import (cryptofeed_messages, hft_messages,
                                                        needs_real)

TRADE = {"e": "aggTrade", "E": 1721347200123, "s": "BTCUSDT", "a": 2287611234, "p": "64123.40",
         "q": "0.015", "f": 5012345678, "l": 5012345680, "T": 1721347200120, "m": True}
DEPTH = {"e": "depthUpdate", "E": 1721347200200, "T": 1721347200198, "s": "ETHUSDT",
         "U": 4870000001, "u": 4870000009, "pu": 4870000000,
         "b": [["3450.10", "2.5"], ["3450.00", "0"]], "a": [["3450.20", "1.25"]]}
TICKER = {"e": "bookTicker", "u": 4870000009, "E": 1721347200200, "T": 1721347200198,
          "s": "ETHUSDT", "b": "3450.10", "B": "2.5", "a": "3450.20", "A": "0"}


def strict_outcome(raw: bytes):
    try:
        return decode_strict(raw)
    except DecodeError as exc:
        return ("error", exc.kind, exc.detail)


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()   # any int size, NaN as NaN


def envelope(data: dict, stream: str = "x@y") -> bytes:
    return dumps({"stream": stream, "data": data})


@needs_real
def test_real_frames_take_the_fast_path_and_equal_the_strict_decoder():
    frames = [m.encode() for m in cryptofeed_messages()]
    frames += [m.encode() for m in hft_messages("btcusdt_20240719.gz")[:20_000]]
    fast = 0
    for raw in frames:
        out = try_decode(raw)
        ref = strict_outcome(raw)
        if out is None:   # only what the fast path does not model: klines, trades, snapshots
            kind = orjson.loads(raw).get("data", {}).get("e")
            assert kind not in ("aggTrade", "depthUpdate", "bookTicker"), raw[:200]
            continue
        assert out == ref
        fast += 1
    assert fast > 10_000


@pytest.mark.parametrize("data", [TRADE, DEPTH, TICKER])
def test_envelope_and_raw_payload(data):
    for raw in (envelope(data), dumps(data)):
        out = try_decode(raw)
        assert out is not None and out == decode_strict(raw) == decode(raw)


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " 1", "1_0", "0", "-0", "-1", "nan", "NaN", "inf", "-inf", "Infinity",
                     "1e400", "1e-400", "0x10", "1.5", "true", "123", "abc", "１２"]),
    st.text(max_size=6),
    st.lists(st.sampled_from(["1", "2.5", 3, None, "0"]), max_size=3),
)


@settings(max_examples=600, deadline=None)
@given(base=st.sampled_from([TRADE, DEPTH, TICKER]), key=st.sampled_from(
    ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "U", "u", "pu", "b", "a", "B", "A"]),
    value=JSON_VALUES, drop=st.booleans(), wrap=st.booleans())
def test_damaged_fields_never_accepted_by_the_fast_path_alone(base, key, value, drop, wrap):
    data = dict(base)
    if drop:
        data.pop(key, None)
    else:
        data[key] = value
    raw = envelope(data) if wrap else dumps(data)
    out = try_decode(raw)
    ref = strict_outcome(raw)
    if out is not None:
        assert out == ref          # accepted: exactly the strict decoder's record
    assert decode_outcome(raw) == ref  # and the public decoder answers like the strict one


def decode_outcome(raw: bytes):
    try:
        return decode(raw)
    except DecodeError as exc:
        return ("error", exc.kind, exc.detail)


LEVEL_VALUES = st.one_of(st.sampled_from(["1", "0", "-0", "-1", "nan", "inf", "1e400", "2.5",
                                          " 3", ""]),
                         st.floats(allow_nan=True, allow_infinity=False, width=32),
                         st.integers(-5, 5), st.none(), st.booleans())


@settings(max_examples=400, deadline=None)
@given(levels=st.lists(st.lists(LEVEL_VALUES, min_size=0, max_size=3), max_size=4),
       side=st.sampled_from(["b", "a"]))
def test_damaged_book_levels(levels, side):
    data = dict(DEPTH, **{side: levels})
    raw = envelope(data)
    out = try_decode(raw)
    ref = strict_outcome(raw)
    if out is not None:
        assert out == ref
        for p, q in out[1].bids + out[1].asks:
            assert p > 0 and q >= 0 and math.isfinite(p) and math.isfinite(q)
    assert decode_outcome(raw) == ref


def test_errors_are_the_strict_decoders():
    raw = envelope(dict(TRADE, p="nan"))
    assert try_decode(raw) is None
    with pytest.raises(DecodeError) as err:
        decode(raw)
    assert err.value.kind == "bad_value"
    raw = envelope(dict(TRADE, m="true"))
    assert try_decode(raw) is None
    with pytest.raises(DecodeError) as err:
        decode(raw)
    assert err.value.kind == "bad_field"
