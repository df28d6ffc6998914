"""A websockets client connection that hands each data message to a callback as it is parsed.

Why: websockets' asyncio connection queues every parsed message (its ``Assembler``), wakes
the reader task, and the reader takes it out again with ``await recv()`` -- per message a
queue round trip, a future and a task step, and one more event-loop iteration per TCP read,
for a consumer that only calls a synchronous handler. At 300 symbols that hand-off was ~5 %
of the capture's CPU (docs/performance.md §13). Here a frame parsed inside
``data_received`` goes straight to ``deliver(raw, recv_ms, conn_id)``: same bytes, same
order, one receipt time per TCP read (all its frames arrived together).

Everything else stays websockets': the handshake, pings and pongs, keep-alive, the closing
handshake, ``max_size`` (also over the fragments of one message). A fragmented message is
joined here and delivered when its last fragment arrives, so order is kept without the
queue; what arrives between the handshake and :meth:`DirectConnection.start` (before the
reader knows the connection's id) is held and delivered first. ``recv()`` then never
returns a message; the reader only awaits it to learn that the connection ended
(:class:`~websockets.exceptions.ConnectionClosed`). Should ``deliver`` raise (a bug: the
capture's handler guards every frame), the connection is aborted and the error kept in
``handler_error`` for the reader to re-raise, as it did when it called the handler itself.
"""

from __future__ import annotations

import time
from typing import Callable

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

Deliver = Callable[[bytes, int, int], None]     # (raw message, receipt epoch ms, conn_id)

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


class DirectConnection(ClientConnection):
    deliver: Deliver | None = None
    conn_id = 0
    handler_error: BaseException | None = None
    last_message = 0.0                          # time.monotonic() of the last data message
    _now = 0.0                                  # ... of the current TCP read
    _recv_ms = 0                                # its epoch ms: every frame in it arrived then
    _parts: list[bytes] | None = None           # a fragmented message so far
    _early: list[tuple[bytes, int]] | None = None   # messages before start()

    def start(self, deliver: Deliver, conn_id: int) -> None:
        """Deliver from now on; first, in order, what arrived since the handshake."""
        early, self._early = self._early or (), None
        self.deliver, self.conn_id = deliver, conn_id
        self.last_message = time.monotonic()
        for raw, recv_ms in early:
            if self.deliver is not None:      # (it may swap itself on the first message)
                self._call(self.deliver, raw, recv_ms)

    def data_received(self, data: bytes) -> None:
        self._now = time.monotonic()
        self._recv_ms = time.time_ns() // 1_000_000
        super().data_received(data)

    def process_event(self, event) -> None:
        if type(event) is not Frame:
            super().process_event(event)      # the handshake's response
            return
        op = event.opcode
        if op is _TEXT or op is _BINARY:
            if not event.fin:
                self._parts = [bytes(event.data)]
                return
            raw = bytes(event.data)
        elif op is _CONT:
            parts = self._parts
            if parts is None:                 # the protocol refuses this before us
                return
            parts.append(bytes(event.data))
            if not event.fin:
                return
            self._parts = None
            raw = b"".join(parts)
        else:
            super().process_event(event)      # ping, pong, close: websockets' own handling
            return
        self.last_message = self._now
        deliver = self.deliver
        if deliver is not None:          # (inline, not _call: once per message)
            try:
                deliver(raw, self._recv_ms, self.conn_id)
            except Exception as exc:
                self._failed(exc)
        elif self.handler_error is None:
            if self._early is None:
                self._early = []
            self._early.append((raw, self._recv_ms))

    def _call(self, deliver: Deliver, raw: bytes, recv_ms: int) -> None:
        try:
            deliver(raw, recv_ms, self.conn_id)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.handler_error = exc
        self.deliver = None
        self.transport.abort()
