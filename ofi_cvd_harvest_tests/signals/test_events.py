"""Signal events: hysteresis, divergence, ops events."""

from __future__ import annotations

import orjson
import polars as pl

from ofi_cvd_harvest.signals.events import (divergence_events, events_table, ops_events,
                                             threshold_events, threshold_fires)

from .helpers import settings


def fires(t, z, direction=1, rearm_sec=5.0, cooldown_sec=120.0):
    return threshold_fires(pl.Series(t, dtype=pl.Int64), pl.Series(z, dtype=pl.Float64), 2.0, 1.0,
                           rearm_sec, cooldown_sec, direction).tolist()


def test_without_time_the_machine_is_the_old_hysteresis():
    z = [0, 2.5, 3, 1.5, 2.2, 0.5, 2.1, -2.5, -0.5, -2.1, None, -3]
    t = list(range(len(z)))
    assert fires(t, z, +1, 0, 0) == [1, 6]
    assert fires(t, z, -1, 0, 0) == [7, 9]


def test_rearm_needs_quiet_for_rearm_sec_and_the_cooldown():
    s = 1000
    t = [0, 1 * s, 2 * s, 4 * s, 100 * s, 119 * s, 121 * s, 125 * s, 126 * s, 127 * s]
    z = [0, 2.5, 0.2, 0.1, 0.1, 2.5, 0.3, 0.3, 0.4, 2.4]
    # fires at 1 s; quiet from 2 s, but within the 120 s cool-down the 119 s crossing cannot fire
    # (and breaks the quiet run); the run from 121 s is 5 s long at 126 s: re-armed, fires at 127 s
    assert fires(t, z) == [1, 9]
    assert fires(t, z, rearm_sec=0, cooldown_sec=0) == [1, 5, 9]    # plain hysteresis
    assert fires(t, z, rearm_sec=0) == [1, 9]                       # the cool-down alone
    assert fires(t, z, cooldown_sec=0) == [1, 5, 9]                 # 2..100 s is quiet enough
    # a rise above the re-arm level breaks the quiet run: 125 s -> 1.5 restarts it at 126 s
    z2 = list(z)
    z2[7] = 1.5
    assert fires(t, z2) == [1]
    # null z (warm-up) neither breaks nor extends the run
    z3 = list(z)
    z3[7] = None
    assert fires(t, z3) == [1, 9]


def test_same_type_other_direction_has_its_own_machine():
    t = [0, 1000, 2000, 3000]
    z = [2.5, -2.5, 2.6, -2.6]
    assert fires(t, z, +1) == [0] and fires(t, z, -1) == [1]


def test_events_carry_seconds_since_previous_and_engine_clock():
    t = [1000, 2000, 3000, 200_000, 210_000, 400_000]
    z = [2.5, 0.0, 0.0, 0.0, 3.0, 2.2]
    df = pl.DataFrame({"ts_ms": [990, 2000, 3000, 200_000, 209_000, 400_000], "t": t, "z": z,
                       "regime": ["Q_L"] * 6})
    up, down = threshold_events(df, "z", 2.0, 1.0, "fusion_long", "fusion_short", ["z", "regime"],
                                settings().signals)
    assert up["ts_ms"].to_list() == [1000, 210_000] and len(down) == 0   # stamped with t
    metas = [orjson.loads(m) for m in up["meta_json"]]
    assert metas[0]["since_prev_sec"] is None and metas[1]["since_prev_sec"] == 209.0
    assert metas[1]["z"] == 3.0 and metas[1]["direction"] == "up" and metas[1]["category"] == "signal"


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
