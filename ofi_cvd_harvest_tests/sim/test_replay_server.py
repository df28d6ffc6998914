"""Replay through the real simulator server over loopback: a plain websockets + urllib
client, following Binance's documented diff-book procedure, must see exactly the recording."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from ofi_cvd_harvest_tests.paths import HFT, REALDATA
from ofi_cvd_harvest.protocol import decode
from ofi_cvd_harvest.protocol.localbook import BookTop, LocalBook
from ofi_cvd_harvest.sim import bookcheck
from ofi_cvd_harvest.sim.replay import open_replay
from ofi_cvd_harvest.sim.server import SimulatorThread

REAL = REALDATA
CRYPTOFEED = REAL / "cryptofeed_binance_futures" / "BINANCE_FUTURES.ws.1.0"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="realdata/ not available")
SYMS = ("AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT")


def recorded_trades() -> list[tuple]:
    out = []
    with open(CRYPTOFEED, "rb") as fh:
        fh.readline()
        for line in fh:
            obj = orjson.loads(line.split(b": ", 1)[1])
            if obj["stream"].endswith("@aggTrade"):
                d = obj["data"]
                out.append((d["s"], d["a"], d["p"], d["q"], d["m"]))
    return out


def rest(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


async def client(sim: SimulatorThread, src, speed: float):
    books = {s: LocalBook(s, levels=10) for s in SYMS}
    rows = {s: [] for s in SYMS}
    problems = []
    tickers = {s: [] for s in SYMS}
    trades = []
    snap_ids = {}
    pub = "/".join(f"{s.lower()}@depth@100ms/{s.lower()}@bookTicker" for s in SYMS)
    mkt = "/".join(f"{s.lower()}@aggTrade" for s in SYMS)
    async with connect(f"{sim.ws_url}/public/stream?streams={pub}") as wp, \
            connect(f"{sim.ws_url}/market/stream?streams={mkt}") as wm:
        async def read_market():
            async for raw in wm:
                _, t = decode.decode(raw)
                trades.append((t.symbol, t.agg_trade_id, t.price, t.qty, t.is_buyer_maker))

        market = asyncio.create_task(read_market())
        idle = 0
        while idle < 3:
            try:
                raw = await asyncio.wait_for(wp.recv(), 1.5)
            except TimeoutError:
                idle += 1
                if sim.call(lambda: src.finished):
                    break
                continue
            stream, rec = decode.decode(raw)
            if stream.endswith("bookTicker"):
                tickers[rec.symbol].append(rec)
                continue
            book = books[rec.symbol]
            out = book.feed(rec)
            if book.needs_snapshot:          # first event buffered: fetch the snapshot
                body = await asyncio.to_thread(
                    rest, f"{sim.rest_url}/fapi/v1/depth?symbol={rec.symbol}&limit=1000")
                snap_ids[rec.symbol] = body["lastUpdateId"]
                out += book.apply_snapshot(decode.depth_snapshot(body))
            for o in out:
                (rows[o.rec.symbol] if isinstance(o, BookTop) else problems).append(o)
        await asyncio.sleep(0.5)
        market.cancel()
    return rows, problems, tickers, trades, snap_ids


def test_cryptofeed_replay_over_loopback_syncs_every_book_and_serves_every_trade():
    speed = 10.0
    src = open_replay(CRYPTOFEED, speed=speed, start_delay_s=0.5)
    with SimulatorThread(SYMS, source=src) as sim:
        info = rest(f"{sim.rest_url}/fapi/v1/exchangeInfo")
        assert sorted(s["symbol"] for s in info["symbols"]) == list(SYMS)
        rows, problems, tickers, trades, snap_ids = asyncio.run(client(sim, src, speed))
        assert sim.call(lambda: src.finished)
        # REST aggTrades answers from the recording once emitted
        page = rest(f"{sim.rest_url}/fapi/v1/aggTrades?symbol=SUSHIUSDT&fromId=0&limit=1000")
    assert problems == []
    want = recorded_trades()
    assert sorted(trades) == sorted((s, a, float(p), float(q), m) for s, a, p, q, m in want)
    assert [t["a"] for t in page] == sorted(a for s, a, *_ in want if s == "SUSHIUSDT")
    total = matched = 0
    for s in SYMS:
        assert rows[s] and rows[s][0].resynced and sum(r.resynced for r in rows[s]) == 1
        chk = bookcheck.compare(rows[s], tickers[s], bookcheck.SymbolCheck(s))
        assert chk.matched == chk.compared, chk.first_mismatch
        total += chk.compared
        matched += chk.matched
    # the clients asked before the first event of each symbol was processed by the server's
    # book, or after: either way each synced first time
    assert set(snap_ids) == set(SYMS)
    assert total > 500 and matched == total
