"""How many messages/s the simulator can push to one client (issue 8 needs >= 50,000).

The simulator runs in this process (a SimulatorThread); the client is a separate process that
opens one combined-stream connection, subscribes, and reads and discards raw bytes as fast as it can, so
the figure is the simulator's, not a Python client's. Sent frames are counted by the server.

    .venv/bin/python benchmarks/bench_simulator.py --symbols 2 --speed 600 --kinds aggTrade,depth10@100ms
    .venv/bin/python benchmarks/bench_simulator.py --symbols 50 --speed 20 --seconds 10

Prints generated and sent msg/s, MB/s and the simulator process CPU seconds per second.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CLIENT = r"""
import json, socket, sys
from websockets.client import ClientProtocol
from websockets.uri import parse_uri
url, secs, streams = sys.argv[1], float(sys.argv[2]), sys.argv[3].split("/")
u = parse_uri(url)
proto = ClientProtocol(u, max_size=None)
s = socket.create_connection((u.host, u.port))
proto.send_request(proto.connect())
for d in proto.data_to_send():
    s.sendall(d)
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(65536)
proto.receive_data(buf)
proto.send_text(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}).encode())
for d in proto.data_to_send():
    s.sendall(d)
import time
end = time.monotonic() + secs
n = 0
while time.monotonic() < end:
    n += len(s.recv(1 << 20))
print(n)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=2, help="number of symbols (BTC, ETH, S000...)")
    ap.add_argument("--speed", type=float, default=400.0)
    ap.add_argument("--kinds", default="aggTrade,depth10@100ms")
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args(argv)

    import psutil

    from ofi_cvd_harvest.sim.server import SimulatorThread

    syms = ["BTCUSDT", "ETHUSDT", *[f"S{i:03d}USDT" for i in range(max(0, args.symbols - 2))]]
    syms = syms[:args.symbols]
    kinds = args.kinds.split(",")
    streams = [f"{s.lower()}@{k}" for s in syms for k in kinds]
    me = psutil.Process()
    with SimulatorThread(syms, seed=1, speed=args.speed, max_streams=max(200, len(streams)),
                         max_backlog=10**7) as st:
        url = f"{st.ws_url}/stream"           # streams go in one SUBSCRIBE (URLs are < 8 KB)
        client = subprocess.Popen([sys.executable, "-c", CLIENT, url, str(args.seconds + 2),
                                   "/".join(streams)],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)                       # warm-up
        s0, c0, t0 = st.stats, me.cpu_times(), time.monotonic()
        time.sleep(args.seconds)
        s1, c1, t1 = st.stats, me.cpu_times(), time.monotonic()
        client.wait(timeout=60)
        el = t1 - t0
        gen = (s1["messages"] - s0["messages"]) / el
        sent = (s1["frames_sent"] - s0["frames_sent"]) / el
        cpu = ((c1.user + c1.system) - (c0.user + c0.system)) / el
        print(f"symbols={len(syms)} speed={args.speed:g} streams={len(streams)} kinds={args.kinds}")
        print(f"generated {gen:,.0f} msg/s   sent to one client {sent:,.0f} msg/s   "
              f"backlog {len(st.sim._clients) and max(len(c.queue) for c in st.sim._clients):,}"
              f"   simulator CPU {cpu:.2f} s/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
