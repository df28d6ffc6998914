"""WsFeed against a real loopback websockets server: delivery, reconnect, backoff."""

from __future__ import annotations

import asyncio
import socket

from websockets.asyncio.server import serve

from ofi_cvd_harvest.exchange.ws import WsFeed


def test_backoff_is_jittered_exponential_and_capped():
    f = WsFeed("ws://x", endpoint="market", on_message=lambda *a: None, reconnect_base_sec=0.5,
               reconnect_max_sec=30, seed=3)
    for attempt, base in ((0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0), (100, 30.0)):
        vals = [f.backoff(attempt) for _ in range(50)]
        assert all(base * 0.5 <= v <= base for v in vals)
        assert len(set(vals)) > 1


def test_delivers_reconnects_after_server_close_and_waits_for_server():
    async def main():
        got: list[tuple[bytes, int]] = []
        opens: list[str] = []
        closes: list[tuple[str, bool]] = []
        served = 0

        async def handler(ws):
            nonlocal served
            served += 1
            for i in range(3):
                await ws.send(f'{{"n":{served * 10 + i}}}')
            await ws.close(1001)        # the server ends each connection (like a 24 h cut)

        # a port with nothing listening yet: the feed must keep retrying until it appears
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        stop = asyncio.Event()
        feed = WsFeed(f"ws://127.0.0.1:{port}/market/stream?streams=a@aggTrade", endpoint="market",
                      on_message=lambda raw, ms, cid: got.append((raw, cid)),
                      on_open=lambda cid, kind: opens.append(kind),
                      on_close=lambda cid, reason, d: closes.append((reason, d)),
                      reconnect_base_sec=0.05, reconnect_max_sec=0.2, seed=1)
        task = asyncio.create_task(feed.run(stop))
        await asyncio.sleep(0.5)
        assert not got and feed.connects == 0
        async with serve(handler, "127.0.0.1", port):
            for _ in range(100):
                if served >= 3 and len(got) >= 9:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, 5)
        assert opens[0] == "connect" and "reconnect" in opens
        assert feed.reconnects >= 2
        assert all(isinstance(raw, bytes) for raw, _ in got)
        assert len({cid for _, cid in got}) >= 3          # one conn_id per connection
        assert any("1001" in r for r, d in closes if not d)

    asyncio.run(main())
