"""The covered window: boundary minutes judged when connected for at least half of them."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ofi_cvd_harvest.dq.source import Scope
from ofi_cvd_harvest.dq.window import covered_window
from ofi_cvd_harvest.schemas import RAW_SCHEMAS
from ofi_cvd_harvest.storage import layout

from . import dataset as ds

T0, _ = layout.day_bounds_ms(ds.DATE)
H = T0 + 3_600_000            # 01:00:00


def window_for(root, events):
    """Replace the partition's ops with ``events`` ((recv_ts_ms, event_type), symbol "")."""
    for f in (root / layout.raw_dir(ds.DATE, ds.SYMBOL, "ops")).glob("*.parquet"):
        f.unlink()
    ops = pl.DataFrame({"recv_ts_ms": [t for t, _ in events], "symbol": [""] * len(events),
                        "event_type": [e for _, e in events], "meta_json": [json.dumps({})] * len(events)})
    ds.write(root, layout.raw_file(ds.DATE, ds.SYMBOL, "ops", 1, 0), ops, RAW_SCHEMAS["ops"])
    return covered_window(Scope(root, ds.SYMBOL, (ds.DATE,)))


@pytest.mark.parametrize("connect_s,disconnect_s,first_min,minutes", [
    (29, 600 + 29, 0, 10),     # 31 s of 01:00 connected -> judged; 29 s of 01:10 -> not
    (30, 600 + 30, 0, 11),     # exactly half counts, both ends
    (31, 600 + 31, 1, 10),
    (0, 600, 0, 10),
])
def test_boundary_minutes(tmp_path, connect_s, disconnect_s, first_min, minutes):
    w = window_for(tmp_path, [(H + connect_s * 1000, "connect"), (H + 300_000, "reconnect"),
                              (H + disconnect_s * 1000, "disconnect"), (H + disconnect_s * 1000 + 5, "shutdown")])
    assert w.source == "ops"
    assert (w.start_ms - H) // 60_000 == first_min and w.minutes == minutes
    assert w.hours == pytest.approx((disconnect_s - connect_s + 0.005) / 3600)


@pytest.mark.parametrize("connect_s,disconnect_s,minutes", [
    (23, 31, 0),      # 8 s around the half-minute: not half of any minute
    (0, 29, 0),
    (10, 40, 1),      # exactly half of one minute
    (0, 59, 1),
])
def test_a_capture_inside_one_minute(tmp_path, connect_s, disconnect_s, minutes):
    """Both ends in one minute: it is judged only if connected for at least half of it (each
    boundary alone would round a short capture around :30 up to a whole minute)."""
    w = window_for(tmp_path, [(H + connect_s * 1000, "connect"),
                              (H + disconnect_s * 1000, "disconnect")])
    assert w.minutes == minutes


def test_still_connected_ends_with_the_last_trade(tmp_path):
    b = ds.build_partition(tmp_path)
    w = window_for(tmp_path, [(b.connect_ms, "connect")])
    last_trade = b.disconnect_ms - 500 - (b.disconnect_ms - 500 - b.connect_ms - 500) % 500
    assert w.end_ms == (w.last_ms // 60_000 + 1) * 60_000
    assert abs(w.last_ms - last_trade) <= 500


def test_non_connection_events_are_ignored(tmp_path):
    ds.build_partition(tmp_path)
    w = window_for(tmp_path, [(H + 5_000, "clock_check"), (H + 9_000, "gap_detected")])
    assert w.source == "trades"
