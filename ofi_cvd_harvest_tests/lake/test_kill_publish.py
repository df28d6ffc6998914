"""``kill -9`` while a raw file's PUT hangs in flight: the next run publishes it once and
every simulator trade is in the lake exactly once (docs/deploy.md, "Object storage")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ofi_cvd_harvest.capture.publisher import spool_root
from ofi_cvd_harvest.storage.objectstore import ObjectStore

from ..capture.rawcheck import assert_trades_complete, truth_ids
from ..procs import reap
from .lakecheck import read_lake

ROOT = Path(__file__).resolve().parents[2]
SYMS = ("BTCUSDT", "ETHUSDT")


def _capture(sim, url: str, art: Path, seconds: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols", ",".join(SYMS),
           "--data-dir", url, "--artifacts-dir", str(art), "--ws-base-url", sim.ws_url,
           "--rest-base-url", sim.rest_url, "--prometheus-port", "0",
           "--run-seconds", str(seconds)]
    env = {**os.environ, "PARQUET_ROTATE_SEC": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_kill_9_during_a_publish_loses_nothing_and_publishes_nothing_twice(simulator, lake,
                                                                            tmp_path):
    url, proxy = lake
    art = tmp_path / "art"
    store, prefix = ObjectStore.for_url(url)
    proc = _capture(simulator, url, art, 60)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and len(store.list(prefix)) < 4:
            time.sleep(0.2)
        assert len(store.list(prefix)) >= 4, "the capture published nothing"
        proxy.stall()                      # the next PUT hangs with its bytes in the proxy
        time.sleep(2.5)                    # two rotations: a publish is in flight
        assert proxy.held > 0, "no request was in flight"
        proc.kill()                        # SIGKILL mid-PUT
        proc.wait(10)
    finally:
        reap(proc)
    proxy.down()                           # the half-sent request dies with its connection
    spooled = list(spool_root(art).glob("raw/date=*/**/*.parquet"))
    assert spooled, "the killed run left its unpublished files in the spool"
    before = dict(store_list(store, prefix, proxy))
    proxy.up()
    second = _capture(simulator, url, art, 4)
    try:
        assert second.wait(60) == 0
    finally:
        reap(second)
    after = dict(store.list(prefix))
    assert all(after[k] == size for k, size in before.items())      # nothing overwritten
    assert not list(spool_root(art).glob("raw/date=*/**/*.parquet"))
    for sym in SYMS:
        trades = read_lake(url, "agg_trade", sym)                  # exactly once, none lost
        assert_trades_complete(trades, truth_ids(simulator, sym))


def store_list(store, prefix, proxy):
    proxy.up()
    try:
        return store.list(prefix)
    finally:
        proxy.down()
