"""The capture's frame gate (capture/frames.py): a valid record on a stream the connection did
not subscribe, or of another symbol or type than its stream's, is ``unknown_stream``; a handler
that raises costs one frame (``handler_error``), never the capture."""

from __future__ import annotations

import time

import orjson
import pytest

from ofi_cvd_harvest.capture.frames import FRAME_ERROR_KINDS, subscriptions
from ofi_cvd_harvest.capture.runner import Capture
from ofi_cvd_harvest.protocol.decode import KINDS
from ofi_cvd_harvest.protocol.records import AggTrade, BookTicker, DepthUpdate

from ..metricvalue import metric
from .rawcheck import capture_settings

NOW = int(time.time() * 1000)
TRADE = {"e": "aggTrade", "E": NOW, "s": "BTCUSDT", "a": 100, "p": "64000.5", "q": "0.01",
         "f": 1, "l": 2, "T": NOW - 1, "m": False}
DEPTH = {"e": "depthUpdate", "E": NOW, "T": NOW - 1, "s": "BTCUSDT", "U": 5, "u": 9, "pu": 4,
         "b": [["64000.0", "1"]], "a": [["64000.5", "2"]]}
STREAMS = ("btcusdt@aggTrade", "ethusdt@aggTrade", "btcusdt@depth10@100ms")


def frame(stream: str, data: dict) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def decode_errors(kind: str) -> float:
    return metric("decode_errors_total", kind=kind)


@pytest.fixture
def cap(tmp_path):
    c = Capture(capture_settings(tmp_path, "ws://127.0.0.1:9", "http://127.0.0.1:9"))
    yield c
    c.runlog.close()


def test_subscriptions_map_streams_to_symbol_and_record():
    assert subscriptions(STREAMS + ("btcusdt@bookTicker", "btcusdt@kline_1m")) == {
        "btcusdt@aggTrade": ("BTCUSDT", AggTrade), "ethusdt@aggTrade": ("ETHUSDT", AggTrade),
        "btcusdt@depth10@100ms": ("BTCUSDT", DepthUpdate),
        "btcusdt@bookTicker": ("BTCUSDT", BookTicker)}
    assert set(KINDS) < set(FRAME_ERROR_KINDS)


@pytest.mark.parametrize("stream,data", [
    ("dogeusdt@aggTrade", TRADE),                         # not subscribed here
    ("ethusdt@aggTrade", TRADE),                          # subscribed, another symbol's
    ("btcusdt@depth10@100ms", TRADE),                     # subscribed, another record type
    ("btcusdt@aggTrade", DEPTH),
    (None, TRADE),                                        # a raw payload on a combined stream
])
def test_records_off_their_stream_are_unknown_stream(cap, stream, data):
    sub = subscriptions(STREAMS)
    before = decode_errors("unknown_stream")
    raw = orjson.dumps(data) if stream is None else frame(stream, data)
    cap._on_message(raw, NOW, 1, "market", ("BTCUSDT", "ETHUSDT"), sub)
    assert cap.ops.decode_errors == {"unknown_stream": 1}
    assert decode_errors("unknown_stream") - before == 1
    assert cap.buffers.pending_rows() == 2            # the ops row, once per symbol, no data row
    assert cap.states["BTCUSDT"].tracker.last_id is None
    cap._on_message(frame("btcusdt@aggTrade", TRADE), NOW, 1, "market", ("BTCUSDT",), sub)
    assert cap.states["BTCUSDT"].tracker.last_id == 100   # the true one is taken


def test_control_replies_are_not_errors(cap):
    cap._on_message(b'{"result":null,"id":1}', NOW, 1, "market", ("BTCUSDT",),
                    subscriptions(STREAMS))
    assert not cap.ops.decode_errors


def test_a_failing_handler_costs_one_frame_not_the_capture(cap, monkeypatch):
    sub = subscriptions(STREAMS)
    calls = []

    def broken(rec, recv_ms, conn_id):
        calls.append(rec.agg_trade_id)
        raise RuntimeError("a bug in the trade path")
    monkeypatch.setattr(cap, "_on_trade", broken)
    before = decode_errors("handler_error")
    for a in (1, 2):
        cap._on_message(frame("btcusdt@aggTrade", dict(TRADE, a=a)), NOW, 1, "market",
                        ("BTCUSDT",), sub)          # never raises
    assert calls == [1, 2]
    assert cap.ops.decode_errors == {"handler_error": 2}
    assert decode_errors("handler_error") - before == 2
    ops = [b for b in cap.buffers.drain() if b.stream == "ops"]
    metas = [orjson.loads(m) for b in ops for m in b.table.column("meta_json").to_pylist()]
    assert metas[0]["kind"] == "handler_error" and "RuntimeError" in metas[0]["detail"]
    assert metas[0]["sample"].startswith('{"stream":"btcusdt@aggTrade"')


def test_an_out_of_range_value_past_the_decoder_is_a_handler_error(cap, monkeypatch):
    """Defence in depth: even with the decoder's checks bypassed, an id beyond int64 or an
    impossible time cannot stop the capture (the dedup window raises before changing
    anything; the date computation does not raise)."""
    import ofi_cvd_harvest.capture.runner as runner
    sub = subscriptions(STREAMS)

    def lax(raw, window=None):
        d = orjson.loads(raw)
        x = d["data"]
        return d["stream"], AggTrade(x["E"], x["s"], x["a"], float(x["p"]), float(x["q"]),
                                     x["f"], x["l"], x["T"], x["m"])
    monkeypatch.setattr(runner, "decode", lax)
    cap._on_message(frame("btcusdt@aggTrade", dict(TRADE, a=2**63 + 5)), NOW, 1, "market",
                    ("BTCUSDT",), sub)
    cap._on_message(frame("btcusdt@aggTrade", dict(TRADE, a=7, E=10**16, T=-1)), NOW, 1,
                    "market", ("BTCUSDT",), sub)
    assert cap.ops.decode_errors == {"handler_error": 1}
    st = cap.states["BTCUSDT"]
    assert st.tracker.last_id == 7 and len(st.dedup) == 1
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert {b.date for b in cap.buffers.drain()} <= {today, time.strftime("%Y-%m-%d",
                                                                          time.gmtime())}
