"""Benchmark (issue 8.1): end-to-end capture throughput over real WebSocket connections,
side by side with a bare baseline consumer, each on one core.

Why a pre-generated replay: the synthetic market generates ~13-20k msg/s on this machine
(``bench_simulator.py``), below the 50k msg/s target. So the messages are generated once by
the seeded :class:`SyntheticMarket` (BTCUSDT + ETHUSDT, aggTrade + depth10@100ms, the real
mix: ~23 % book frames), cached under ``$TMPDIR``, and served by the real simulator server
(same websockets server, same framing, same ``/market`` + ``/public`` combined streams)
through a replay :class:`MarketSource`. The block is looped with shifted ids and times so ids
stay consecutive and the ``pu`` chain unbroken.

Processes: the simulator server runs in its own process pinned to the last CPU; each consumer
runs in a fresh process pinned to CPU 0 (one core for everything: event loop, writer thread):

* ``capture``  - the real ``Capture.run`` (decode -> dedup -> id tracker -> columnar buffers ->
  1 s crash-safe segments -> Parquet rotation every ``--rotate`` s, files checked at the end);
* ``baseline`` - the same ``WsFeed`` connection code on the same URLs, ``json.loads`` only.

Modes: ``saturate`` (the server keeps 20-60k frames queued per client, so the consumer runs
flat out: its rate is its capacity) and ``--rate R`` (paced: is R sustained, what CPU does it
cost). After ``--warmup`` s, messages and process CPU time are sampled over ``--seconds`` s.

    .venv/bin/python benchmarks/bench_throughput.py [--seconds 15] [--rate 50000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

SYMBOLS = ("BTCUSDT", "ETHUSDT")
START_MS = 1_750_000_000_000
HERE = Path(__file__).resolve()


def _pin(cpu: int) -> None:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[cpu % len(cpus)]})
    except (AttributeError, OSError):
        pass


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- pre-generation ---------------------------------------------------------------------------
def pregen(block: int, cache: Path, symbols=SYMBOLS, sim_seconds: float | None = None,
           seed: int = 1) -> list[tuple[str, bytes]]:
    """``block`` messages (or ``sim_seconds`` of simulated time) of the seeded synthetic market
    for ``symbols`` (aggTrade + depth10@100ms), as (stream, payload bytes); cached in ``cache``."""
    if cache.exists():
        return [(s, r.encode()) for s, r in orjson.loads(cache.read_bytes())]
    from ofi_cvd_harvest.sim.market import SyntheticMarket
    m = SyntheticMarket(symbols, seed=seed, speed=1, start_ms=START_MS)
    streams = frozenset([f"{s.lower()}@aggTrade" for s in symbols] +
                        [f"{s.lower()}@depth10@100ms" for s in symbols])
    out: list[tuple[str, bytes]] = []
    now = START_MS
    step = 20_000 if sim_seconds is None else 1_000
    end = None if sim_seconds is None else START_MS + int(sim_seconds * 1000)
    while (len(out) < block) if end is None else (m.generated_until_ms < end):
        if m.generated_until_ms >= now:    # the market bounds the windows made per poll
            now = now + step if end is None else min(now + step, end)
        out.extend((x.stream, x.raw if x.raw is not None else orjson.dumps(x.data))
                   for x in m.poll(now, streams))
    if end is None:
        out = out[:block]
    cache.write_bytes(orjson.dumps([(s, r.decode()) for s, r in out]))
    return out


class LoopedBlock:
    """The pre-generated block, repeated with ids/times shifted: copy k adds k*span to E/T,
    k*id-span to each symbol's a/f/l and to the global update ids; the first depth message of
    each symbol in a copy points (``pu``) at the last ``u`` of the previous copy."""

    def __init__(self, block: list[tuple[str, bytes]]):
        self.items = [(s, orjson.loads(r), r) for s, r in block]
        ts = [d["E"] for _, d, _ in self.items]
        self.dt = max(ts) - min(ts) + 100
        amin: dict[str, int] = {}
        amax: dict[str, int] = {}
        fmin: dict[str, int] = {}
        fmax: dict[str, int] = {}
        umin, umax = None, None
        self.first_depth: dict[str, int] = {}
        self.last_u: dict[str, int] = {}
        for i, (s, d, _) in enumerate(self.items):
            sym = d["s"]
            if d["e"] == "aggTrade":
                amin[sym] = min(amin.get(sym, d["a"]), d["a"])
                amax[sym] = max(amax.get(sym, d["a"]), d["a"])
                fmin[sym] = min(fmin.get(sym, d["f"]), d["f"])
                fmax[sym] = max(fmax.get(sym, d["l"]), d["l"])
            else:
                umin = d["U"] if umin is None else min(umin, d["U"])
                umax = d["u"] if umax is None else max(umax, d["u"])
                self.first_depth.setdefault(sym, i)
                self.last_u[sym] = d["u"]
        self.da = {s: amax[s] - amin[s] + 1 for s in amax}
        self.df = {s: fmax[s] - fmin[s] + 1 for s in fmax}
        self.du = (umax - umin + 1) if umax is not None else 0

    def __len__(self) -> int:
        return len(self.items)

    def payload(self, n: int) -> tuple[str, bytes]:
        k, i = divmod(n, len(self.items))
        stream, d, raw = self.items[i]
        if k == 0:
            return stream, raw
        d = dict(d)
        d["E"] += k * self.dt
        d["T"] += k * self.dt
        sym = d["s"]
        if d["e"] == "aggTrade":
            d["a"] += k * self.da[sym]
            d["f"] += k * self.df[sym]
            d["l"] += k * self.df[sym]
        else:
            d["U"] += k * self.du
            d["u"] += k * self.du
            if self.first_depth.get(sym) == i:
                d["pu"] = self.last_u[sym] + (k - 1) * self.du
            else:
                d["pu"] += k * self.du
        return stream, orjson.dumps(d)


# -- server process ---------------------------------------------------------------------------
class PregenSource:
    """A MarketSource serving the looped block: paced at ``rate`` msg/s, or (rate 0) keeping
    every client's backlog between LOW and HIGH frames (saturation)."""
    LOW, HIGH = 20_000, 60_000

    def __init__(self, looped: LoopedBlock, rate: float, limit: int, symbols=SYMBOLS,
                 speed: float | None = None):
        from ofi_cvd_harvest.sim.market import SyntheticMarket
        self.looped = looped
        self.rate = rate
        self.limit = limit
        self.speed = speed        # set: release by event time (E) at speed x real time
        self.sent = 0
        self.t0: float | None = None
        self.wall0: float | None = None
        self.sim = None
        self._symbols = tuple(symbols)
        self._meta = SyntheticMarket(symbols, seed=1, speed=1)   # exchangeInfo, depth
        self._need = {f"{s.lower()}@aggTrade" for s in symbols} | {
            f"{s.lower()}@depth10@100ms" for s in symbols}
        self._next: tuple[str, bytes, int] | None = None

    @property
    def symbols(self):
        return self._symbols

    def server_time_ms(self) -> int:
        """The frames' clock (their E starts at START_MS): the capture rejects frame times more
        than a day away from the exchange clock it learns here."""
        if self.wall0 is None:
            return START_MS
        return START_MS + int((time.time() - self.wall0) * 1000 * (self.speed or 1))

    def poll(self, now_ms, streams):
        from ofi_cvd_harvest.sim.source import Message
        if not self._need.issubset(streams):
            return []                        # wait until the consumer subscribed everything
        if self.t0 is None:
            self.t0 = time.monotonic()
            self.wall0 = time.time()
        if self.speed is not None:
            return self._poll_timed(Message)
        if self.rate > 0:
            n = int(self.rate * (time.monotonic() - self.t0)) - self.sent
        else:
            backlog = max((len(c.queue) for c in self.sim._clients), default=0)
            n = self.HIGH - backlog if backlog < self.LOW else 0
        n = max(0, min(n, self.limit - self.sent, 20_000))
        out = []
        payload = self.looped.payload
        for j in range(self.sent, self.sent + n):
            s, raw = payload(j)
            out.append(Message(s, {}, 0, raw))
        self.sent += n
        return out

    def _poll_timed(self, Message):
        """Messages whose E is due: E <= START_MS + speed x wall time since the first poll."""
        due = START_MS + self.speed * (time.monotonic() - self.t0) * 1000
        out = []
        payload = self.looped.payload
        while self.sent < self.limit:
            if self._next is None:
                s, raw = payload(self.sent)
                k, i = divmod(self.sent, len(self.looped))
                self._next = (s, raw, self.looped.items[i][1]["E"] + k * self.looped.dt)
            s, raw, e = self._next
            if e > due:
                break
            out.append(Message(s, {}, e, raw))
            self._next = None
            self.sent += 1
        return out

    def agg_trades(self, symbol, from_id=None, start_ms=None, end_ms=None, limit=500):
        return []

    def depth_snapshot(self, symbol, limit):
        return self._meta.depth_snapshot(symbol, limit)

    def exchange_info(self):
        return self._meta.exchange_info()


def serve(cache: str, rate: float, limit: int, portfile: str) -> None:
    _pin(-1)
    from ofi_cvd_harvest.sim.server import Simulator
    looped = LoopedBlock(pregen(0, Path(cache)))
    src = PregenSource(looped, rate, limit)

    async def main() -> None:
        sim = Simulator(SYMBOLS, source=src, max_backlog=10**7, tick_s=0.002,
                        ping_interval=None)
        src.sim = sim
        await sim.start()
        Path(portfile + ".tmp").write_text(str(sim.port))
        os.replace(portfile + ".tmp", portfile)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(sys.stdin.fileno(), stop.set)   # parent closes stdin -> exit
        await stop.wait()
        await sim.stop()

    asyncio.run(main())


# -- consumer processes -----------------------------------------------------------------------
async def _window(counter, warmup: float, seconds: float, out: dict, stop: asyncio.Event):
    await asyncio.sleep(warmup)
    t0, c0, n0 = time.perf_counter(), os.times(), counter()
    await asyncio.sleep(seconds)
    t1, c1, n1 = time.perf_counter(), os.times(), counter()
    el = t1 - t0
    out.update(messages=n1 - n0, seconds=el, rate=(n1 - n0) / el,
               cpu_s=(c1.user + c1.system) - (c0.user + c0.system))
    stop.set()


def consume(kind: str, ws: str, rest: str, warmup: float, seconds: float, rotate: float,
            profile: str | None) -> None:
    _pin(0)
    out: dict = {"kind": kind}
    prof = None
    if profile:
        from pyinstrument import Profiler
        prof = Profiler(interval=0.001, async_mode="disabled")
    if kind == "baseline":
        from ofi_cvd_harvest.exchange.ws import WsFeed
        from ofi_cvd_harvest.protocol.streams import plan_connections

        async def main() -> None:
            n = [0]

            def on_message(raw: bytes, recv_ms: int, conn_id: int) -> None:
                json.loads(raw)
                n[0] += 1
            streams = [f"{s.lower()}@aggTrade" for s in SYMBOLS] + [
                f"{s.lower()}@depth10@100ms" for s in SYMBOLS]
            feeds = [WsFeed(p.url, endpoint=p.endpoint, on_message=on_message)
                     for p in plan_connections(ws, streams, 200)]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(f.run(stop)) for f in feeds]
            await _window(lambda: n[0], warmup, seconds, out, stop)
            await asyncio.wait(tasks, timeout=5)
        from universe_harness import loop_kind, run_loop   # the capture's loop, both sides
        run_loop(main(), loop_kind())
    else:
        from ofi_cvd_harvest.capture.runner import Capture
        from ofi_cvd_harvest.settings import load_settings
        tmp = Path(tempfile.mkdtemp(prefix="bench_tp_"))
        s = load_settings(env={}, symbols=SYMBOLS, ws_base_url=ws, rest_base_url=rest,
                          data_dir=tmp / "data", artifacts_dir=tmp / "art", prometheus_port=0,
                          parquet_rotate_sec=rotate, log_level="WARNING")

        async def main() -> None:
            cap = Capture(s)
            stop = asyncio.Event()
            run = asyncio.create_task(cap.run(warmup + seconds + 600, stop))
            if prof is not None:
                async def prof_window():
                    await asyncio.sleep(warmup)
                    prof.start()
                    await asyncio.sleep(seconds)
                    prof.stop()
                asyncio.create_task(prof_window())
            await _window(lambda: sum(cap.messages.values()), warmup, seconds, out, stop)
            t0 = time.perf_counter()
            summ = await run
            out["shutdown_s"] = time.perf_counter() - t0
            out["received"] = summ.messages
            out["trades_written"] = sum(x.trades_written for x in summ.symbols.values())
            out["book_rows"] = sum(x.book_rows for x in summ.symbols.values())
            out["duplicates"] = sum(x.duplicates for x in summ.symbols.values())
            out["book_gaps"] = sum(x.book_gaps for x in summ.symbols.values())
            out["files"] = summ.files_written
            out["errors"] = summ.errors
        from universe_harness import loop_kind, run_loop   # the capture's loop, both sides
        run_loop(main(), loop_kind())
        import pyarrow.parquet as pq
        rows = {"agg_trade": 0, "book": 0}
        nbytes = 0
        for f in (tmp / "data" / "raw").rglob("*.parquet"):
            st = f.parent.name.split("=", 1)[1]
            if st in rows:
                rows[st] += pq.ParquetFile(f).metadata.num_rows
            nbytes += f.stat().st_size
        out["rows_in_files"] = rows
        out["raw_bytes"] = nbytes
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    if prof is not None:
        Path(profile).write_text(prof.output_text(unicode=False, color=False, show_all=False))
    print("RESULT " + json.dumps(out))


# -- driver -----------------------------------------------------------------------------------
def run_pair(args, cache: Path, kind: str, rate: float) -> dict:
    limit = int((args.warmup + args.seconds + 5) * max(rate, 150_000))
    with tempfile.TemporaryDirectory() as d:
        portfile = os.path.join(d, "port")
        srv = subprocess.Popen([sys.executable, str(HERE), "--serve", str(cache), str(rate),
                                str(limit), portfile], stdin=subprocess.PIPE)
        try:
            for _ in range(600):
                if os.path.exists(portfile) or srv.poll() is not None:
                    break
                time.sleep(0.1)
            port = Path(portfile).read_text().strip()
            cmd = [sys.executable, str(HERE), "--consume", kind, f"ws://127.0.0.1:{port}",
                   f"http://127.0.0.1:{port}", str(args.warmup), str(args.seconds),
                   str(args.rotate)]
            if args.profile and kind == "capture":
                cmd.append(args.profile)
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                raise RuntimeError(f"{kind} consumer failed:\n{p.stdout}\n{p.stderr[-3000:]}")
            res = json.loads(line[-1][7:])
        finally:
            srv.stdin.close()
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                srv.kill()
    res["load"] = _load()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="paced msg/s (0 = saturate: consumer runs flat out)")
    ap.add_argument("--rotate", type=float, default=5.0, help="PARQUET_ROTATE_SEC for the run")
    ap.add_argument("--block", type=int, default=200_000, help="pre-generated messages")
    ap.add_argument("--only", choices=("capture", "baseline"))
    ap.add_argument("--profile", help="write a pyinstrument text profile of the capture here")
    ap.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--consume", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        cache, rate, limit, portfile = args.serve
        serve(cache, float(rate), int(limit), portfile)
        return 0
    if args.consume:
        c = args.consume
        consume(c[0], c[1], c[2], float(c[3]), float(c[4]), float(c[5]),
                c[6] if len(c) > 6 else None)
        return 0
    cache = Path(tempfile.gettempdir()) / f"ofi_bench_pregen_{args.block}.json"
    if not cache.exists():
        t0 = time.perf_counter()
        blk = pregen(args.block, cache)
        print(f"pre-generated {len(blk):,} messages in {time.perf_counter() - t0:.1f} s -> {cache}")
    mode = f"paced at {args.rate:,.0f} msg/s" if args.rate else "saturating"
    print(f"{'/'.join(SYMBOLS)} aggTrade + depth10@100ms, 2 connections, simulator server "
          f"{mode}; consumer pinned to 1 core; window {args.seconds:g} s after "
          f"{args.warmup:g} s warm-up; {os.cpu_count()} CPUs")
    results = {}
    for kind in ("baseline", "capture"):
        if args.only and kind != args.only:
            continue
        r = results[kind] = run_pair(args, cache, kind, args.rate)
        us = r["cpu_s"] / max(1, r["messages"]) * 1e6
        extra = ""
        if kind == "capture":
            rif = r["rows_in_files"]
            ok = (rif["agg_trade"] == r["trades_written"] and rif["book"] == r["book_rows"])
            extra = (f"  | received {r['received']:,}, written {rif['agg_trade']:,} trades + "
                     f"{rif['book']:,} book rows in {r['files']} files "
                     f"({'all rows in files' if ok else 'ROW MISMATCH'}), dups "
                     f"{r['duplicates']}, book gaps {r['book_gaps']}, errors {r['errors']}, "
                     f"shutdown {r['shutdown_s']:.1f} s")
        print(f"{kind:9s}: {r['rate']:>9,.0f} msg/s  {us:6.1f} CPU-us/msg  "
              f"(CPU {r['cpu_s'] / r['seconds']:.2f} s/s)  load {r['load']}{extra}")
    if len(results) == 2:
        b, c = results["baseline"], results["capture"]
        share = c["rate"] / b["rate"]
        print(f"capture / baseline rate: {share:.0%}   (targets: >= 50,000 msg/s: "
              f"{'MET' if c['rate'] >= 50_000 else 'NOT MET'}; >= 70 % of baseline: "
              f"{'MET' if share >= 0.7 else 'NOT MET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
