"""The hostile-exchange test (docs/capture.md, "Hostile frames"): a loopback exchange of the
test's own sends, between true messages, everything no exchange should -- not JSON, wrong
types, NaN/inf/negative/zero prices, E = 10**16, E = T = -1, a day away from the exchange clock,
a = 2**63 + 5, negative ids, crossed and malformed books, unknown streams. The capture runs as a
real process and must exit 0 with every true trade in the raw files exactly once, no bogus id
or time, the trades that came only as bad frames healed through REST, and each bad frame
counted under its kind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import polars as pl

from ofi_cvd_harvest.capture.frames import FRAME_ERROR_KINDS

from ..procs import free_port, reap
from .hostile import DAY_MS, HostileScript
from .miniexchange import MiniExchange
from .rawcheck import assert_trades_complete, no_temp_files, read

ROOT = Path(__file__).resolve().parents[2]
SYMS = ["BTCUSDT", "ETHUSDT"]


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()


def sample(body: str, name: str, **labels) -> float | None:
    lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}\{{{re.escape(lab)}\}} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def test_hostile_exchange_cannot_stop_or_fool_the_capture(tmp_path):
    port = free_port()
    env = {**os.environ, "PARQUET_ROTATE_SEC": "2"}
    with MiniExchange(SYMS, seed=12) as ex:
        script = HostileScript(ex.market.server_time_ms, SYMS)
        ex.filter = script
        cmd = [sys.executable, "-m", "ofi_cvd_harvest.cli", "capture", "--symbols", ",".join(SYMS),
               "--run-seconds", "20", "--data-dir", str(tmp_path / "data"),
               "--artifacts-dir", str(tmp_path / "art"), "--ws-base-url", ex.ws_url,
               "--rest-base-url", ex.rest_url, "--prometheus-port", str(port)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 30
            while ex.connections < 2 and time.time() < deadline:
                time.sleep(0.05)
            assert ex.connections >= 2, "the capture never connected"
            time.sleep(1.5)                # true traffic first (and the first clock check)
            script.active = True
            time.sleep(7.0)
            script.active = False
            time.sleep(2.5)                # true traffic after: every skipped trade is a gap
            body = scrape(port)
            out, err = proc.communicate(timeout=60)
        finally:
            reap(proc)
        assert proc.returncode == 0, err[-3000:]
        truth = {s: ex.ground_truth_ids(s) for s in SYMS}

    # every bad frame counted under its kind, none broke the handler
    print("bad frames sent by kind:", dict(script.tally), "replaced trades:",
          {k: len(v) for k, v in script.replaced.items()})
    assert sum(script.tally.values()) > 100, script.tally
    assert {k for k, n in script.tally.items() if n} == set(FRAME_ERROR_KINDS) - {"handler_error"}
    for kind in FRAME_ERROR_KINDS:
        assert sample(body, "decode_errors_total", kind=kind) == script.tally.get(kind, 0), kind

    data = tmp_path / "data"
    now = int(time.time() * 1000)
    for sym in SYMS:
        trades = read(data, "agg_trade", sym)
        lo, hi = assert_trades_complete(trades, truth[sym])   # exactly once, no bogus id
        replaced = [a for a in script.replaced[sym] if lo <= a <= hi]
        assert len(replaced) >= 5, script.replaced[sym]
        rest = set(trades.filter(pl.col("source") == "rest")["agg_trade_id"])
        assert set(replaced) <= rest, "trades sent only as bad frames must be healed via REST"
        assert trades["price"].is_finite().all() and (trades["price"] > 0).all()
        assert (trades["qty"] > 0).all() and (trades["first_trade_id"] >= 0).all()
        for col in ("event_ts_ms", "trade_ts_ms"):
            assert ((trades[col] - now).abs() < DAY_MS).all(), col
        m = re.search(rf"{sym}: trades=(\d+) \(ws=(\d+), healed=(\d+)\)", out)
        assert int(m.group(1)) == len(trades) and int(m.group(3)) >= len(replaced)

        book = read(data, "book", sym)
        assert len(book) > 20
        assert (book["bid_px"].list.first() < book["ask_px"].list.first()).all()
        assert book["bid_px"].explode().is_finite().all()
        assert ((book["event_ts_ms"] - now).abs() < DAY_MS).all()
        assert (book["final_update_id"] >= 0).all()

    ops = read(data, "ops")
    metas = [orjson.loads(x) for x in
             ops.filter(pl.col("event_type") == "decode_error")["meta_json"]]
    assert {x["kind"] for x in metas} == {k for k, n in script.tally.items() if n}
    assert all(x["sample"] for x in metas)
    dates = {p.parent.parent.parent.name for p in data.glob("raw/date=*/*/*/*.parquet")}
    assert all(d >= "date=2025" for d in dates), dates       # nothing in date=1969-12-31
    no_temp_files(data)
