"""``ofi-cvd-harvest simulate`` as a real process: URLs printed when ready, SIGTERM stops it and
writes the ground-truth dump; bad arguments exit non-zero with one clear line."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pyarrow.parquet as pq
import pytest
from websockets.asyncio.client import connect

from ofi_cvd_harvest_tests.paths import REALDATA

from ..procs import reap, terminate

CMD = [sys.executable, "-m", "ofi_cvd_harvest.cli", "simulate"]


def test_simulate_process_serves_and_dumps_on_sigterm(tmp_path):
    dump = tmp_path / "truth.parquet"
    p = subprocess.Popen(CMD + ["--port", "0", "--symbols", "BTCUSDT,ABCUSDT", "--seed", "3",
                                "--speed", "20", "--dump-trades", str(dump)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = dict(p.stdout.readline().strip().split("=", 1) for _ in range(2))
        assert lines["ws_url"].startswith("ws://127.0.0.1:")
        rest = lines["rest_url"]
        with urllib.request.urlopen(rest + "/fapi/v1/time", timeout=5) as r:
            assert "serverTime" in json.loads(r.read())
        time.sleep(1.0)
        with urllib.request.urlopen(rest + "/fapi/v1/aggTrades?symbol=BTCUSDT&limit=1000",
                                    timeout=5) as r:
            seen = json.loads(r.read())
        assert seen
        out, err = terminate(p)
    finally:
        reap(p)
    assert p.returncode == 0, err
    assert "dumped" in out
    t = pq.read_table(dump).to_pylist()
    ids = {r["agg_trade_id"] for r in t if r["symbol"] == "BTCUSDT"}
    assert {x["a"] for x in seen} <= ids
    assert {r["symbol"] for r in t} == {"BTCUSDT", "ABCUSDT"}
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("args", [
    ["--symbols", "btc/usd"],
    ["--speed", "0"],
    ["--speed", "fast"],
    ["--faults", "drop=2"],
    ["--faults", "explode=0.1"],
])
def test_bad_arguments(args):
    r = subprocess.run(CMD + args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("ofi-cvd-harvest simulate: error:")


def test_port_in_use_fails_cleanly():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        r = subprocess.run(CMD + ["--port", str(s.getsockname()[1]), "--run-seconds", "1"],
                           capture_output=True, text=True, timeout=60)
    finally:
        s.close()
    assert r.returncode == 1 and "simulate:" in r.stderr


@pytest.mark.skipif(not REALDATA.is_dir(), reason="realdata/ not available")
def test_replay_shows_where_it_stands(tmp_path):
    """A replay prints its progress on stderr (plain lines when not a terminal) and the last
    line says every message of the recording was served."""
    rec = REALDATA / "cryptofeed_binance_futures" / "BINANCE_FUTURES.ws.1.0"
    p = subprocess.Popen(CMD + ["--port", "0", "--speed", "20", "--replay", str(rec)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = dict(p.stdout.readline().strip().split("=", 1) for _ in range(2))

        async def subscribe() -> int:   # the replay starts with the first subscription
            got = 0
            url = lines["ws_url"] + "/market/stream?streams=sushiusdt@aggTrade"
            async with connect(url) as ws:
                t_end = time.monotonic() + 30
                while time.monotonic() < t_end:
                    try:
                        await asyncio.wait_for(ws.recv(), 3)
                        got += 1
                    except TimeoutError:
                        break          # the recording is over
            return got

        got = asyncio.run(subscribe())
        out, err = terminate(p)
    finally:
        reap(p)
    assert p.returncode == 0, err
    assert got > 0
    progress = [ln for ln in err.splitlines() if ln.startswith("progress: replay: ")]
    assert progress, err
    m = re.match(r"progress: replay: (\d+)/(\d+) messages \(100 %\)", progress[-1])
    assert m and m.group(1) == m.group(2) and int(m.group(2)) > 1000, progress[-1]
