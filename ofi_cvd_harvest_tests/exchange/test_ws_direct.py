"""WsFeed's direct delivery (exchange/direct.py) against a real loopback websockets server:
every message, in order, whole (also fragmented ones), the burst that arrives with the
handshake, a handler's bug re-raised, and a stall seen even while pings and pongs flow."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.server import serve

from ofi_cvd_harvest.exchange.ws import WsFeed


async def _run(handler, on_message, *, until, timeout=5.0, **feed_kw):
    """Serve ``handler`` on a free port, run a WsFeed until ``until()`` holds; the feed's
    open/close events are returned."""
    events: list[tuple] = []
    stop = asyncio.Event()
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        kw = dict(reconnect_base_sec=0.05, reconnect_max_sec=0.1, seed=1)
        kw.update(feed_kw)
        feed = WsFeed(f"ws://127.0.0.1:{port}/stream?streams=a@aggTrade", endpoint="market",
                      on_message=on_message,
                      on_open=lambda cid, kind: events.append(("open", cid, kind)),
                      on_close=lambda cid, reason, d: events.append(("close", cid, reason)),
                      **kw)
        task = asyncio.create_task(feed.run(stop))
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while not until() and loop.time() < end and not task.done():
                await asyncio.sleep(0.02)
        finally:
            stop.set()
        await asyncio.wait_for(task, 5)
    return events


def test_whole_fragmented_and_binary_messages_arrive_in_order_as_bytes():
    got: list[tuple[bytes, int, int]] = []

    async def handler(ws):
        await ws.send("a")
        await ws.send(["b1", "b2", "b3"])          # one message in three frames
        await ws.ping()
        await ws.send(b"\x00c")                      # binary
        await ws.send([b"d1", b"d2"])
        await ws.send("e")
        await ws.wait_closed()

    events = asyncio.run(_run(handler, lambda raw, ms, cid: got.append((raw, ms, cid)),
                              until=lambda: len(got) >= 5))
    assert [g[0] for g in got] == [b"a", b"b1b2b3", b"\x00c", b"d1d2", b"e"]
    assert all(type(g[0]) is bytes for g in got)
    opened = [cid for kind, cid, _ in events if kind == "open"]
    assert {g[2] for g in got} == {opened[0]}       # the connection's id on every message
    assert all(abs(g[1] - got[0][1]) < 5_000 for g in got) and got[0][1] > 1.6e12


def test_a_burst_sent_with_the_handshake_is_delivered_whole_and_in_order():
    """The server writes 2,000 messages at once on connecting: some arrive in the same TCP
    read as the handshake, before the reader exists; none may be lost or reordered."""
    got: list[int] = []

    async def handler(ws):
        for i in range(2000):
            await ws.send(json.dumps({"n": i}))
        await ws.wait_closed()

    asyncio.run(_run(handler, lambda raw, ms, cid: got.append(json.loads(raw)["n"]),
                     until=lambda: len(got) >= 2000))
    assert got == list(range(2000))


def test_a_handler_bug_ends_the_feed_with_that_error():
    seen: list[bytes] = []

    def on_message(raw, ms, cid):
        seen.append(raw)
        if raw == b"2":
            raise ZeroDivisionError("handler bug")

    async def handler(ws):
        for i in range(5):
            await ws.send(str(i))
        await ws.wait_closed()

    with pytest.raises(ZeroDivisionError, match="handler bug"):
        asyncio.run(_run(handler, on_message, until=lambda: False, timeout=3))
    assert seen == [b"0", b"1", b"2"]                # nothing after the failing message


def test_a_stalled_stream_is_closed_although_pings_and_pongs_keep_flowing():
    """Keep-alive traffic is not data: a feed whose server answers pings but sends no
    message for heartbeat_timeout is closed as a stall and reopened."""
    got: list[bytes] = []

    async def handler(ws):
        await ws.send("only")
        await ws.wait_closed()                       # alive (it pongs), silent

    events = asyncio.run(_run(handler, lambda raw, ms, cid: got.append(raw),
                              until=lambda: len(got) >= 2, timeout=8,
                              ping_interval=0.1, heartbeat_timeout=0.8))
    closes = [reason for kind, _, reason in events if kind == "close"]
    assert closes and closes[0] == "stall", events
    assert got[:2] == [b"only", b"only"]             # reopened: the server sends again


def test_a_fragmented_message_over_max_size_is_refused_whole_and_the_feed_reconnects():
    """5 MiB in five fragments (the feed's max_size is 4 MiB): websockets fails the
    connection (it sends 1009); no part of the message reaches the handler, and the next
    connection's messages do."""
    got: list[bytes] = []
    served = 0

    async def handler(ws):
        nonlocal served
        served += 1
        if served == 1:
            await ws.send("before")
            await ws.send(["x" * 2**20] * 5)
        else:
            await ws.send("after")
        await ws.wait_closed()

    events = asyncio.run(_run(handler, lambda raw, ms, cid: got.append(raw),
                              until=lambda: b"after" in got))
    assert got == [b"before", b"after"]
    closes = [reason for kind, _, reason in events if kind == "close"]
    assert closes[0].startswith("closed"), events
