"""Forward returns: last trade at or before t+h, stale horizons and midnight handled."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from ofi_cvd_harvest.research.grid import asof_values, grid_times
from ofi_cvd_harvest.research.returns import PricePath
from ofi_cvd_harvest.storage.layout import day_bounds_ms

D0, D1 = day_bounds_ms("2025-02-03")


def prices(rows):
    return pl.DataFrame(rows, schema={"agg_trade_id": pl.Int64, "event_ts_ms": pl.Int64,
                                      "price": pl.Float64}, orient="row")


def test_last_trade_at_or_before_and_bps():
    p = PricePath.of(prices([(1, D0 + 500, 100.0), (2, D0 + 1000, 101.0), (3, D0 + 1000, 102.0),
                             (4, D0 + 12_000, 103.0)]), None, D1)
    assert math.isnan(p.at(np.array([D0]))[0])
    assert p.at(np.array([D0 + 999, D0 + 1000, D0 + 11_999])).tolist() == [100.0, 102.0, 102.0]
    ret, pm = p.forward(np.array([D0 + 1000, D0 + 2000, D0 + 3000]), 10)
    assert ret[0] == pytest.approx(1e4 * (102.0 - 102.0) / 102.0)     # t+10 s = 11 s: still 102
    assert ret[1] == pytest.approx(1e4 * (103.0 - 102.0) / 102.0)     # 12 s: 103
    assert math.isnan(ret[2]) and not pm.any()                        # 13 s: past the last trade


def test_engine_clock_orders_out_of_order_event_times():
    # id 3 has an earlier E than id 2 (jitter): the clock is the running max, as the engine's
    p = PricePath.of(prices([(3, D0 + 900, 3.0), (1, D0 + 100, 1.0), (2, D0 + 1000, 2.0)]), None, D1)
    assert p.clock.tolist() == [D0 + 100, D0 + 1000, D0 + 1000]
    assert p.at(np.array([D0 + 950, D0 + 1000])).tolist() == [1.0, 3.0]


def test_past_midnight_is_null_and_counted_without_the_next_day_and_filled_with_it():
    today = prices([(1, D1 - 5000, 100.0), (2, D1 - 1, 100.0)])
    t = np.array([D1 - 5000])
    ret, pm = PricePath.of(today, None, D1).forward(t, 10)
    assert math.isnan(ret[0]) and pm.tolist() == [True]
    nxt = prices([(2, D1 - 1, 100.0), (3, D1 + 4000, 101.0), (4, D1 + 60_000, 99.0)])
    ret, pm = PricePath.of(today, nxt, D1).forward(t, 10)
    assert ret[0] == pytest.approx(100.0) and not pm.any()          # 101 vs 100 = 100 bps
    ret, pm = PricePath.of(today, nxt, D1).forward(t, 300)           # past the next day's data
    assert math.isnan(ret[0]) and not pm.any()


def test_grid_and_asof_signal_values():
    g = grid_times(D0 + 1500, D0 + 4000, D0, D1)
    assert (g - D0).tolist() == [2000, 3000, 4000]
    df = pl.DataFrame({"ts_ms": [D0 + 2000, D0 + 2500, D0 + 3999], "z": [1.0, None, 3.0]})
    assert np.array_equal(asof_values(df, "z", g), np.array([1.0, np.nan, 3.0]), equal_nan=True)
    assert grid_times(D1 + 10, D1 + 20, D0, D1).size == 0
