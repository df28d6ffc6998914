"""The typed fast path agrees with the strict decoder: on every real frame it decodes the frame
itself to the same record, and on damaged frames it never accepts what the strict decoder
rejects (it returns None and the strict decoder answers)."""

from __future__ import annotations

import json
import math
import time

import orjson
import pytest
from hypothesis import example, given, settings, strategies as st

from ofi_cvd_harvest.protocol.decode import KINDS, DecodeError, decode, decode_strict
from ofi_cvd_harvest.protocol.fastpath import try_decode
from ofi_cvd_harvest.protocol.plausible import DAY_MS, STATIC, TimeWindow
from ofi_cvd_harvest_tests.protocol.test_decode import (cryptofeed_messages, hft_messages,
                                                        needs_real)

TRADE = {"e": "aggTrade", "E": 1721347200123, "s": "BTCUSDT", "a": 2287611234, "p": "64123.40",
         "q": "0.015", "f": 5012345678, "l": 5012345680, "T": 1721347200120, "m": True}
DEPTH = {"e": "depthUpdate", "E": 1721347200200, "T": 1721347200198, "s": "ETHUSDT",
         "U": 4870000001, "u": 4870000009, "pu": 4870000000,
         "b": [["3450.10", "2.5"], ["3450.00", "0"]], "a": [["3450.20", "1.25"]]}
TICKER = {"e": "bookTicker", "u": 4870000009, "E": 1721347200200, "T": 1721347200198,
          "s": "ETHUSDT", "b": "3450.10", "B": "2.5", "a": "3450.20", "A": "0"}


def strict_outcome(raw: bytes, window: TimeWindow = STATIC):
    try:
        return decode_strict(raw, window)
    except DecodeError as exc:
        assert exc.kind in KINDS
        return ("error", exc.kind, exc.detail)


def around(ts_ms: int) -> TimeWindow:
    """A window that follows an exchange clock reading ``ts_ms`` (the capture's window after
    a clock check against an exchange living on the fixtures' date). The local clock is
    frozen: with a running one a frame one ms past a bound was refused by one decode and
    admitted by the next, a millisecond later (seen once in CI)."""
    now = time.time_ns() // 1_000_000
    w = TimeWindow(clock_ms=lambda: now)
    w.follow(ts_ms - now)
    return w


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


def decode_outcome(raw: bytes, window: TimeWindow = STATIC):
    try:
        return decode(raw, window)
    except DecodeError as exc:
        return ("error", exc.kind, exc.detail)


# --- hostile values: ids outside 0..int64, implausible times, crossed books ----------------
T0 = TRADE["E"]
HOSTILE_INTS = st.one_of(
    st.sampled_from([-1, 0, 1, -(2**63), 2**63 - 1, 2**63, 2**63 + 5, 2**64 - 1, 2**64, 2**70,
                     -(2**63) - 1, 10**16, T0, T0 - DAY_MS - 1, T0 + DAY_MS + 1,
                     T0 - DAY_MS + 1000, T0 + DAY_MS - 1000, 1483228800000 - 1,
                     4102444800000 + 1]),
    st.integers(-2**65, 2**65), st.integers(T0 - 2 * DAY_MS, T0 + 2 * DAY_MS))
INT_KEYS = {id(TRADE): ["E", "a", "f", "l", "T"], id(DEPTH): ["E", "T", "U", "u", "pu"],
            id(TICKER): ["u", "E", "T"]}


@settings(max_examples=800, deadline=None)
@given(base=st.sampled_from([TRADE, DEPTH, TICKER]), pick=st.integers(0, 4),
       value=HOSTILE_INTS, second=st.one_of(st.none(), HOSTILE_INTS),
       follow=st.booleans(), wrap=st.booleans())
@example(base=TRADE, pick=3, value=TRADE["f"] + 3, second=T0 + DAY_MS + 1, follow=True, wrap=True)
@example(base=TRADE, pick=4, value=T0 + DAY_MS, second=None, follow=True, wrap=True)
def test_hostile_integers_agree_and_never_pass_implausible(base, pick, value, second, follow,
                                                          wrap):
    keys = INT_KEYS[id(base)]
    data = dict(base)
    data[keys[pick % len(keys)]] = value
    if second is not None:
        data[keys[(pick + 1) % len(keys)]] = second
    window = around(T0) if follow else STATIC
    raw = envelope(data) if wrap else dumps(data)
    out = try_decode(raw, window)
    ref = strict_outcome(raw, window)
    if out is not None:
        assert out == ref
    assert decode_outcome(raw, window) == ref
    if ref[0] != "error":
        rec = ref[1]
        ids = [getattr(rec, f) for f in ("agg_trade_id", "first_trade_id", "last_trade_id",
                                          "first_update_id", "final_update_id",
                                          "prev_final_update_id", "update_id")
               if hasattr(rec, f)]
        assert all(0 <= i <= 2**63 - 1 for i in ids)
        for ts in (rec.event_ts_ms, getattr(rec, "trade_ts_ms", getattr(rec, "transact_ts_ms", 0))):
            assert window.lo <= ts <= window.hi
            if follow:
                assert abs(ts - T0) <= DAY_MS + 60_000


PRICES = st.sampled_from(["99.8", "99.9", "100.0", "100.1", "100.2"])


@settings(max_examples=500, deadline=None)
@given(bids=st.lists(st.tuples(PRICES, st.sampled_from(["0", "1.5"])), max_size=4),
       asks=st.lists(st.tuples(PRICES, st.sampled_from(["0", "2"])), max_size=4))
def test_crossed_books_agree_and_are_never_accepted(bids, asks):
    raw = envelope(dict(DEPTH, b=[list(x) for x in bids], a=[list(x) for x in asks]))
    out = try_decode(raw)
    ref = strict_outcome(raw)
    if out is not None:
        assert out == ref
    assert decode_outcome(raw) == ref
    live_b = [float(p) for p, q in bids if q != "0"]
    live_a = [float(p) for p, q in asks if q != "0"]
    is_crossed = bool(live_b and live_a and max(live_b) >= min(live_a))
    assert (ref[0] == "error" and ref[1] == "crossed_book") == is_crossed


HOSTILE_CASES = [   # (payload, kind): the frames of docs/capture.md "Hostile frames"
    (dict(TRADE, E=10**16), "bad_time"),
    (dict(TRADE, E=-1, T=-1), "bad_time"),
    (dict(TRADE, T=0), "bad_time"),
    (dict(TRADE, a=2**63 + 5), "bad_id"),
    (dict(TRADE, a=2**64 + 5), "bad_id"),           # orjson: a float beyond uint64
    (dict(TRADE, a=-1), "bad_id"),
    (dict(TRADE, f=-3), "bad_id"),
    (dict(TRADE, l=-(2**63)), "bad_id"),
    (dict(TRADE, f=TRADE["l"] + 1), "bad_id"),      # first trade id after the last one
    (dict(TRADE, p="0"), "bad_value"),
    (dict(TRADE, p="NaN"), "bad_value"),
    (dict(TRADE, p="inf"), "bad_value"),
    (dict(TRADE, p="-64123.4"), "bad_value"),
    (dict(TRADE, q="0"), "bad_value"),
    (dict(TRADE, q="-0.015"), "bad_value"),
    (dict(TRADE, a="2287611234"), "bad_field"),
    (dict(TRADE, E=1.7e12), "bad_field"),
    (dict(DEPTH, E=10**16), "bad_time"),
    (dict(DEPTH, U=-1), "bad_id"),
    (dict(DEPTH, u=2**63), "bad_id"),
    (dict(DEPTH, pu=-2), "bad_id"),
    (dict(DEPTH, U=DEPTH["u"] + 1), "bad_id"),
    (dict(DEPTH, b=[["3450.30", "1"]]), "crossed_book"),
    (dict(DEPTH, b=[["3450.20", "1"]]), "crossed_book"),   # bid == ask
    (dict(DEPTH, b=[["3450.10", "1", "x", "y"], ["3450.30"]]), "bad_field"),
    (dict(DEPTH, a=[["3450.20", "-1"]]), "bad_value"),
    (dict(DEPTH, a=[["0", "1"]]), "bad_value"),
    (dict(DEPTH, a="3450.20"), "bad_field"),
    (dict(TICKER, u=-5), "bad_id"),
    (dict(TICKER, b="3450.30", A="1"), "crossed_book"),
]


@pytest.mark.parametrize("data,kind", HOSTILE_CASES)
def test_hostile_frames_are_rejected_with_their_kind(data, kind):
    for raw in (envelope(data), dumps(data)):
        assert try_decode(raw) is None
        ref = strict_outcome(raw)
        assert ref[:2] == ("error", kind), ref
        assert decode_outcome(raw) == ref


def test_removed_levels_do_not_cross_and_zero_depth_qty_is_legal():
    """A diff frame may remove a level beyond the new touch (qty 0): not a crossed book."""
    data = dict(DEPTH, b=[["3450.30", "0"], ["3450.10", "2.5"]], a=[["3450.05", "0"],
                                                                   ["3450.20", "1"]])
    out = try_decode(envelope(data))
    assert out is not None and out == strict_outcome(envelope(data))


def test_times_more_than_a_day_from_the_exchange_clock_are_rejected():
    w = around(T0)
    near = dict(TRADE, E=T0 + DAY_MS - 5_000, T=T0 - DAY_MS + 5_000)
    assert try_decode(envelope(near), w) is not None
    for bad in (dict(TRADE, E=T0 + DAY_MS + 60_000), dict(TRADE, T=T0 - DAY_MS - 60_000),
                dict(DEPTH, E=T0 + 2 * DAY_MS), dict(TICKER, T=T0 - 3 * DAY_MS)):
        assert try_decode(envelope(bad), w) is None
        assert strict_outcome(envelope(bad), w)[:2] == ("error", "bad_time")
        # without a learned clock only the static bounds apply
        assert strict_outcome(envelope(bad))[0] != "error"


def test_a_stale_window_refreshes_before_rejecting():
    w = around(T0)
    w.hi -= 10 * 60_000          # as if not refreshed for ten minutes
    late = dict(TRADE, E=T0 + DAY_MS - 60_000)
    assert try_decode(envelope(late), w) is None      # the fast path only compares
    assert decode(envelope(late), w)[1].event_ts_ms == late["E"]   # the strict path refreshes


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
