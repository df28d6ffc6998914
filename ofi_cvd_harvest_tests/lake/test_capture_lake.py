"""Capture into an s3:// lake (real moto_server on loopback): every trade once, only whole
objects visible, a store that goes away and comes back loses nothing (docs/deploy.md)."""

from __future__ import annotations

import threading

import pytest

from ofi_cvd_harvest.capture.publisher import spool_root
from ofi_cvd_harvest.capture.runner import run_capture_sync
from ofi_cvd_harvest.storage.objectstore import LakeUrl, ObjectStore

from ..capture.rawcheck import assert_trades_complete, capture_settings, truth_ids
from .lakecheck import Lister, read_lake

SYMS = ("BTCUSDT", "ETHUSDT")


def _spooled(s) -> list:
    return sorted(spool_root(s.artifacts_dir).glob("raw/date=*/**/*.parquet"))


def test_capture_into_s3_every_trade_once_and_only_whole_objects(simulator, lake, tmp_path):
    url, _ = lake
    s = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url, data_dir=LakeUrl(url),
                         parquet_rotate_sec=1.0)
    lister = Lister(url)
    lister.start()
    summary = run_capture_sync(s, run_seconds=5)
    lister.stop()
    lister.assert_only_whole_objects()
    for sym in SYMS:
        trades = read_lake(url, "agg_trade", sym)
        assert len(trades) > 20
        assert_trades_complete(trades, truth_ids(simulator, sym))
        assert len(read_lake(url, "book", sym)) > 20
    store, prefix = ObjectStore.for_url(url)
    assert len(store.list(prefix)) == summary.files_written
    assert summary.errors == 0 and not _spooled(s)


def _capture_with_outage(sim, lake, tmp_path, run_sec: float, down_at: float, down_sec: float):
    url, proxy = lake
    s = capture_settings(tmp_path, sim.ws_url, sim.rest_url, data_dir=LakeUrl(url),
                         parquet_rotate_sec=1.0)
    seen_spooled: list[int] = []

    def outage() -> None:
        threading.Event().wait(down_at)
        proxy.down()
        threading.Event().wait(down_sec - 1)
        seen_spooled.append(len(_spooled(s)))        # files wait in the spool meanwhile
        threading.Event().wait(1)
        proxy.up()

    t = threading.Thread(target=outage, daemon=True)
    t.start()
    summary = run_capture_sync(s, run_seconds=run_sec)
    t.join()
    assert seen_spooled and seen_spooled[0] >= 2
    for sym in SYMS:
        assert_trades_complete(read_lake(url, "agg_trade", sym), truth_ids(sim, sym))
    store, prefix = ObjectStore.for_url(url)
    assert len(store.list(prefix)) == summary.files_written
    assert not _spooled(s)


def test_store_down_for_seconds_mid_capture_loses_nothing(simulator, lake, tmp_path):
    _capture_with_outage(simulator, lake, tmp_path, run_sec=9, down_at=2, down_sec=4)


@pytest.mark.slow
def test_store_down_for_30_s_mid_capture_loses_nothing(simulator, lake, tmp_path):
    _capture_with_outage(simulator, lake, tmp_path, run_sec=45, down_at=5, down_sec=30)


def test_a_host_without_checkpoint_resumes_from_the_lake(simulator, lake, tmp_path):
    """A takeover host (no checkpoint, no spool) rebuilds the resume point from the raw
    objects: the trades between the two captures are healed, none missing, none twice."""
    import time

    url, _ = lake
    first = capture_settings(tmp_path / "host1", simulator.ws_url, simulator.rest_url,
                             data_dir=LakeUrl(url), parquet_rotate_sec=1.0)
    run_capture_sync(first, run_seconds=3)
    time.sleep(2)                                  # trades nobody captured live
    second = capture_settings(tmp_path / "host2", simulator.ws_url, simulator.rest_url,
                              data_dir=LakeUrl(url), parquet_rotate_sec=1.0)
    summary = run_capture_sync(second, run_seconds=3)
    assert sum(s.trades_healed for s in summary.symbols.values()) > 0
    for sym in SYMS:
        assert_trades_complete(read_lake(url, "agg_trade", sym), truth_ids(simulator, sym))
