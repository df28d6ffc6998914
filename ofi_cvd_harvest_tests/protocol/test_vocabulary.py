"""The one Binance vocabulary (protocol/vocabulary.py): every stream form the client builds and
the simulator serves or replays round-trips through ``parse_stream``, and both sides read the
same levels, endpoint rule and request weights from it."""

from __future__ import annotations

import itertools
import re

import pytest

from ofi_cvd_harvest.capture.frames import subscriptions
from ofi_cvd_harvest.protocol.records import AggTrade, BookTicker, DepthUpdate
from ofi_cvd_harvest.protocol.streams import plan_connections
from ofi_cvd_harvest.protocol.vocabulary import (
    AGG_TRADE, BOOK_TICKER, DIFF, MARKET, OTHER, PARTIAL, PARTIAL_LEVELS, PUBLIC, TRADE,
    StreamSpec, agg_trade_stream, book_ticker_stream, depth_weight, diff_depth_stream,
    endpoint_of, format_stream, parse_stream, partial_depth_stream, request_weight)
from ofi_cvd_harvest.sim.control import ControlError, check_stream
from ofi_cvd_harvest.sim.market import parse_wants
from ofi_cvd_harvest.sim.recordings import (KIND_DEPTH, KIND_OTHER, KIND_TICKER, KIND_TRADE,
                                            stream_kind)
from ofi_cvd_harvest.sim.replay import _parse_wants as replay_wants

# the forms the capture subscribes to and the simulator serves
CLIENT = ([(agg_trade_stream("BTCUSDT"), StreamSpec("BTCUSDT", AGG_TRADE), MARKET),
           (book_ticker_stream("BTCUSDT"), StreamSpec("BTCUSDT", BOOK_TICKER), PUBLIC),
           (diff_depth_stream("BTCUSDT"), StreamSpec("BTCUSDT", DIFF, None, "100ms"), PUBLIC)]
          + [(partial_depth_stream("1000PEPEUSDT", n),
              StreamSpec("1000PEPEUSDT", PARTIAL, n, "100ms"), PUBLIC) for n in PARTIAL_LEVELS])
# forms found in recordings (replayed, not served live)
RECORDED = [("btcusdt@depth@0ms", StreamSpec("BTCUSDT", DIFF, None, "0ms"), KIND_DEPTH),
            ("btcusdt@depth", StreamSpec("BTCUSDT", DIFF), KIND_DEPTH),
            ("btcusdt@depth@500ms", StreamSpec("BTCUSDT", DIFF, None, "500ms"), KIND_DEPTH),
            ("btcusdt@trade", StreamSpec("BTCUSDT", TRADE), KIND_TRADE),
            ("btcusdt@aggTrade", StreamSpec("BTCUSDT", AGG_TRADE), KIND_TRADE),
            ("btcusdt@bookTicker", StreamSpec("BTCUSDT", BOOK_TICKER), KIND_TICKER),
            ("btcusdt@depth10", StreamSpec("BTCUSDT", PARTIAL, 10), KIND_OTHER)]


@pytest.mark.parametrize("name,spec,endpoint", CLIENT, ids=[c[0] for c in CLIENT])
def test_client_forms_round_trip_and_are_served(name, spec, endpoint):
    assert parse_stream(name) == spec
    assert format_stream(spec) == name
    assert endpoint_of(name) == endpoint
    assert check_stream(name, endpoint) == name            # the simulator accepts it there
    other = PUBLIC if endpoint == MARKET else MARKET
    with pytest.raises(ControlError):
        check_stream(name, other)
    w = parse_wants([name])[spec.symbol]                    # the synthetic market serves it
    assert (w.trade, w.ticker, w.diff, w.partial) == (
        spec.kind == AGG_TRADE, spec.kind == BOOK_TICKER, spec.kind == DIFF,
        (spec.levels,) if spec.kind == PARTIAL else ())
    r = replay_wants([name])[spec.symbol]                   # and so does a replay
    assert not r.other
    record = {AGG_TRADE: AggTrade, BOOK_TICKER: BookTicker}.get(spec.kind, DepthUpdate)
    assert subscriptions([name]) == {name: (spec.symbol, record)}   # and the capture reads it


@pytest.mark.parametrize("name,spec,kind", RECORDED, ids=[r[0] for r in RECORDED])
def test_recorded_forms_round_trip(name, spec, kind):
    assert parse_stream(name) == spec
    assert format_stream(spec) == name
    assert stream_kind(name) == kind


def test_replay_serves_every_recorded_diff_speed_and_flags_the_rest():
    w = replay_wants(["btcusdt@depth@0ms", "btcusdt@depth", "btcusdt@depth10@100ms",
                      "btcusdt@depth15@100ms"])["BTCUSDT"]
    assert w.diff == ["btcusdt@depth@0ms", "btcusdt@depth"]
    assert w.partial == [(10, "btcusdt@depth10@100ms")] and not w.other
    for odd in ("btcusdt@depth10", "btcusdt@aggTrade@100ms", "btcusdt@kline_1m"):
        assert replay_wants([odd])["BTCUSDT"].other, odd


HOSTILE = ["", "@", "@@", "btcusdt", "btcusdt@", "btcusdt@depth²@100ms", "btcusdt@depth@100ms@x",
           "btcusdt@depth-5@100ms", "btcusdt@depthfoo", "a@b@c@d", "BTCUSDT@aggTrade",
           "btcusdt@aggTrade\n", "btcusdt@depth05@100ms", "btcusdt@depth15@100ms",
           "b@aggTrade", "a" * 21 + "@aggTrade", "btc usdt@aggTrade", "btcusdt@depth@250ms"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_parse_without_raising_and_are_refused(name):
    sp = parse_stream(name)
    assert sp.kind in (AGG_TRADE, TRADE, BOOK_TICKER, DIFF, PARTIAL, OTHER)
    with pytest.raises(ControlError):
        check_stream(name, None)
    parse_wants([name])                      # was a ValueError for "depth²" (int("²"))
    replay_wants([name])
    subscriptions([name])


# Binance's grammar of the served streams, as the simulator stated it before the vocabulary
SERVED = re.compile(r"([a-z0-9]{2,20})@(aggTrade|bookTicker|depth@100ms|depth(5|10|20)@100ms)")


def test_served_set_matches_the_binance_grammar():
    parts = ["btcusdt", "B", "x1", "a" * 20, "a" * 21, "@", "aggTrade", "bookTicker", "depth",
             "depth5", "depth05", "depth20", "depth15", "100ms", "0ms", ""]
    seen = 0
    for n in range(1, 5):
        for combo in itertools.product(parts, repeat=n):
            name = "".join(combo)
            try:
                ok = check_stream(name, None) == name
            except ControlError:
                ok = False
            assert ok == bool(SERVED.fullmatch(name)), name
            seen += ok
    assert seen > 20


def test_one_weight_table_for_client_and_simulator():
    assert [depth_weight(n) for n in (5, 10, 20, 50, 51, 100, 101, 500, 501, 1000, 5000)] == \
        [2, 2, 2, 2, 5, 5, 10, 10, 20, 20, 20]
    assert request_weight("/fapi/v1/aggTrades") == 20
    assert request_weight("/fapi/v1/time") == request_weight("/fapi/v1/exchangeInfo") == 1
    assert request_weight("/fapi/v1/unknown") == 1


def test_connection_plan_symbols_come_from_the_parser():
    plans = plan_connections("ws://h:1", [agg_trade_stream("ethusdt"),
                                          partial_depth_stream("ETHUSDT", 5)])
    assert [(p.endpoint, p.symbols) for p in plans] == [(MARKET, ("ETHUSDT",)),
                                                        (PUBLIC, ("ETHUSDT",))]
