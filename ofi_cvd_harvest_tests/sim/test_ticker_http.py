"""``/fapi/v1/ticker/24hr`` and the listing table over real loopback HTTP: Binance's shape and
weights, volumes from the market model (deterministic per seed), statuses and delivery
contracts in exchangeInfo, a listing changed while the simulator runs."""

from __future__ import annotations

import math
import time

import pytest

from ofi_cvd_harvest.protocol.vocabulary import TICKER_24HR_PATH, ticker_24hr_weight
from ofi_cvd_harvest.sim.listings import Listings, parse_statuses, quarter_expiry
from ofi_cvd_harvest.sim.symbols import spec_for
from ofi_cvd_harvest.sim.ticker import day_factor, mean_size

from .test_rest_http import get   # one loopback GET helper for the simulator's REST tests

FIELDS = {"symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "lastPrice",
          "lastQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume", "openTime",
          "closeTime", "firstId", "lastId", "count"}


def used(h: dict) -> int:
    return int(h["X-MBX-USED-WEIGHT-1m"])


@pytest.fixture(scope="module")
def sim():
    from ofi_cvd_harvest.sim.server import SimulatorThread
    listings = Listings({"NEWUSDT": "PENDING_TRADING"}, delivery=["BTCUSDT"], seed=3)
    with SimulatorThread(["BTCUSDT", "ETHUSDT", "NEWUSDT", "OLDUSDT"], seed=3, speed=30,
                         listings=listings) as st:
        time.sleep(0.5)
        yield st


def test_all_symbols_list_shape_and_weight(sim):
    _, h0, _ = get(sim.rest_url, "/fapi/v1/time")
    status, h, rows = get(sim.rest_url, TICKER_24HR_PATH)
    assert status == 200 and isinstance(rows, list)
    expiry = quarter_expiry(sim.server_time_ms())
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT", "NEWUSDT", "OLDUSDT",
                                           f"BTCUSDT_{expiry}"]
    for r in rows:
        assert set(r) == FIELDS
        assert all(isinstance(r[k], str) for k in ("volume", "quoteVolume", "lastPrice"))
        assert r["closeTime"] - r["openTime"] == 86_400_000 and r["count"] > 0
        assert float(r["quoteVolume"]) > 0 and math.isfinite(float(r["quoteVolume"]))
    # weight 40 for all symbols (the minute's counter may have rolled over: >= is not enough)
    assert used(h) - used(h0) == ticker_24hr_weight(False) == 40 or used(h) == 40


def test_one_symbol_is_an_object_of_weight_one(sim):
    _, h0, _ = get(sim.rest_url, "/fapi/v1/time")
    status, h, row = get(sim.rest_url, TICKER_24HR_PATH + "?symbol=ETHUSDT")
    assert status == 200 and isinstance(row, dict) and row["symbol"] == "ETHUSDT"
    assert used(h) - used(h0) == 1 or used(h) == 1
    expiry = quarter_expiry(sim.server_time_ms())
    status, _, row = get(sim.rest_url, f"{TICKER_24HR_PATH}?symbol=BTCUSDT_{expiry}")
    assert status == 200 and row["symbol"] == f"BTCUSDT_{expiry}"


@pytest.mark.parametrize("query,code", [("?symbol=ethusdt", -1121), ("?symbol=NOPEUSDT", -1121),
                                        ("?symbol=", -1102), ("?symbol=%00%22", -1121)])
def test_bad_symbol_is_binance_error(sim, query, code):
    status, _, body = get(sim.rest_url, TICKER_24HR_PATH + query)
    assert status == 400 and body["code"] == code


def test_volume_follows_the_market_model(sim):
    """quoteVolume = rate × 1 day × mean size × price × the seed's day factor: BTCUSDT's is
    tens of billions of USDT like the real one, and the count is the model's trade rate."""
    _, _, row = get(sim.rest_url, TICKER_24HR_PATH + "?symbol=BTCUSDT")
    spec = spec_for("BTCUSDT")
    f = day_factor(3, "BTCUSDT")
    assert row["count"] == round(spec.trade_rate * 86_400 * f)
    expected = row["count"] * mean_size(spec) * spec.price
    assert float(row["quoteVolume"]) == pytest.approx(expected, rel=1e-3)
    assert 1e9 < float(row["quoteVolume"]) < 1e11


def test_deterministic_per_seed(simulator_factory):
    a, b, c = (simulator_factory(["BTCUSDT", "ABCUSDT", "XYZUSDT"], seed=s) for s in (5, 5, 6))

    def vols(st):
        return {r["symbol"]: (r["volume"], r["quoteVolume"], r["count"])
                for r in get(st.rest_url, TICKER_24HR_PATH)[2]}
    assert vols(a) == vols(b)
    assert vols(a) != vols(c)


def test_exchange_info_statuses_delivery_and_a_listing_at_runtime(sim):
    _, _, info = get(sim.rest_url, "/fapi/v1/exchangeInfo")
    rows = {r["symbol"]: (r["status"], r["contractType"]) for r in info["symbols"]}
    expiry = quarter_expiry(sim.server_time_ms())
    assert rows == {"BTCUSDT": ("TRADING", "PERPETUAL"), "ETHUSDT": ("TRADING", "PERPETUAL"),
                    "NEWUSDT": ("PENDING_TRADING", "PERPETUAL"),
                    "OLDUSDT": ("TRADING", "PERPETUAL"),
                    f"BTCUSDT_{expiry}": ("TRADING", "CURRENT_QUARTER")}
    sim.call(lambda: sim.sim.rest.listings.set_status("NEWUSDT", "TRADING"))
    sim.call(lambda: sim.sim.rest.listings.set_status("OLDUSDT", "SETTLING"))
    _, _, info = get(sim.rest_url, "/fapi/v1/exchangeInfo")
    rows = {r["symbol"]: r["status"] for r in info["symbols"]}
    assert rows["NEWUSDT"] == "TRADING" and rows["OLDUSDT"] == "SETTLING"


def test_listing_statuses_refuse_nonsense():
    assert parse_statuses("solusdt=pending_trading, X1=SETTLING") == {
        "SOLUSDT": "PENDING_TRADING", "X1": "SETTLING"}
    for bad in ("SOLUSDT", "SOLUSDT=LISTED", "=TRADING"):
        with pytest.raises(ValueError):
            parse_statuses(bad)
    with pytest.raises(ValueError):
        Listings().set_status("BTCUSDT", "trading")


@pytest.mark.parametrize("day,expiry", [("2026-12-01", "261225"), ("2026-12-25", "261225"),
                                        ("2026-12-26", "270326"), ("2026-03-28", "260626")])
def test_quarter_expiry_is_the_last_friday_of_the_quarter(day, expiry):
    import datetime as dt
    ms = int(dt.datetime.fromisoformat(day + "T12:00:00+00:00").timestamp() * 1000)
    assert quarter_expiry(ms) == expiry


def test_a_replay_reports_its_recording():
    """A replayed recording's ticker is the statistics of its own trades."""
    from ofi_cvd_harvest.sim.replay import open_replay
    from ofi_cvd_harvest_tests.paths import HFT

    src = open_replay(HFT / "btcusdt_20240718.gz", speed=1)
    truth = src.ground_truth("BTCUSDT", all_trades=True)
    row = src.ticker_24hr("BTCUSDT")
    assert set(row) == FIELDS and row["count"] == len(truth) > 100
    assert float(row["volume"]) == pytest.approx(sum(t["qty"] for t in truth))
    assert float(row["quoteVolume"]) == pytest.approx(sum(t["qty"] * t["price"] for t in truth),
                                                      rel=1e-9)
    assert (row["firstId"], row["lastId"]) == (truth[0]["agg_trade_id"], truth[-1]["agg_trade_id"])
    assert float(row["lowPrice"]) == min(t["price"] for t in truth)
