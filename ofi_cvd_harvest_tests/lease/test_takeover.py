"""Takeover from a local lake: a capture with no checkpoint rebuilds its resume point from the
raw files only under a shard lease (capture/resume.py "Takeover"); without one it starts afresh,
as a capture beside another one in the same data directory must. The leased case runs by default
as part of the failover test (test_failover.py); here it is the slow twin of the unleased one."""

from __future__ import annotations

import json
import time

import polars as pl
import pytest

from ofi_cvd_harvest.capture.runner import run_capture_sync

from ..capture.rawcheck import capture_settings, read


@pytest.mark.parametrize("leased", [pytest.param(True, marks=pytest.mark.slow), False])
def test_empty_artifacts_rebuild_from_local_lake_only_under_a_lease(simulator, lease_db, tmp_path,
                                                                   leased):
    lease = dict(shard="L", lease_url=lease_db) if leased else {}
    first = capture_settings(tmp_path, simulator.ws_url, simulator.rest_url,
                             artifacts_dir=tmp_path / "host1", parquet_rotate_sec=1.0, **lease)
    run_capture_sync(first, run_seconds=2.5)
    time.sleep(1.5)                                 # trades nobody captured live
    second = first.replace(artifacts_dir=tmp_path / "host2")
    summary = run_capture_sync(second, run_seconds=2.5)
    ops = read(tmp_path / "data", "ops")
    rebuilt = ops.filter(pl.col("event_type") == "checkpoint_rebuilt")["meta_json"].to_list()
    healed = sum(s.trades_healed for s in summary.symbols.values())
    if leased:
        assert rebuilt and json.loads(rebuilt[0])["source"] == "lake"
        assert healed > 0
    else:
        assert not rebuilt and healed == 0
