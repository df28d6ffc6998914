"""The connection's own framing (exchange/direct.py, "Framing on the hot path") against a real
loopback server that writes chosen bytes: websockets' sans-I/O ``ServerProtocol`` does the
handshake and reads the client's frames (pongs, closes), the frames the client gets are
written raw, split at arbitrary points. Every message must arrive whole, once, in order, as
websockets alone would deliver it; pings still get their pong; anything the protocol refuses
(a masked frame, a reserved bit, an oversize frame) still ends the connection, with nothing
after it delivered."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings, strategies as st
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from ofi_cvd_harvest.exchange import direct
from ofi_cvd_harvest.exchange.ws import WsFeed


def frames_bytes(frames: list[Frame]) -> bytes:
    return b"".join(f.serialize(mask=False) for f in frames)


class RawServer:
    """Accepts one connection at a time; on each, answers the handshake and writes the next
    script: a list of byte chunks, written apart (TCP_NODELAY, a pause between), with the
    first chunk glued to the handshake response."""

    def __init__(self, scripts: list[list[bytes]], head_cut: int | None = None):
        self.scripts = scripts
        self.head_cut = head_cut       # split the answer + first chunk here (in the answer?)
        self.client_frames: list[Frame] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        proto = ServerProtocol()
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        sock = writer.get_extra_info("socket")
        sock.setsockopt(6, 1, 1)                # TCP_NODELAY: the chunks go out apart
        request = None
        while request is None:
            data = await reader.read(65536)
            if not data:
                return
            proto.receive_data(data)
            request = next((e for e in proto.events_received() if isinstance(e, Request)), None)
        proto.send_response(proto.accept(request))
        head = b"".join(proto.data_to_send())
        chunks = list(script) or [b""]
        chunks[0] = head + chunks[0]
        if self.head_cut is not None:
            chunks[:1] = [chunks[0][:self.head_cut], chunks[0][self.head_cut:]]
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.002)
        try:                                     # then read the client's frames until it goes
            while data := await reader.read(65536):
                proto.receive_data(data)
                self.client_frames += [e for e in proto.events_received()
                                       if isinstance(e, Frame)]
                for out in proto.data_to_send():
                    if not out:                  # the protocol says: close the TCP connection
                        writer.close()
                        return
                    writer.write(out)
        except ConnectionError:
            pass
        writer.close()


async def run_feed(server: RawServer, until, timeout=5.0):
    got: list[bytes] = []
    closes: list[str] = []
    conns: list[direct.DirectConnection] = []
    orig_start = direct.DirectConnection.start

    def start(self, deliver, conn_id):           # note each connection to look at it after
        conns.append(self)
        orig_start(self, deliver, conn_id)

    direct.DirectConnection.start = start
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    feed = WsFeed(f"ws://127.0.0.1:{port}/stream?streams=a@aggTrade", endpoint="market",
                  on_message=lambda raw, ms, cid: got.append(raw),
                  on_close=lambda cid, reason, d: closes.append(reason),
                  reconnect_base_sec=0.05, reconnect_max_sec=0.1, seed=1)
    task = asyncio.create_task(feed.run(stop))
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not until(got, closes) and loop.time() < end and not task.done():
            await asyncio.sleep(0.01)
    finally:
        direct.DirectConnection.start = orig_start
        stop.set()
        await asyncio.wait_for(task, 5)
        srv.close()
    return got, closes, conns


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


payload = st.one_of(st.binary(max_size=40),
                    st.sampled_from([125, 126, 127, 65535, 65536, 70000]).map(lambda n: b"x" * n))
item = st.one_of(
    st.tuples(st.just("text"), payload),
    st.tuples(st.just("binary"), payload),
    st.tuples(st.just("fragments"), st.lists(st.binary(max_size=300), min_size=2, max_size=4)),
    st.tuples(st.just("ping"), st.binary(max_size=20)),
)


@settings(max_examples=25, deadline=None)
@given(items=st.lists(item, min_size=1, max_size=12),
       cuts=st.lists(st.integers(0, 10**6), max_size=12), head_cut=st.integers(1, 300))
def test_any_split_of_any_frames_delivers_every_message_whole_and_in_order(items, cuts,
                                                                           head_cut):
    """Also with the handshake's answer cut anywhere (its blank line too): the connection
    takes over the framing exactly at the first frame, and frames every whole data frame."""
    frames: list[Frame] = []
    want: list[bytes] = []
    pings: list[bytes] = []
    for kind, body in items:
        if kind == "fragments":
            frames.append(Frame(Opcode.TEXT, body[0], fin=False))
            frames += [Frame(Opcode.CONT, b, fin=False) for b in body[1:-1]]
            frames.append(Frame(Opcode.CONT, body[-1]))
            want.append(b"".join(body))
        elif kind == "ping":
            frames.append(Frame(Opcode.PING, body))
            pings.append(body)
        else:
            frames.append(Frame(Opcode.TEXT if kind == "text" else Opcode.BINARY, body))
            want.append(body)
    frames.append(Frame(Opcode.TEXT, b"end"))          # the last one: done when it arrives
    want.append(b"end")
    server = RawServer([split(frames_bytes(frames), cuts)], head_cut)
    got, closes, conns = asyncio.run(run_feed(server, lambda g, c: g[-1:] == [b"end"]))
    assert got == want
    assert all(type(g) is bytes for g in got)
    assert [f.data for f in server.client_frames if f.opcode is Opcode.PONG] == pings
    assert conns[0].framed_here == len(want) - sum(k == "fragments" for k, _ in items)


def test_a_long_stream_in_random_reads_is_framed_by_the_connection_itself():
    """10,000 market-data-sized messages cut at random points, the first ones in the same
    write as the handshake's answer: all arrive, every one framed by the connection itself;
    websockets' parser is left with nothing buffered."""
    rng = random.Random(7)
    bodies = [b'{"n":%d,"p":"%s"}' % (i, b"9" * rng.randrange(0, 400)) for i in range(10_000)]
    data = frames_bytes([Frame(Opcode.TEXT, b) for b in bodies])
    cuts = [rng.randrange(len(data)) for _ in range(300)]
    parsed: list[int] = []
    server = RawServer([split(data, cuts)])

    async def go():
        got, _, conns = await run_feed(server, lambda g, c: len(g) >= len(bodies), timeout=20)
        parsed.append(conns[0].protocol.reader.buffer.__len__())
        return got, conns

    got, conns = asyncio.run(go())
    assert got == bodies
    assert conns[0].framed_here == len(bodies) and parsed == [0]


def _ends_connection(bad: bytes, code: int):
    good = frames_bytes([Frame(Opcode.TEXT, b"before")])
    after = frames_bytes([Frame(Opcode.TEXT, b"after")])
    server = RawServer([[good, bad + after], [frames_bytes([Frame(Opcode.TEXT, b"again")])]])
    got, closes, _ = asyncio.run(run_feed(server, lambda g, c: b"again" in g))
    assert got == [b"before", b"again"]                 # nothing after the bad frame
    assert server.connections == 2 and closes[0].startswith("closed")
    sent_close = [f for f in server.client_frames if f.opcode is Opcode.CLOSE]
    assert sent_close and int.from_bytes(sent_close[0].data[:2], "big") == code


def test_a_masked_server_frame_ends_the_connection_as_a_protocol_error():
    masked = Frame(Opcode.TEXT, b"masked").serialize(mask=True)
    _ends_connection(masked, 1002)


def test_a_reserved_bit_without_an_extension_ends_the_connection():
    rsv = bytearray(Frame(Opcode.TEXT, b"rsv1").serialize(mask=False))
    rsv[0] |= 0x40
    _ends_connection(bytes(rsv), 1002)


def test_a_frame_over_max_size_is_refused_before_its_payload():
    """The header announces 5 MiB (max_size is 4 MiB); only the header and a little of the
    payload are sent: websockets refuses it at once (1009), nothing of it is delivered."""
    head = bytes([0x81, 127]) + (5 * 2 ** 20).to_bytes(8, "big")
    _ends_connection(head + b"y" * 1000, 1009)


def test_a_close_from_the_server_is_websockets_own_and_later_bytes_are_not_delivered():
    data = frames_bytes([Frame(Opcode.TEXT, b"one"),
                         Frame(Opcode.CLOSE, (1000).to_bytes(2, "big") + b"bye"),
                         Frame(Opcode.TEXT, b"late")])
    server = RawServer([split(data, [3, 9, 12]),
                        [frames_bytes([Frame(Opcode.TEXT, b"again")])]])
    got, closes, _ = asyncio.run(run_feed(server, lambda g, c: b"again" in g))
    assert got == [b"one", b"again"]
    assert closes[0] == "closed (1000)"
