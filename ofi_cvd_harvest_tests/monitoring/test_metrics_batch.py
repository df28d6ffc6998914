"""``observe_many`` and ``observe_groups`` give exactly the series of ``Histogram.observe``
called value by value; ``GaugeSeries`` reads like ``labels(...).set`` called every time."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from ofi_cvd_harvest.monitoring.metrics import (LATENCY_BUCKETS_MS, GaugeSeries, observe_groups,
                                                observe_many)


def _pair():
    reg_a, reg_b = CollectorRegistry(), CollectorRegistry()
    a = Histogram("lat", "x", ["symbol"], buckets=LATENCY_BUCKETS_MS, registry=reg_a)
    b = Histogram("lat", "x", ["symbol"], buckets=LATENCY_BUCKETS_MS, registry=reg_b)
    return (reg_a, a.labels("BTCUSDT")), (reg_b, b.labels("BTCUSDT"))


def _families():
    reg_a, reg_b = CollectorRegistry(), CollectorRegistry()
    return ((reg_a, Histogram("lat", "x", ["symbol"], buckets=LATENCY_BUCKETS_MS, registry=reg_a)),
            (reg_b, Histogram("lat", "x", ["symbol"], buckets=LATENCY_BUCKETS_MS, registry=reg_b)))


def _series(reg) -> list[str]:
    return [ln for ln in generate_latest(reg).decode().splitlines()
            if ln.startswith("lat_") and "_created" not in ln]


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(st.one_of(
    st.integers(-50, 20_000), st.sampled_from(list(LATENCY_BUCKETS_MS))), max_size=60), max_size=4))
def test_same_exposition_as_one_by_one(batches):
    (reg_a, a), (reg_b, b) = _pair()
    for batch in batches:
        for v in batch:
            a.observe(v)
        observe_many(b, batch)
    assert _series(reg_a) == _series(reg_b)


def test_boundary_values_fall_in_their_own_bucket():
    (_, _), (reg, h) = _pair()
    observe_many(h, [5, 5, 6, 5000, 5001])
    lines = dict(ln.rsplit(" ", 1) for ln in _series(reg))
    assert float(lines['lat_bucket{le="5.0",symbol="BTCUSDT"}']) == 2
    assert float(lines['lat_bucket{le="10.0",symbol="BTCUSDT"}']) == 3
    assert float(lines['lat_bucket{le="5000.0",symbol="BTCUSDT"}']) == 4
    assert float(lines['lat_bucket{le="+Inf",symbol="BTCUSDT"}']) == 5
    assert float(lines['lat_count{symbol="BTCUSDT"}']) == 5
    assert float(lines['lat_sum{symbol="BTCUSDT"}']) == 5 + 5 + 6 + 5000 + 5001


_VALUES = st.lists(st.one_of(st.integers(-50, 20_000), st.sampled_from(list(LATENCY_BUCKETS_MS))),
                   max_size=40)


@settings(max_examples=150, deadline=None)
@given(ticks=st.lists(st.dictionaries(st.sampled_from(["A", "B", "C", "D"]), _VALUES, max_size=4),
                      max_size=4))
def test_groups_same_exposition_as_one_by_one(ticks):
    """Several symbols per call (some empty, some absent), several calls."""
    (reg_a, a), (reg_b, b) = _families()
    for sym in "ABCD":   # every series exists on both sides (the capture creates them at start)
        a.labels(sym)
        b.labels(sym)
    for tick in ticks:
        for sym, vals in tick.items():
            for v in vals:
                a.labels(sym).observe(v)
        observe_groups([b.labels(s) for s in tick], list(tick.values()))
    assert _series(reg_a) == _series(reg_b)


def test_groups_boundaries_and_empty_groups():
    (reg_a, a), (reg_b, b) = _families()
    groups = {"A": [5, 5, 6, 5000, 5001], "B": [], "C": [10**9, -3, 120, 121]}
    for sym in groups:
        a.labels(sym)
        b.labels(sym)
    for sym, vals in groups.items():
        for v in vals:
            a.labels(sym).observe(v)
    observe_groups([b.labels(s) for s in groups], list(groups.values()))
    observe_groups([], [])
    assert _series(reg_a) == _series(reg_b)
    assert 'lat_bucket{le="5.0",symbol="A"} 2.0' in _series(reg_b)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.5, -3.0]), max_size=12))
def test_gauge_series_reads_like_setting_every_time(values):
    """Whatever an earlier writer left in the gauge, a new GaugeSeries's first value lands, and
    after every later value the gauge reads as if ``labels().set`` had run each time."""
    reg = CollectorRegistry()
    g = Gauge("owed", "x", ["symbol", "side"], registry=reg)
    g.labels("BTCUSDT", "bid").set(7.0)               # an older instance's figure
    ser = GaugeSeries(g, "BTCUSDT", "bid")
    for v in [0.0] + values:
        ser.set(v)
        assert reg.get_sample_value("owed", {"symbol": "BTCUSDT", "side": "bid"}) == v
