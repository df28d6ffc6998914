"""The cryptofeed side of ``bench_peer.py``: cryptofeed's own Binance USDT-M futures feed
(``BinanceFutures``, TRADES = aggTrade + L2_BOOK = ``depth@100ms`` diffs on a REST snapshot)
pointed at the local simulator, callbacks that only count, and the same measurement window as
the other two consumers (``measure`` below, which ``bench_peer.py`` reuses for them).

Runs under cryptofeed's own interpreter (not a project dependency; docs/performance.md, "Side by
side with cryptofeed"):

    python3 -m venv /work/cfvenv && /work/cfvenv/bin/pip install 'cryptofeed>=2.4,<2.5'
    /work/cfvenv/bin/python benchmarks/peer_cryptofeed.py ws://127.0.0.1:PORT BTCUSDT,ETHUSDT 10 30 \
        [uvloop|asyncio]

The adapter (benchmark only, nothing in the product): cryptofeed 2.4 hard-codes
``wss://fstream.binance.com`` / ``https://fapi.binance.com`` and refuses any WebSocket address that
is not ``wss://`` (``WSAsyncConn.__init__``). The simulator speaks Binance's wire protocol on one
plain loopback port (docs/simulator.md), so a subclass of ``BinanceFutures`` swaps both endpoints
for ``ws://`` / ``http://127.0.0.1:PORT`` (same REST routes), and ``WSAsyncConn`` is replaced in
``cryptofeed.feed`` by a subclass that passes the ``wss://`` check and then connects to the
plain ``ws://`` address. Everything else -- URL building (``/stream?streams=…``), JSON decoding
(yapic, ``Decimal`` prices), snapshot + ``U``/``u``/``pu`` sequencing, the order book, uvloop (its
default config; ``asyncio`` as 5th argument runs it on the stdlib loop the other two use) -- is
cryptofeed's own code.

Stdlib only at import time, so the project's interpreter can import ``measure`` from here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


def rss_mb() -> float:
    """Resident set size of this process (``/proc/self/statm``; same reader for every consumer)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def measure(counter, warmup: float, seconds: float) -> dict:
    """Messages and process CPU (user + system, all threads) over ``seconds`` after ``warmup``
    (connections, snapshots and imports excluded) -- one window for all three consumers."""
    await asyncio.sleep(warmup)
    t0, c0, n0 = time.perf_counter(), os.times(), counter()
    await asyncio.sleep(seconds)
    t1, c1, n1 = time.perf_counter(), os.times(), counter()
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    return {"seconds": t1 - t0, "messages": n1 - n0, "cpu_s": cpu, "rss_mb": rss_mb(),
            "load": os.getloadavg()[0]}


def main(ws: str, symbols: list[str], warmup: float, seconds: float, uvloop: bool = True) -> None:
    from cryptofeed import FeedHandler, feed as cf_feed
    from cryptofeed.connection import RestEndpoint, WSAsyncConn, WebsocketEndpoint
    from cryptofeed.defines import L2_BOOK, TRADES
    from cryptofeed.exchanges import BinanceFutures

    rest = ws.replace("ws://", "http://", 1)

    class LoopbackWSConn(WSAsyncConn):
        """Passes cryptofeed's ``wss://`` check, then connects to the plain loopback address."""

        def __init__(self, address: str, conn_id: str, **kwargs):
            plain = address
            if address.startswith("ws://"):
                address = "wss://" + address[len("ws://"):]
            super().__init__(address, conn_id, **kwargs)
            self.address = plain

    cf_feed.WSAsyncConn = LoopbackWSConn
    base_rest = BinanceFutures.rest_endpoints[0]
    counts = {"frames": 0, "trades": 0, "books": 0, "resets": -1}   # -1: __init__ resets once

    class SimBinanceFutures(BinanceFutures):
        websocket_endpoints = [WebsocketEndpoint(ws, options={"compression": None})]
        rest_endpoints = [RestEndpoint(rest, routes=base_rest.routes)]

        async def message_handler(self, msg, conn, timestamp):
            counts["frames"] += 1
            await super().message_handler(msg, conn, timestamp)

        def _reset(self):   # a broken U/u/pu chain: every book is rebuilt from a snapshot
            counts["resets"] += 1
            super()._reset()

        async def subscribe(self, conn):   # also resets, once per (re)connect: not a gap
            counts["resets"] -= 1
            await super().subscribe(conn)

    async def on_trade(t, receipt_ts):
        counts["trades"] += 1

    async def on_book(b, receipt_ts):
        counts["books"] += 1

    std = [f"{s[:-4]}-USDT-PERP" for s in symbols]
    fh = FeedHandler(config={"uvloop": uvloop, "log": {"disabled": True}})
    fh.add_feed(SimBinanceFutures(symbols=std, channels=[TRADES, L2_BOOK],
                                  callbacks={TRADES: on_trade, L2_BOOK: on_book}))
    loop = asyncio.new_event_loop()   # uvloop's policy (FeedHandler sets it) makes none implicitly
    asyncio.set_event_loop(loop)
    fh.run(start_loop=False, install_signal_handlers=False)
    out = loop.run_until_complete(measure(lambda: counts["frames"], warmup, seconds))
    out.update(counts)
    feed = fh.feeds[0]   # the books cryptofeed built: present, both sides, never crossed
    books = [feed._l2_book[p].book for p in std if p in feed._l2_book]
    out["books_ok"] = len(books) == len(std) and all(
        len(b.bids) and len(b.asks) and b.bids.index(0)[0] < b.asks.index(0)[0] for b in books)
    from importlib.metadata import version
    out["version"] = version("cryptofeed")
    out["loop"] = type(loop).__module__
    print("RESULT " + json.dumps(out), flush=True)
    os._exit(0)   # the numbers are out; cryptofeed's orderly shutdown is not what is measured


if __name__ == "__main__":
    ws_, syms, warm, secs = sys.argv[1:5]
    main(ws_, syms.split(","), float(warm), float(secs),
         uvloop=(sys.argv[5] if len(sys.argv) > 5 else "uvloop") == "uvloop")
