"""Signal events: hysteresis, divergence, ops events."""

from __future__ import annotations

import orjson
import polars as pl

from ofi_cvd_harvest.signals.events import divergence_events, events_table, hysteresis_fire, ops_events

from .helpers import settings


def test_hysteresis_rearms_only_below_rearm_level():
    z = pl.Series([0, 2.5, 3, 1.5, 2.2, 0.5, 2.1, -2.5, -0.5, -2.1, None, -3], dtype=pl.Float64)
    up = hysteresis_fire(z, 2.0, 1.0, +1)
    down = hysteresis_fire(z, 2.0, 1.0, -1)
    assert [i for i, v in enumerate(up) if v] == [1, 6]
    assert [i for i, v in enumerate(down) if v] == [7, 9]


def test_divergence_bullish_once_per_episode():
    rows = []
    for i in range(100):                   # 0..990 s: flat price, steady selling
        rows.append((i * 10_000, 100.0, -1.0))
    rows += [(1_000_000, 99.0, 1.0), (1_010_000, 98.5, 1.0), (1_020_000, 98.5, 1.0),
             (1_030_000, 98.0, -10.0)]     # last: CVD makes a new low too -> no divergence
    t = [r[0] for r in rows]
    df = pl.DataFrame({"ts_ms": t, "t": t, "price": [r[1] for r in rows],
                       "delta": [r[2] for r in rows], "regime": ["Q_L"] * len(rows)})
    parts = divergence_events(df, settings().signals)
    bull, bear = parts
    assert bull["ts_ms"].to_list() == [1_000_000] and len(bear) == 0
    meta = orjson.loads(bull["meta_json"][0])
    assert meta["category"] == "signal" and meta["price"] == 99.0 and meta["price_low"] == 100.0
    assert meta["cum_delta"] == -99.0 and meta["cvd_low"] == -100.0


def test_ops_events_and_order():
    ops = pl.DataFrame({"recv_ts_ms": [5, 1], "symbol": ["X", "X"], "event_type": ["gap", "connect"],
                        "meta_json": ['{"a": 1, "category": "x"}', "not json"]})
    ev = ops_events(ops)
    assert [orjson.loads(m) for m in ev["meta_json"]] == [{"category": "ops", "a": 1},
                                                        {"category": "ops", "raw": "not json"}]
    sig = pl.DataFrame({"ts_ms": [3], "event_type": ["fusion_long"], "meta_json": ['{"category":"signal"}']})
    table = events_table(sig, ops, "BTCUSDT")
    assert table["ts_ms"].to_list() == [1, 3, 5]
    assert table.columns == ["ts_ms", "symbol", "event_type", "meta_json"]
