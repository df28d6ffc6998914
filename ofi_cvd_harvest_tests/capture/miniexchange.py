"""A scripted loopback exchange for precise capture tests.

The product simulator (``ofi_cvd_harvest.sim``) is the realistic one; this small server
serves the same seeded :class:`SyntheticMarket` over Binance's paths but lets a test script
exactly which messages are dropped, duplicated or replaced by junk, and when connections are
cut, so a test can assert on one specific id. Real websockets + HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.parse
from typing import Callable

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from ofi_cvd_harvest.sim.market import SyntheticMarket

from .rawcheck import truth_ids

# a filter gets (stream, data) and returns a list of raw frames to send (bytes) — [] drops it
Filter = Callable[[str, dict], list[bytes]]


def envelope(stream: str, data: dict) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


class MiniExchange:
    def __init__(self, symbols, seed: int = 1, speed: float = 1.0):
        self.market = SyntheticMarket(symbols, seed=seed, speed=speed)
        self.filter: Filter | None = None
        self.rest_fail_status: int | None = None   # e.g. 500/429 to make REST fail
        self.rest_calls: list[str] = []
        self.clock_offset_ms = 0      # added to /fapi/v1/time (a drifting exchange clock)
        self.stalled = False          # keep connections open but send nothing
        self.clients: dict[ServerConnection, set[str]] = {}
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0

    # -- urls ---------------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- HTTP ---------------------------------------------------------------------------------
    def _rest(self, path: str, q: dict[str, str]) -> tuple[int, object]:
        m = self.market
        if path == "/fapi/v1/time":
            return 200, {"serverTime": m.server_time_ms() + self.clock_offset_ms}
        if path == "/fapi/v1/exchangeInfo":
            return 200, m.exchange_info()
        if path == "/fapi/v1/aggTrades":
            self.rest_calls.append(q.get("fromId", ""))
            if self.rest_fail_status:
                return self.rest_fail_status, {"code": -1000, "msg": "scripted failure"}
            return 200, m.agg_trades(q["symbol"], from_id=int(q["fromId"]) if "fromId" in q else None,
                                     limit=int(q.get("limit", 500)))
        if path == "/fapi/v1/depth":
            return 200, m.depth_snapshot(q["symbol"], int(q.get("limit", 100)))
        return 404, {"code": -1, "msg": "not found"}

    def _process_request(self, conn: ServerConnection, request):
        url = urllib.parse.urlsplit(request.path)
        if url.path.startswith("/fapi/"):
            q = dict(urllib.parse.parse_qsl(url.query))
            status, body = self._rest(url.path, q)
            h = Headers({"Content-Type": "application/json", "X-MBX-USED-WEIGHT-1m": "1"})
            return Response(status, "OK" if status == 200 else "ERR", h, orjson.dumps(body))
        return None

    # -- WebSocket ----------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        url = urllib.parse.urlsplit(ws.request.path)
        streams = set(dict(urllib.parse.parse_qsl(url.query)).get("streams", "").split("/"))
        self.clients[ws] = streams
        self.connections += 1
        try:
            await ws.wait_closed()
        finally:
            self.clients.pop(ws, None)

    async def _pump(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(0.02)
            subs = set().union(*self.clients.values()) if self.clients else set()
            msgs = self.market.poll(self.market.server_time_ms(), frozenset(subs))
            if self.stalled:
                continue
            for m in msgs:
                data = m.data if m.data is not None else orjson.loads(m.raw)
                frames = self.filter(m.stream, data) if self.filter else [envelope(m.stream, data)]
                for ws, streams in list(self.clients.items()):
                    if m.stream in streams:
                        for f in frames:
                            try:
                                await ws.send(f.decode())
                            except Exception:
                                pass

    def cut_all(self) -> None:
        """Abort every client connection (a network drop)."""
        def _cut():
            for ws in list(self.clients):
                ws.transport.abort()
        self._loop.call_soon_threadsafe(_cut)

    # -- lifecycle ----------------------------------------------------------------------------
    def _run(self) -> None:
        async def main():
            self._stop = asyncio.Event()
            async with serve(self._handler, "127.0.0.1", 0, process_request=self._process_request,
                             compression=None) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._loop = asyncio.get_running_loop()
                self._ready.set()
                await self._pump()
        asyncio.run(main())

    def __enter__(self) -> "MiniExchange":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def ground_truth_ids(self, symbol: str) -> list[int]:
        """Every trade id emitted so far (read on the server's loop: the market is not
        thread-safe)."""
        async def read() -> list[int]:
            return truth_ids(self.market, symbol)
        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)
