"""A websockets client connection that hands each data message to a callback as it is parsed.

Why: websockets' asyncio connection queues every parsed message (its ``Assembler``), wakes
the reader task, and the reader takes it out again with ``await recv()`` -- per message a
queue round trip, a future and a task step, and one more event-loop iteration per TCP read,
for a consumer that only calls a synchronous handler. At 300 symbols that hand-off was ~5 %
of the capture's CPU (docs/performance.md §13). Here a frame parsed inside
``data_received`` goes straight to ``deliver(raw, recv_ms, conn_id)``: same bytes, same
order, one receipt time per TCP read (all its frames arrived together).

Framing on the hot path (:meth:`DirectConnection._frames`). websockets is handed the
handshake's answer up to its blank line and no further, so its parser then waits at the first
frame's boundary; from there the connection splits the stream itself. A whole unmasked final
text or binary frame without reserved bits (every market-data message) is delivered from a
slice of the TCP read; every other frame -- ping, pong, close, a fragment, anything malformed
-- is handed to websockets' parser whole, so its checks and answers stay its own and it is at
a boundary again afterwards; an incomplete frame waits for the next read; a masked or
oversize frame and everything after a close go to websockets unsplit, for good. Why:
websockets' parser runs a generator step, a ``bytearray`` copy and delete, an ``Opcode``
lookup, a dataclass and its checks for each frame: ~8 % of the capture's samples at 300
symbols, and the capture used 11-12 % less CPU with this framing (docs/performance.md §14).
Should websockets not be idle after the handshake (an extension
negotiated, another release), the connection leaves the framing to websockets, as before.

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
from websockets.protocol import OPEN

Deliver = Callable[[bytes, int, int], None]     # (raw message, receipt epoch ms, conn_id)

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_FINAL_DATA = (0x81, 0x82)      # first header byte: FIN, no reserved bits, text / binary
_END_OF_HEAD = b"\r\n\r\n"
_MAX_HEAD = 1 << 16                      # an answer without a blank line by then: not split


class DirectConnection(ClientConnection):
    deliver: Deliver | None = None
    conn_id = 0
    handler_error: BaseException | None = None
    last_message = 0.0                          # time.monotonic() of the last data message
    _now = 0.0                                  # ... of the current TCP read
    _recv_ms = 0                                # its epoch ms: every frame in it arrived then
    _parts: list[bytes] | None = None           # a fragmented message so far
    _early: list[tuple[bytes, int]] | None = None   # messages before start()
    _head: bytes | None = b""                    # the handshake's answer so far; None after
    _buf: bytearray | None = None               # framing here: an incomplete frame so far
    _need = 0                                   # ... and the bytes it takes to be whole
    framed_here = 0                             # messages framed by the hot path (not websockets)

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
        buf = self._buf
        if buf is None:
            head = self._head
            if head is None:                      # websockets frames everything, for good
                super().data_received(data)
                return
            seen = head + data
            end = seen.find(_END_OF_HEAD)
            if end < 0:
                self._head = seen if len(seen) < _MAX_HEAD else None
                super().data_received(data)
                return
            cut = end + len(_END_OF_HEAD) - len(head)
            self._head = None
            super().data_received(data[:cut])     # the answer, not one byte more
            data = data[cut:]
            if not self._idle():
                if data:
                    super().data_received(data)
                return
            self._buf = bytearray()
            if not data:
                return
        elif buf:
            buf += data
            if len(buf) < self._need:
                return
            data = bytes(buf)
            buf.clear()
        self._frames(data)

    def _idle(self) -> bool:
        """Open, plain (no extension), no fragmented message, nothing buffered in websockets'
        parser: having read only the answer, it waits for the first frame's first byte."""
        p = self.protocol
        return (p.state is OPEN and not p.extensions and p.current_size is None
                and not p.reader.buffer)

    def _frames(self, data: bytes) -> None:
        """Split ``data`` (starting at a frame boundary) into frames; see the module doc."""
        p = self.protocol
        limit = p.max_message_size
        if p.max_fragment_size is not None:
            limit = min(limit or p.max_fragment_size, p.max_fragment_size)
        n = len(data)
        pos = 0
        while pos < n:
            if n - pos < 2:
                self._keep(data, pos, 2)
                return
            b0, b1 = data[pos], data[pos + 1]
            size = b1 & 0x7F
            head = 2
            if size >= 126:
                head = 4 if size == 126 else 10
                if n - pos < head:
                    self._keep(data, pos, head)
                    return
                size = int.from_bytes(data[pos + 2:pos + head], "big")
            end = pos + head + size
            if b1 & 0x80 or (limit is not None and size > limit):   # masked / too big
                self._unsplit(data[pos:])
                return
            if end > n:
                self._keep(data, pos, end - pos)
                return
            if b0 in _FINAL_DATA and p.current_size is None:
                deliver = self.deliver
                self.last_message = self._now
                self.framed_here += 1
                if deliver is not None:          # (inline, not _message: once per message)
                    try:
                        deliver(data[pos + head:end], self._recv_ms, self.conn_id)
                    except Exception as exc:
                        self._failed(exc)
                        return
                else:
                    self._message(data[pos + head:end])
            else:
                super().data_received(data[pos:end])   # one whole frame: websockets' own
                if p.state is not OPEN:
                    self._unsplit(data[end:])
                    return
            pos = end
        self._need = 0

    def _keep(self, data: bytes, pos: int, need: int) -> None:
        """The frame starting at ``pos`` is incomplete: keep it for the next read."""
        self._buf += data[pos:]                # type: ignore[operator]
        self._need = need

    def _unsplit(self, rest: bytes) -> None:
        """From here on websockets frames everything (oversize, masked, closing)."""
        self._buf = None
        if rest:
            super().data_received(rest)

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
        self._message(raw)

    def _message(self, raw: bytes) -> None:
        """A whole data message: to the handler, or held until :meth:`start`."""
        if self.deliver is not None:
            self._call(self.deliver, raw, self._recv_ms)
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
