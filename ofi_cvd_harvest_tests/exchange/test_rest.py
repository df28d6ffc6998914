"""REST client against a real loopback HTTP server: retries, 429/5xx back-off, pacing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ofi_cvd_harvest.exchange.rest import RestClient, RestError


class Script:
    """Queue of (status, headers, body) answers; the last one repeats."""

    def __init__(self):
        self.answers: list[tuple[int, dict, object]] = []
        self.paths: list[str] = []


@pytest.fixture
def server():
    script = Script()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            script.paths.append(self.path)
            status, headers, body = (script.answers.pop(0) if len(script.answers) > 1
                                     else script.answers[0])
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", script
    srv.shutdown()
    srv.server_close()


T0 = 1721347200000   # plausible trade times (protocol/plausible.py)
TRADES = [{"a": 10, "p": "100.5", "q": "0.1", "f": 1, "l": 1, "T": T0 + 5, "m": True},
          {"a": 11, "p": "100.6", "q": "0.2", "f": 2, "l": 3, "T": T0 + 6, "m": False}]


def test_endpoints_and_weight_header(server):
    url, script = server
    script.answers = [(200, {"X-MBX-USED-WEIGHT-1m": "42"}, {"serverTime": T0 + 123})]
    c = RestClient(url)
    assert asyncio.run(c.server_time()) == T0 + 123
    assert c.used_weight_1m == 42
    script.answers = [(200, {}, TRADES)]
    trades = asyncio.run(c.agg_trades("BTCUSDT", from_id=10, limit=5000))
    assert [t.agg_trade_id for t in trades] == [10, 11] and trades[0].event_ts_ms == T0 + 5
    assert "fromId=10" in script.paths[-1] and "limit=1000" in script.paths[-1]
    script.answers = [(200, {}, {"lastUpdateId": 9, "E": T0, "T": T0, "bids": [["1", "2"]],
                                 "asks": [["1.1", "3"]]})]
    assert asyncio.run(c.depth("BTCUSDT", 100)).last_update_id == 9


def test_429_honours_retry_after_then_succeeds(server):
    url, script = server
    script.answers = [(429, {"Retry-After": "0.3"}, {"code": -1003}), (200, {}, TRADES)]
    c = RestClient(url)
    t0 = time.monotonic()
    assert len(asyncio.run(c.agg_trades("BTCUSDT", from_id=10))) == 2
    assert time.monotonic() - t0 >= 0.3 and c.throttled == 1


def test_5xx_backs_off_and_gives_up(server):
    url, script = server
    script.answers = [(503, {}, {}), (502, {}, {}), (200, {}, {"serverTime": T0})]
    c = RestClient(url, backoff_base=0.05, seed=1)
    assert asyncio.run(c.server_time()) == T0 and c.server_errors == 2
    script.answers = [(500, {}, {})]
    c = RestClient(url, backoff_base=0.01, max_attempts=3)
    with pytest.raises(RestError, match="gave up after 3"):
        asyncio.run(c.server_time())


def test_4xx_is_not_retried(server):
    url, script = server
    script.answers = [(400, {}, {"code": -1121, "msg": "Invalid symbol."})]
    c = RestClient(url)
    with pytest.raises(RestError) as err:
        asyncio.run(c.agg_trades("NOPEUSDT", from_id=1))
    assert err.value.status == 400 and c.requests == 1


def test_connection_refused_is_retried_then_raised():
    c = RestClient("http://127.0.0.1:9", max_attempts=2, backoff_base=0.01, timeout=1)
    with pytest.raises(RestError, match="gave up"):
        asyncio.run(c.server_time())
    assert c.server_errors == 2


def test_pacing_stays_under_the_weight_budget():
    c = RestClient("http://127.0.0.1:9", weight_limit_per_min=100, safety=1.0)
    now = 1000.0
    for i in range(5):
        assert c._pace_delay(20, now + i) == 0.0
        c._own.append((now + i, 20))
    assert c._pace_delay(20, now + 5) == pytest.approx(55.0)   # wait until the first ages out
    assert c._pace_delay(20, now + 61) == 0.0
    # the server's own count also gates us, until its minute window resets
    c2 = RestClient("http://127.0.0.1:9", weight_limit_per_min=2400)
    c2.used_weight_1m, c2._header_minute = 1910, int(6000.5 // 60)
    assert c2._pace_delay(20, 6000.5) > 0
    assert c2._pace_delay(20, 6060.5) == 0.0


def test_an_implausible_server_time_is_refused(server):
    """The capture centres its window of plausible frame times on this answer: a hostile
    ``serverTime`` must not make it reject every true frame."""
    url, script = server
    for bad in (10**16, -1, 0):
        script.answers = [(200, {}, {"serverTime": bad})]
        with pytest.raises(RestError, match="implausible"):
            asyncio.run(RestClient(url).server_time())
