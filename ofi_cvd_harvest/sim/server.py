"""The simulator's I/O layer: one loopback port serving Binance WebSocket streams and REST.

``websockets`` (asyncio) accepts the connections; its ``process_request`` hook answers plain
HTTP GETs on ``/fapi/...`` (:mod:`.rest`) and refuses bad WebSocket paths before the
handshake (:mod:`.control`). A pump task polls the :class:`~.source.MarketSource` every few ms
and appends each due message — encoded once, envelope built once — to the queue of every
subscribed client; one sender task per client applies its faults (:mod:`.faults`) and writes
whole batches of frames per syscall, so one client can be fed tens of thousands of msg/s.

Binance behaviours: server ping every ``ping_interval`` s (no pong within ``ping_timeout``
closes), connections closed at ``max_conn_age``, more than ``max_incoming_per_sec`` client
messages in one second closes the connection (1008), ≤ ``max_streams`` streams per connection,
a client whose backlog exceeds ``max_backlog`` messages is dropped as too slow.

:class:`Simulator` is the async API, :class:`SimulatorThread` runs one in a background thread
(for synchronous tests, Dagster, the demo).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import logging
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from .control import ConnSpec, PathError, Session, parse_path
from .faults import FaultConfig, MessageFaults, RestFaults
from .listings import Listings
from .market import SyntheticMarket
from .rest import RestApp
from .source import MarketSource, Message, payload

log = logging.getLogger("ofi_cvd_harvest.sim")
_ws_log = logging.getLogger("ofi_cvd_harvest.sim.websockets")
_ws_log.setLevel(logging.WARNING)

BATCH = 2000


class _Client:
    __slots__ = ("conn", "session", "queue", "wake", "faults", "ordinal", "held", "incoming",
                 "sent")

    def __init__(self, conn: ServerConnection, session: Session, faults: MessageFaults,
                 ordinal: int):
        self.conn = conn
        self.session = session
        self.queue: deque[tuple[bytes, Message | None]] = deque()
        self.wake = asyncio.Event()
        self.faults = faults
        self.ordinal = ordinal
        self.held: bytes | None = None
        self.incoming: deque[float] = deque()
        self.sent = 0


class Simulator:
    """Binance USDT-M futures simulator on ``host:port`` (port 0 = ephemeral)."""

    def __init__(self, symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"), *, seed: int = 0,
                 speed: float = 1.0, faults: FaultConfig | str | None = None, port: int = 0,
                 host: str = "127.0.0.1", source: MarketSource | None = None,
                 ping_interval: float | None = 180.0, ping_timeout: float | None = 600.0,
                 max_conn_age: float = 86400.0, max_streams: int = 200,
                 max_incoming_per_sec: int = 10, weight_limit: int = 2400,
                 tick_s: float = 0.005, max_backlog: int = 500_000, start_ms: int | None = None,
                 listings: Listings | None = None):
        self.faults = faults if isinstance(faults, FaultConfig) else FaultConfig.parse(faults)
        self.source: MarketSource = source if source is not None else SyntheticMarket(
            symbols, seed=seed, speed=speed, start_ms=start_ms)
        self.seed = seed
        self.host = host
        self._port = port
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_conn_age = self.faults.cut if self.faults.cut else max_conn_age
        self.max_streams = max_streams
        self.max_incoming_per_sec = max_incoming_per_sec
        self.tick_s = tick_s
        self.max_backlog = max_backlog
        self.rest = RestApp(self.source, weight_limit, RestFaults(self.faults, seed),
                            listings=listings if listings is not None else Listings(seed=seed))
        self._subs: dict[str, set[_Client]] = {}
        self._streams_key: frozenset[str] = frozenset()
        self._clients: set[_Client] = set()
        self._ordinals = itertools.count(1)
        self._server: Any = None
        self._pump_task: asyncio.Task | None = None
        self.stats: dict[str, int] = {
            "connections": 0, "open": 0, "messages": 0, "frames_sent": 0, "age_cuts": 0,
            "rate_limit_closes": 0, "slow_closes": 0,
            **{f"fault_{k}": 0 for k in ("disconnect", "drop", "duplicate", "reorder", "latency",
                                          "malformed", "badvalue", "stall")}}

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    async def start(self) -> None:
        self._server = await serve(
            self._handle, self.host, self._port, process_request=self._process_request,
            ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
            compression=None, max_size=2**20, logger=_ws_log, server_header="ofi-cvd-harvest-sim",
            write_limit=2**22)
        self._port = self._server.sockets[0].getsockname()[1]
        self._pump_task = asyncio.create_task(self._pump(), name="sim-pump")

    async def stop(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> "Simulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # --- ground truth ----------------------------------------------------------------------
    def ground_truth(self, symbol: str) -> list[dict[str, Any]]:
        """Every trade of ``symbol`` emitted so far (numeric fields, id order)."""
        gt = getattr(self.source, "ground_truth", None)
        if gt is not None:
            return gt(symbol)
        out: list[dict[str, Any]] = []
        rows = self.source.agg_trades(symbol, from_id=0, limit=1000)
        while rows:
            out.extend({"agg_trade_id": r["a"], "trade_ts_ms": r["T"], "symbol": symbol,
                        "price": float(r["p"]), "qty": float(r["q"]), "first_trade_id": r["f"],
                        "last_trade_id": r["l"], "is_buyer_maker": r["m"]} for r in rows)
            rows = self.source.agg_trades(symbol, from_id=rows[-1]["a"] + 1, limit=1000)
        return out

    # --- HTTP ------------------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path
        if path.startswith("/fapi/"):
            status, headers, body = self.rest.handle(path)
            return _response(status, headers, body)
        try:
            parse_path(path, self.max_streams)
        except PathError as exc:
            return _response(exc.status, [("Content-Type", "application/json")],
                             orjson.dumps({"code": -1, "msg": exc.msg}))
        return None

    # --- WebSocket -------------------------------------------------------------------------
    async def _handle(self, conn: ServerConnection) -> None:
        spec: ConnSpec = parse_path(conn.request.path, self.max_streams)
        ordinal = next(self._ordinals)
        client = _Client(conn, Session(spec, self.max_streams),
                         MessageFaults(self.faults, self.seed, ordinal), ordinal)
        self.stats["connections"] += 1
        self.stats["open"] += 1
        self._clients.add(client)
        self._subscribe(client, spec.streams)
        sender = asyncio.create_task(self._sender(client), name=f"sim-send-{ordinal}")
        try:
            async with asyncio.timeout(self.max_conn_age):
                async for text in conn:
                    if self._over_rate(client):
                        self.stats["rate_limit_closes"] += 1
                        await conn.close(1008, "Too many requests")
                        break
                    reply, added, removed = client.session.handle(text)
                    self._subscribe(client, added)
                    self._unsubscribe(client, removed)
                    client.queue.append((ws_text_frame(reply), None))
                    client.wake.set()
        except TimeoutError:
            self.stats["age_cuts"] += 1
            with contextlib.suppress(Exception):
                await conn.close(1001, "Connection age exceeded")
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            self._unsubscribe(client, list(client.session.streams))
            self._clients.discard(client)
            self.stats["open"] -= 1

    def _over_rate(self, client: _Client) -> bool:
        now = time.monotonic()
        q = client.incoming
        q.append(now)
        while q and q[0] <= now - 1.0:
            q.popleft()
        return len(q) > self.max_incoming_per_sec

    def _subscribe(self, client: _Client, streams: list[str]) -> None:
        for s in streams:
            self._subs.setdefault(s, set()).add(client)
        if streams:
            self._streams_key = frozenset(self._subs)

    def _unsubscribe(self, client: _Client, streams: list[str]) -> None:
        changed = False
        for s in streams:
            subs = self._subs.get(s)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self._subs[s]
                    changed = True
        if changed:
            self._streams_key = frozenset(self._subs)

    async def _pump(self) -> None:
        source = self.source
        while True:
            msgs = source.poll(source.server_time_ms(), self._streams_key)
            if msgs:
                self._distribute(msgs)
            await asyncio.sleep(self.tick_s)

    def _distribute(self, msgs: list[Message]) -> None:
        """Queue each due message to its subscribers, framed once per form (raw / combined)."""
        subs_of = self._subs
        touched: dict[_Client, None] = {}
        n = 0
        for m in msgs:
            subs = subs_of.get(m.stream)
            if not subs:
                continue
            n += 1
            raw = m.raw if m.raw is not None else orjson.dumps(m.data)
            raw_item = env_item = None
            for c in subs:
                if c.session.combined:
                    if env_item is None:
                        env = b'{"stream":"' + m.stream.encode() + b'","data":' + raw + b"}"
                        env_item = (ws_text_frame(env), m)
                    c.queue.append(env_item)
                else:
                    if raw_item is None:
                        raw_item = (ws_text_frame(raw), m)
                    c.queue.append(raw_item)
                touched[c] = None
        self.stats["messages"] += n
        for c in touched:
            if len(c.queue) > self.max_backlog:
                self.stats["slow_closes"] += 1
                c.queue.clear()
                c.conn.transport.abort()
            c.wake.set()

    async def _sender(self, c: _Client) -> None:
        conn, q, faults, stats = c.conn, c.queue, c.faults, self.stats
        try:
            while True:
                await c.wake.wait()
                c.wake.clear()
                while q:
                    frames: list[bytes] = []
                    for _ in range(min(len(q), BATCH)):
                        frame, m = q.popleft()
                        kind = faults.pick() if m is not None else None
                        if kind is None:
                            frames.append(frame)
                            if c.held is not None:
                                frames.append(c.held)
                                c.held = None
                            continue
                        stats["fault_" + kind] += 1
                        if kind == "drop":
                            continue
                        if kind == "duplicate":
                            frames += (frame, frame)
                        elif kind == "reorder":
                            if c.held is not None:
                                frames.append(c.held)
                            c.held = frame
                        elif kind == "malformed":
                            frames.append(ws_text_frame(faults.malformed(frame_payload(frame))))
                        elif kind == "badvalue":
                            frames.append(ws_text_frame(faults.bad_value(
                                payload(m), m.stream if c.session.combined else None)))
                        elif kind in ("latency", "stall"):
                            await self._flush(c, frames)
                            frames = []
                            await asyncio.sleep(faults.cfg.latency_ms / 1000.0 if kind == "latency"
                                                else faults.cfg.stall_s)
                            frames.append(frame)
                        elif kind == "disconnect":
                            await self._flush(c, frames)
                            conn.transport.abort()
                            return
                    await self._flush(c, frames)
                    if conn.transport.is_closing():
                        return
                    await asyncio.sleep(0)   # let the pump and other clients run between batches
        except ConnectionClosed:
            return

    async def _flush(self, c: _Client, frames: list[bytes]) -> None:
        """Write a batch of pre-built frames in one call (websockets' ``send`` frames and
        writes each message separately); then honour the transport's flow control. Safe: our
        frames are whole, unfragmented, uncompressed text frames, and websockets writes its own
        control frames (ping/pong/close) between our writes."""
        if not frames:
            return
        conn = c.conn
        if conn.protocol.state is not State.OPEN or conn.transport.is_closing():
            raise ConnectionClosed(None, None)
        conn.transport.write(b"".join(frames))
        c.sent += len(frames)
        self.stats["frames_sent"] += len(frames)
        await conn.drain()


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 §5.2) — server to client."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def frame_payload(frame: bytes) -> bytes:
    """The payload of a frame built by :func:`ws_text_frame`."""
    n = frame[1]
    return frame[2:] if n < 126 else frame[4:] if n == 126 else frame[10:]


def _response(status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    h = Headers(headers)
    h["Content-Length"] = str(len(body))
    h["Connection"] = "close"
    return Response(status, reason, h, body)


class SimulatorThread:
    """A :class:`Simulator` running in a background thread with its own event loop.

    ``start()`` returns once REST ``/fapi/v1/time`` answers; ``stop()`` shuts it down. Use as a
    context manager. Arguments are those of :class:`Simulator`.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        self._args, self._kwargs = args, kwargs
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.sim: Simulator | None = None

    def start(self, timeout: float = 20.0) -> "SimulatorThread":
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error!r}")
        deadline = time.monotonic() + timeout
        while True:  # ready once /fapi/v1/time answers
            try:
                with urllib.request.urlopen(self.rest_url + "/fapi/v1/time", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.sim = Simulator(*self._args, **self._kwargs)
                await self.sim.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.sim.stop()
        asyncio.run(main())

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        self._thread = None

    def __enter__(self) -> "SimulatorThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, fn: Any, *args: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(*args)`` on the simulator's loop thread (the source is not thread-safe)."""
        async def run() -> Any:
            return fn(*args)
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    @property
    def port(self) -> int:
        assert self.sim is not None
        return self.sim.port

    @property
    def ws_url(self) -> str:
        assert self.sim is not None
        return self.sim.ws_url

    @property
    def rest_url(self) -> str:
        assert self.sim is not None
        return self.sim.rest_url

    @property
    def stats(self) -> dict[str, int]:
        assert self.sim is not None
        return self.call(lambda: dict(self.sim.stats, **{f"rest_{k}": v for k, v in
                                                          self.sim.rest.stats.items()}))

    def server_time_ms(self) -> int:
        assert self.sim is not None
        return self.call(self.sim.source.server_time_ms)

    def ground_truth(self, symbol: str) -> list[dict[str, Any]]:
        assert self.sim is not None
        return self.call(self.sim.ground_truth, symbol)

    def ground_truth_table(self, symbols: list[str] | None = None) -> Any:
        """Every emitted trade as a pyarrow Table (columns of ``dump.SCHEMA``) — fast even
        for millions of trades."""
        assert self.sim is not None
        from .dump import ground_truth_table
        return self.call(ground_truth_table, self.sim, symbols)

    def dump_trades(self, path: str) -> int:
        """Write every symbol's ground truth to one Parquet file; returns the row count."""
        assert self.sim is not None
        from .dump import dump_trades
        return self.call(dump_trades, self.sim, path)
