"""The exporter's once-a-second update (capture/exporter.py) sets every per-symbol series to what
it means, also when series are looked up once and gauges set only on change: trailing 10 s
trade rate, message ages, duplicate rate, dedup hits, empty minutes and the latency histogram."""

from __future__ import annotations

import logging

from ofi_cvd_harvest.capture.exporter import Exporter
from ofi_cvd_harvest.capture.symstate import SymState
from ofi_cvd_harvest.monitoring import metrics

from ..metricvalue import metric

SYMS = ("EXPAUSDT", "EXPBUSDT", "EXPCUSDT")   # names no other test uses: the registry is global


def test_series_after_each_update():
    metrics.init_capture(SYMS, ["ex"], [])
    states = {s: SymState(100, s) for s in SYMS}
    t0 = (states["EXPAUSDT"].checked_min + 1) * 60_000   # the next minute's start
    ex = Exporter(None, logging.getLogger("test_exporter"), None, {"ex": 0}, states, t0 - 5000)
    a, b = states["EXPAUSDT"], states["EXPBUSDT"]     # EXPC never receives anything
    lat_b0 = metric("latency_ms_count", symbol="EXPBUSDT")
    sum_b0 = metric("latency_ms_sum", symbol="EXPBUSDT")
    le5_b0 = metric("latency_ms_bucket", symbol="EXPBUSDT", le="5.0")
    dedup_a0 = metric("dedup_hits_total", symbol="EXPAUSDT")
    empty_c0 = metric("empty_buckets_total", symbol="EXPCUSDT")
    all_lat = []
    for sec in range(15):
        now = t0 + sec * 1000
        if sec < 12:   # A: 3 trades a second until second 12, a duplicate every other second
            a.ws_count += 3
            a.last_trade_recv = now - 200
            a.trade_minutes.add(now // 60_000)
            a.dups += sec % 2
        if sec % 5 == 0:   # B: a burst every 5 s, book rows all along
            lat = [1, 5, 6, 300 + sec]
            b.lat.extend(lat)
            all_lat += lat
            b.ws_count += len(lat)
            b.last_trade_recv = now - 50
        b.last_book_recv = now - 10
        ex.update(now)
        first = max(0, sec - 10)            # the oldest second of the trailing window
        want_a = 3 * len([s for s in range(first + 1, sec + 1) if s < 12]) / max(1, sec - first)
        assert metric("recv_rate_tps", symbol="EXPAUSDT") == want_a, sec
        assert metric("last_message_age_seconds", symbol="EXPAUSDT", stream="agg_trade") == (
            (now - a.last_trade_recv) / 1000)
        assert metric("last_message_age_seconds", symbol="EXPCUSDT", stream="book") == (
            (now - (t0 - 5000)) / 1000)          # never received: the capture's age
        assert metric("last_message_age_seconds", symbol="EXPBUSDT", stream="book") == 0.01
        assert metric("duplicate_rate", symbol="EXPAUSDT") == a.dups / (a.ws_count + a.dups)
        assert metric("dedup_hits_total", symbol="EXPAUSDT") - dedup_a0 == a.dups
        assert metric("latency_ms_count", symbol="EXPBUSDT") - lat_b0 == len(all_lat)
        assert metric("latency_ms_sum", symbol="EXPBUSDT") - sum_b0 == sum(all_lat)
        assert metric("latency_ms_bucket", symbol="EXPBUSDT", le="5.0") - le5_b0 == (
            2 * len([v for v in all_lat if v == 1]))
        assert a.lat == [] and b.lat == []
    assert metric("duplicate_rate", symbol="EXPCUSDT") == 0.0
    # a minute later: A's and B's minutes had trades, C's did not (two closed minutes)
    ex.update(t0 + 120_000 + 1)
    assert metric("empty_buckets_total", symbol="EXPCUSDT") - empty_c0 == 2
