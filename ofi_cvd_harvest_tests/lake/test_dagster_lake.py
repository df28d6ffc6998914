"""Dagster on an s3:// lake: the resource takes the URL, the raw sensor's scan lists only
today's and yesterday's new objects and remembers what it saw."""

from __future__ import annotations

import time

import pyarrow as pa

from ofi_cvd_harvest import schemas
from ofi_cvd_harvest.orchestration.raw_assets import latest_raw_age_sec, raw_symbols, scan_raw
from ofi_cvd_harvest.orchestration.resources import HarvestSettings
from ofi_cvd_harvest.orchestration.sensors import _raw_mtime
from ofi_cvd_harvest.storage import layout
from ofi_cvd_harvest.storage.objectstore import LakeUrl


def _ops(n: int, ts: int) -> pa.Table:
    return pa.Table.from_pylist([{"recv_ts_ms": ts + i, "symbol": "BTCUSDT", "event_type": "x",
                                  "meta_json": "{}"} for i in range(n)], schema=schemas.OPS)


def test_resource_and_raw_scan_on_s3(lake):
    url, _ = lake
    res = HarvestSettings(data_dir=url)
    assert isinstance(res.settings().data_dir, LakeUrl)
    storage = res.storage()
    now = time.time()
    today = layout.utc_date(int(now * 1000))
    old = layout.utc_date(int(now * 1000) - 5 * 86_400_000)
    ms = int(now * 1000)
    storage.write_parquet(layout.raw_file(today, "BTCUSDT", "ops", ms, 1), _ops(3, ms))
    storage.write_parquet(layout.raw_file(old, "BTCUSDT", "ops", ms, 1), _ops(9, ms))   # not listed
    ups, cursor = scan_raw(storage, None, now)
    assert [(u.date, u.stream, u.files, u.rows) for u in ups] == [(today, "ops", 1, 3)]
    ups, cursor = scan_raw(storage, cursor, now + 1000)            # due, nothing new
    assert ups == []
    storage.write_parquet(layout.raw_file(today, "BTCUSDT", "ops", ms + 1, 2), _ops(4, ms))
    ups, cursor = scan_raw(storage, cursor, now + 2000)
    assert [(u.files, u.rows, u.latest_file) for u in ups] == [
        (2, 7, f"part-{ms + 1}-000002.parquet")]
    from ofi_cvd_harvest.orchestration import raw_objects

    raw_objects._seen.clear()
    first = raw_objects.newest_mtime(storage, f"raw/date={today}/symbol=BTCUSDT/stream=ops")
    storage.write_parquet(layout.raw_file(today, "BTCUSDT", "ops", ms + 2, 3), _ops(1, ms))
    assert raw_objects.newest_mtime(storage, f"raw/date={today}/symbol=BTCUSDT/stream=ops") == first
    again = raw_objects.newest_mtime(storage, f"raw/date={today}/symbol=BTCUSDT/stream=ops", ttl=0)
    assert again is not None and again >= first
    assert _raw_mtime(storage, today, "BTCUSDT") is not None
    assert _raw_mtime(storage, old, "ETHUSDT") is None
    assert 0 <= latest_raw_age_sec(storage, today, ["BTCUSDT"], time.time() + 5) < 120
    # the raw sensor's new symbols: today's prefixes, valid names only (old days not listed)
    storage.write_parquet(layout.raw_file(today, "SOLUSDT", "ops", ms, 1), _ops(1, ms))
    storage.write_parquet(f"raw/date={today}/symbol=bad|x/stream=ops/part-1-000001.parquet",
                          _ops(1, ms))
    storage.write_parquet(layout.raw_file(old, "XRPUSDT", "ops", ms, 1), _ops(1, ms))
    assert raw_symbols(storage, now) == {"BTCUSDT", "SOLUSDT"}


def test_replay_reads_a_recording_from_the_store(simulator, lake, tmp_path):
    from ofi_cvd_harvest.capture.runner import run_capture_sync
    from ofi_cvd_harvest.sim.recordings import KIND_DEPTH, KIND_TRADE, load
    from ofi_cvd_harvest.sim.replay import open_replay

    from ..capture.rawcheck import capture_settings

    url, _ = lake
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url, data_dir=LakeUrl(url))
    run_capture_sync(s, run_seconds=3)
    recs = load(url)
    trades = [r for r in recs if r.kind == KIND_TRADE]
    assert any(r.kind == KIND_DEPTH for r in recs) and len(trades) > 10
    assert open_replay(url, speed=100.0, autostart=False).name == url
    ids = [r.data["a"] for r in trades if r.symbol == "BTCUSDT"]
    assert len(ids) == len(set(ids))


def test_yesterday_is_listed_only_in_the_first_hour_after_midnight():
    import datetime as dt

    from ofi_cvd_harvest.orchestration.raw_objects import _dates

    at = lambda h, m: dt.datetime(2026, 1, 2, h, m, tzinfo=dt.timezone.utc).timestamp()  # noqa: E731
    assert _dates(at(0, 30)) == ["2026-01-01", "2026-01-02"]
    assert _dates(at(1, 30)) == ["2026-01-02"]
