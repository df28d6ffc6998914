"""One logical WebSocket feed (a combined-stream URL) kept alive for days.

- websockets answers server pings itself; our own keep-alive pings (``ping_interval``) with
  ``heartbeat_timeout`` catch dead TCP, and an idle watchdog catches stalls (no data).
- A lost connection is reopened with jittered exponential backoff (``reconnect_base_sec`` …
  ``reconnect_max_sec``) and counted in ``ws_reconnects_total``; every failed attempt (also
  of the first connection: an exchange never reached) in ``ws_connect_failures_total``.
- Before the exchange's 24 h cut (``rollover_sec``) a replacement connection is opened
  first; the old one is closed only once the new one delivers data, so nothing is missed
  (the consumer deduplicates the overlap).
- Redundant replicas of one feed (``websocket.redundancy``) start ``start_delay`` apart and
  roll over on a fixed phase (``roll_phase``: deadlines ``rollover_sec`` apart, offset per
  replica), which a reconnect does not move, so replicas stay staggered for days.
Each physical connection gets a process-unique ``conn_id`` that ends up in every row.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from typing import Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..monitoring import metrics
from .direct import DirectConnection

_conn_ids = itertools.count(1)

OnMessage = Callable[[bytes, int, int], None]            # (raw, recv_ms, conn_id)
OnOpen = Callable[[int, str], None]                       # (conn_id, kind: connect|reconnect|rollover)
OnClose = Callable[[int, str, bool], None]                # (conn_id, reason, deliberate)


def next_conn_id() -> int:
    return next(_conn_ids)


class WsFeed:
    def __init__(self, url: str, *, endpoint: str, on_message: OnMessage,
                 on_open: OnOpen | None = None, on_close: OnClose | None = None,
                 ping_interval: float = 20.0, heartbeat_timeout: float = 30.0,
                 reconnect_base_sec: float = 0.5, reconnect_max_sec: float = 30.0,
                 rollover_sec: float = 82800.0, open_timeout: float = 10.0,
                 seed: int | None = None, log: logging.Logger | None = None,
                 start_delay: float = 0.0, roll_phase: float | None = None):
        self.url = url
        self.endpoint = endpoint
        self.on_message = on_message
        self.on_open = on_open or (lambda c, k: None)
        self.on_close = on_close or (lambda c, r, d: None)
        self.ping_interval = ping_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.reconnect_base = reconnect_base_sec
        self.reconnect_max = reconnect_max_sec
        self.rollover_sec = rollover_sec
        self.open_timeout = open_timeout
        self.log = log or logging.getLogger(__name__)
        self.start_delay = start_delay
        self.roll_phase = roll_phase
        self._roll_anchor = 0.0
        self.reconnects = 0
        self.rollovers = 0
        self.connects = 0
        self.connect_failures = 0
        self._rng = random.Random(seed)
        self._reconnect_metric = metrics.ws_reconnects_total.labels(endpoint)
        self._failure_metric = metrics.ws_connect_failures_total.labels(endpoint)

    # -- helpers ------------------------------------------------------------------------------
    def backoff(self, attempt: int) -> float:
        """Jittered exponential delay for the ``attempt``-th consecutive failure (0-based)."""
        base = min(self.reconnect_max, self.reconnect_base * 2 ** min(attempt, 30))
        return base * (0.5 + 0.5 * self._rng.random())

    def roll_deadline(self, opened: float) -> float:
        """When the connection opened at ``opened`` (monotonic) is replaced."""
        if self.roll_phase is None:
            return opened + self.rollover_sec
        period = self.rollover_sec   # the first phase point after ``opened``: age <= period
        t = self._roll_anchor
        if t <= opened:
            t += ((opened - t) // period + 1) * period
        return t

    async def _open(self, stop: asyncio.Event, first_attempt: int = 0) -> DirectConnection | None:
        attempt = first_attempt
        while not stop.is_set():
            try:
                return await connect(self.url, ping_interval=self.ping_interval,
                                     ping_timeout=self.heartbeat_timeout,
                                     open_timeout=self.open_timeout, close_timeout=2,
                                     max_size=2 ** 22, max_queue=4096, compression=None,
                                     proxy=None, create_connection=DirectConnection)
            except (OSError, asyncio.TimeoutError, InvalidHandshake, InvalidURI,
                    ConnectionClosed) as exc:
                self.connect_failures += 1
                self._failure_metric.inc()
                delay = self.backoff(attempt)
                self.log.warning("ws %s: connect failed (%s: %s); retry in %.2fs",
                                 self.endpoint, type(exc).__name__, exc, delay)
                attempt += 1
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        return None

    async def _read(self, ws: DirectConnection, conn_id: int, first: asyncio.Event) -> str:
        """Deliver messages until the connection ends; returns the reason. The connection
        calls the handler itself, as each frame is parsed (:mod:`.direct`)."""
        async def watchdog() -> None:
            while True:
                await asyncio.sleep(min(1.0, self.heartbeat_timeout / 4))
                if time.monotonic() - ws.last_message > self.heartbeat_timeout:
                    self.log.warning("ws %s conn %d: no data for %.1fs, closing", self.endpoint,
                                     conn_id, self.heartbeat_timeout)
                    ws.transport.abort()
                    return

        on_message = self.on_message

        def on_first(raw: bytes, recv_ms: int, cid: int) -> None:
            first.set()
            ws.deliver = on_message
            on_message(raw, recv_ms, cid)

        dog = asyncio.create_task(watchdog())
        try:
            ws.start(on_first, conn_id)
            while True:                # recv() returns no message: it waits for the end
                await ws.recv(decode=False)
        except ConnectionClosed as exc:
            if ws.handler_error is not None:
                raise ws.handler_error from None
            if time.monotonic() - ws.last_message > self.heartbeat_timeout:
                return "stall"
            return f"closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        finally:
            dog.cancel()

    # -- main loop ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Keep the feed alive until ``stop`` is set; then close cleanly."""
        kind = "connect"
        attempt = 0
        self._roll_anchor = time.monotonic() + self.rollover_sec - (self.roll_phase or 0.0)
        if self.start_delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), self.start_delay)
                return
            except asyncio.TimeoutError:
                pass
        while not stop.is_set():
            ws = await self._open(stop, attempt)
            if ws is None:
                return
            conn_id = next_conn_id()
            self.connects += 1
            if kind == "reconnect":
                self.reconnects += 1
                self._reconnect_metric.inc()
            self.on_open(conn_id, kind)
            opened = time.monotonic()
            first = asyncio.Event()
            reader = asyncio.create_task(self._read(ws, conn_id, first))
            while True:
                stopper = asyncio.create_task(stop.wait())
                timeout = max(0.0, self.roll_deadline(opened) - time.monotonic())
                done, _ = await asyncio.wait({reader, stopper}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if reader in done:
                    reason = reader.result()  # re-raises handler bugs on purpose
                    self.on_close(conn_id, reason, False)
                    self.log.warning("ws %s conn %d: %s; reconnecting", self.endpoint, conn_id,
                                     reason)
                    kind = "reconnect"
                    # a connection that delivered data or lived a while resets the backoff;
                    # one that dies before its first message backs off further
                    attempt = 0 if first.is_set() or time.monotonic() - opened > 10 else attempt + 1
                    delay = self.backoff(attempt)
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
                    break
                if stop.is_set():
                    await self._close(ws, reader)
                    self.on_close(conn_id, "shutdown", True)
                    return
                # roll-over: open the replacement, wait for its first message, close the old
                new_ws = await self._open(stop)
                if new_ws is None:
                    continue
                new_id = next_conn_id()
                self.connects += 1
                self.rollovers += 1
                self.on_open(new_id, "rollover")
                new_first = asyncio.Event()
                new_reader = asyncio.create_task(self._read(new_ws, new_id, new_first))
                try:
                    await asyncio.wait_for(new_first.wait(), max(5.0, self.heartbeat_timeout))
                except asyncio.TimeoutError:
                    pass
                await self._close(ws, reader)
                self.on_close(conn_id, "rollover", True)
                ws, conn_id, reader, first = new_ws, new_id, new_reader, new_first
                opened = time.monotonic()

    async def _close(self, ws: DirectConnection, reader: asyncio.Task) -> None:
        try:
            await asyncio.wait_for(ws.close(), 3)
        except (asyncio.TimeoutError, OSError):
            ws.transport.abort()
        try:
            await asyncio.wait_for(reader, 3)
        except (asyncio.TimeoutError, ConnectionClosed):
            reader.cancel()
