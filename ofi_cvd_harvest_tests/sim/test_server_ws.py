"""WebSocket side of the simulator through real loopback clients: paths, envelopes, category
rules, control messages, limits (incoming rate, streams, connection age) and server pings."""

from __future__ import annotations

import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ofi_cvd_harvest.sim.control import ConnSpec, PathError, Session, parse_path


@pytest.fixture(scope="module")
def sim(module_simulator_factory):
    return module_simulator_factory(["BTCUSDT", "ETHUSDT"], seed=4, speed=5, max_conn_age=3.0)


def recv_json(ws, timeout=5.0):
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        m = recv_json(ws, max(0.01, deadline - time.monotonic()))
        if pred(m):
            return m


@pytest.mark.parametrize("path,stream,combined", [
    ("/market/stream?streams=btcusdt@aggTrade", "btcusdt@aggTrade", True),
    ("/public/stream?streams=ethusdt@depth10@100ms", "ethusdt@depth10@100ms", True),
    ("/stream?streams=btcusdt@bookTicker", "btcusdt@bookTicker", True),
    ("/market/ws/btcusdt@aggTrade", "btcusdt@aggTrade", False),
    ("/public/ws/btcusdt@depth@100ms", "btcusdt@depth@100ms", False),
    ("/ws/ethusdt@depth5@100ms", "ethusdt@depth5@100ms", False),
])
def test_paths_and_envelopes(sim, path, stream, combined):
    with connect(sim.ws_url + path) as ws:
        m = recv_json(ws)
        if combined:
            assert set(m) == {"stream", "data"} and m["stream"] == stream
            data = m["data"]
        else:
            data = m
        assert data["s"] == stream.split("@")[0].upper()
        assert data["e"] == {"aggTrade": "aggTrade", "bookTicker": "bookTicker"}.get(
            stream.split("@")[1], "depthUpdate")
        if "depth5" in stream:
            assert len(data["b"]) == 5


@pytest.mark.parametrize("path,status", [
    ("/market/stream?streams=btcusdt@depth10@100ms", 400),      # book is on /public
    ("/public/stream?streams=btcusdt@aggTrade", 400),           # trades are on /market
    ("/public/ws/btcusdt@aggTrade", 400),
    ("/stream?streams=btcusdt@kline_1m", 400),                  # not served
    ("/stream?streams=" + "/".join(f"s{i}usdt@aggTrade" for i in range(201)), 400),
    ("/nowhere", 404),
    ("/market/stream/extra", 404),
])
def test_bad_paths_are_refused(sim, path, status):
    with pytest.raises(InvalidStatus) as ei:
        connect(sim.ws_url + path)
    assert ei.value.response.status_code == status


def test_subscribe_unsubscribe_list_and_errors(sim):
    with connect(sim.ws_url + "/market/ws") as ws:
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        assert recv_json(ws) == {"result": [], "id": 1}
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2}))
        assert recv_until(ws, lambda m: "id" in m) == {"result": None, "id": 2}
        trade = recv_until(ws, lambda m: m.get("e") == "aggTrade")   # raw (/ws) payloads
        assert trade["s"] == "BTCUSDT"
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 3}))
        err = recv_until(ws, lambda m: m.get("id") == 3)
        assert err["code"] == 2 and "/public" in err["msg"]
        ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 4}))
        assert recv_until(ws, lambda m: m.get("id") == 4) == {"result": None, "id": 4}
        assert set(recv_until(ws, lambda m: "stream" in m)) == {"stream", "data"}
        ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 5}))
        assert recv_until(ws, lambda m: m.get("id") == 5) == {"result": True, "id": 5}
        ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 6}))
        assert recv_until(ws, lambda m: m.get("id") == 6) == {"result": None, "id": 6}
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))
        assert recv_until(ws, lambda m: m.get("id") == 7) == {"result": [], "id": 7}
        time.sleep(0.3)
        with pytest.raises(TimeoutError):     # nothing flows any more
            while True:
                m = recv_json(ws, timeout=0.5)
                assert "id" in m or m.get("data", {}).get("E", 0) < time.time() * 1000


@pytest.mark.parametrize("msg,code", [
    ("not json", 3),
    ('["SUBSCRIBE"]', 3),
    ('{"params":[],"id":1}', 2),
    ('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":"x"}', 2),
    ('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":-1}', 2),
    ('{"method":"FOO","id":1}', 2),
    ('{"method":"SUBSCRIBE","params":"btcusdt@aggTrade","id":1}', 2),
    ('{"method":"SUBSCRIBE","params":["BTCUSDT@aggTrade"],"id":1}', 2),
    ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":1}', 1),
    ('{"method":"SET_PROPERTY","params":["colour",true],"id":1}', 0),
    ('{"method":"GET_PROPERTY","params":[5],"id":1}', 2),
])
def test_control_errors(msg, code):
    """Sans-I/O session: Binance's error codes (0 unknown property, 1 bad value type,
    2 invalid request, 3 invalid JSON)."""
    s = Session(parse_path("/stream?streams=btcusdt@aggTrade"))
    reply, added, removed = s.handle(msg)
    r = json.loads(reply)
    assert r["code"] == code and r["msg"] and (added, removed) == ([], [])


def test_stream_limit_per_connection():
    s = Session(ConnSpec(None, True, []), max_streams=200)
    many = [f"s{i}usdt@aggTrade" for i in range(150)]
    assert json.loads(s.handle(json.dumps({"method": "SUBSCRIBE", "params": many, "id": 1}))[0]) \
        == {"result": None, "id": 1}
    more = [f"t{i}usdt@bookTicker" for i in range(51)]
    r = json.loads(s.handle(json.dumps({"method": "SUBSCRIBE", "params": more, "id": 2}))[0])
    assert r["code"] == 2 and "too many" in r["msg"]
    assert len(s.streams) == 150
    with pytest.raises(PathError):
        parse_path("/stream?streams=" + "/".join(many + more))


def test_incoming_rate_limit_disconnects(sim):
    with connect(sim.ws_url + "/market/ws/btcusdt@aggTrade") as ws:
        # the server may cut the connection while the 12th message is still being sent
        with pytest.raises(ConnectionClosed) as ei:
            for i in range(12):
                ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            for _ in range(10_000):
                ws.recv(timeout=5)
        assert ei.value.rcvd.code == 1008


def test_ten_messages_per_second_is_allowed(sim):
    with connect(sim.ws_url + "/market/ws/btcusdt@aggTrade") as ws:
        for i in range(10):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        replies = set()
        while len(replies) < 10:
            m = recv_json(ws)
            if "id" in m:
                replies.add(m["id"])


def test_max_connection_age_cut(sim):
    t0 = time.monotonic()
    with connect(sim.ws_url + "/market/ws/btcusdt@aggTrade") as ws:
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
    assert 2.5 < time.monotonic() - t0 < 6


def test_server_pings_and_closes_without_pong(simulator_factory):
    """A raw client that never answers: the server pings every ping_interval and closes once
    ping_timeout passes without a pong."""
    from websockets.client import ClientProtocol
    from websockets.frames import Opcode
    from websockets.uri import parse_uri

    sim = simulator_factory(["BTCUSDT"], ping_interval=0.3, ping_timeout=0.8)
    proto = ClientProtocol(parse_uri(sim.ws_url + "/market/ws"))
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    try:
        proto.send_request(proto.connect())
        for data in proto.data_to_send():
            sock.sendall(data)
        pings, closed, t0 = 0, False, time.monotonic()
        while time.monotonic() - t0 < 5 and not closed:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            proto.receive_data(data)
            for ev in proto.events_received():
                if getattr(ev, "opcode", None) is Opcode.PING:
                    pings += 1
                if getattr(ev, "opcode", None) is Opcode.CLOSE:
                    closed = True
            proto.data_to_send()       # discard: never send the pong
        assert pings >= 1 and closed
        assert 0.8 < time.monotonic() - t0 < 4
    finally:
        sock.close()


def test_two_clients_get_identical_streams(sim):
    with connect(sim.ws_url + "/market/stream?streams=ethusdt@aggTrade") as a, \
            connect(sim.ws_url + "/stream?streams=ethusdt@aggTrade") as b:
        ma = [recv_json(a)["data"] for _ in range(20)]
        first = ma[0]["a"]
        mb = recv_until(b, lambda m: m["data"]["a"] >= first)["data"]
        got = [mb] + [recv_json(b)["data"] for _ in range(20)]
        by_id = {m["a"]: m for m in got}
        for m in ma:
            if m["a"] in by_id:
                assert by_id[m["a"]] == m
