"""The universe from the exchange (universe/market.py): only TRADING perpetuals, their 24 h
quote volume, hostile answers refused in one line — against the simulator over loopback HTTP
and a deliberately broken server."""

from __future__ import annotations

import http.server
import threading

import pytest

from ofi_cvd_harvest.sim.listings import Listings
from ofi_cvd_harvest.universe.market import (UniverseError, fetch_universe, quote_volumes,
                                             tradable, universe)

from ..procs import free_port


def test_only_trading_perpetuals_with_valid_names():
    info = {"symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING", "contractType": "PERPETUAL"},
        {"symbol": "BTCUSDT_261225", "status": "TRADING", "contractType": "CURRENT_QUARTER"},
        {"symbol": "NEWUSDT", "status": "PENDING_TRADING", "contractType": "PERPETUAL"},
        {"symbol": "OLDUSDT", "status": "SETTLING", "contractType": "PERPETUAL"},
        {"symbol": "../../etc", "status": "TRADING", "contractType": "PERPETUAL"},
        {"symbol": 42, "status": "TRADING", "contractType": "PERPETUAL"},
        {"symbol": "ETHUSDT", "status": "TRADING", "contractType": "PERPETUAL"},
        {"symbol": "ETHUSDT", "status": "TRADING", "contractType": "PERPETUAL"},
        "junk", None,
    ]}
    good, bad = tradable(info)
    assert good == ["BTCUSDT", "ETHUSDT"]
    assert bad == ["'../../etc'", "42"]


@pytest.mark.parametrize("info", [None, [], {}, {"symbols": "BTCUSDT"}, "x"])
def test_exchange_info_of_the_wrong_shape_is_one_error(info):
    with pytest.raises(UniverseError, match="exchangeInfo answer has no 'symbols' list"):
        tradable(info)


def test_quote_volumes_hostile_values_are_zero():
    tickers = [{"symbol": "A1", "quoteVolume": "12.5"}, {"symbol": "B1", "quoteVolume": "nan"},
               {"symbol": "C1", "quoteVolume": "-3"}, {"symbol": "D1", "quoteVolume": None},
               {"symbol": "E1", "quoteVolume": "1e400"}, {"symbol": 7}, "junk"]
    assert quote_volumes(tickers, ["A1", "B1", "C1", "D1", "E1", "F1"]) == {
        "A1": 12.5, "B1": 0.0, "C1": 0.0, "D1": 0.0, "E1": 0.0, "F1": 0.0}
    with pytest.raises(UniverseError, match="not a list"):
        quote_volumes({"symbol": "A1"}, ["A1"])
    assert universe({"symbols": []}, []).volumes == {}


def test_from_the_simulator(simulator_factory):
    st = simulator_factory(["BTCUSDT", "ETHUSDT", "NEWUSDT", "OLDUSDT"], seed=4,
                           listings=Listings({"NEWUSDT": "PENDING_TRADING",
                                              "OLDUSDT": "SETTLING"}, ["ETHUSDT"], seed=4))
    uni = fetch_universe(st.rest_url)
    assert sorted(uni.volumes) == ["BTCUSDT", "ETHUSDT"] and not uni.skipped
    assert all(v > 1e8 for v in uni.volumes.values())
    assert fetch_universe(st.rest_url) == uni                 # deterministic per seed
    st.call(lambda: st.sim.rest.listings.set_status("NEWUSDT", "TRADING"))
    assert sorted(fetch_universe(st.rest_url).volumes) == ["BTCUSDT", "ETHUSDT", "NEWUSDT"]


def test_unreachable_exchange_is_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UniverseError) as err:
        fetch_universe(url, attempts=1, timeout=2)
    assert str(err.value).startswith(f"universe from {url}: ") and "\n" not in str(err.value)


class _Garbage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = b"<html>not json" if "exchangeInfo" in self.path else b"[]"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_server_answering_garbage_is_one_line():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        with pytest.raises(UniverseError, match="^universe from http://127.0.0.1:"):
            fetch_universe(f"http://127.0.0.1:{srv.server_address[1]}", attempts=1)
    finally:
        srv.shutdown()
        srv.server_close()
