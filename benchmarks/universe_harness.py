"""The harness of ``bench_universe.py`` (and ``bench_growth.py``): the symbol set, the
pre-generated simulator process, the bare ``json.loads`` consumer, percentiles and the memory
diagnostics. Kept apart so the benchmark itself reads as the capture's measurement."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from bench_throughput import _pin  # noqa: E402  (one CPU-pinning helper for both benchmarks)

START_MS = 1_750_000_000_000


def symbols_for(n: int) -> list[str]:
    base = ["BTCUSDT", "ETHUSDT"]
    return (base + [f"S{i:03d}USDT" for i in range(max(0, n - 2))])[:n]


class Hist:
    """Log-bucketed histogram (1 % bins): constant memory for millions of samples, so the
    harness does not inflate the capture's RSS."""
    __slots__ = ("b", "n", "mx")

    def __init__(self) -> None:
        self.b: dict[int, int] = {}
        self.n = 0
        self.mx = 0.0

    def add(self, v: float) -> None:
        k = int(math.log(v) * 100) if v > 1e-9 else -10**9
        self.b[k] = self.b.get(k, 0) + 1
        self.n += 1
        if v > self.mx:
            self.mx = v

    def q(self, q: float) -> float:
        if not self.n:
            return float("nan")
        c, target = 0, q * self.n
        for k in sorted(self.b):
            c += self.b[k]
            if c >= target:
                return 0.0 if k == -10**9 else min(self.mx, math.exp((k + 0.5) / 100))
        return self.mx

    def __add__(self, other: "Hist") -> "Hist":
        h = Hist()
        for src in (self, other):
            for k, v in src.b.items():
                h.b[k] = h.b.get(k, 0) + v
        h.n, h.mx = self.n + other.n, max(self.mx, other.mx)
        return h


def mem_diag(cap) -> dict:
    """Where the capture's memory is (diagnostics for the RSS column): glibc malloc's in-use
    and free-but-retained bytes (``mallinfo2``), live Python blocks, pyarrow's pool, the rows
    the live CVD monitor holds, the threads."""
    import ctypes
    import threading
    out: dict = {"py_blocks": sys.getallocatedblocks(), "threads": threading.active_count()}
    try:
        class MI2(ctypes.Structure):
            _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks",
                        "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MI2
        mi = libc.mallinfo2()
        out.update(malloc_used_mb=(mi.uordblks + mi.hblkhd) / 2**20, malloc_free_mb=mi.fordblks / 2**20,
                   malloc_mmap_mb=mi.hblkhd / 2**20)
    except (OSError, AttributeError):
        pass
    try:
        import pyarrow as pa
        out["arrow_mb"] = pa.total_allocated_bytes() / 2**20
    except ImportError:
        pass
    states = getattr(cap, "states", {})
    ids = dedup_b = 0
    for state in list(states.values()):   # RecentIdWindow: one int64 array per symbol
        d = getattr(state, "dedup", None)
        if d is not None and hasattr(d, "_slots"):
            ids += len(d)
            dedup_b += sys.getsizeof(d._slots)
    out.update(dedup_ids=ids, dedup_mb=dedup_b / 2**20)
    live = getattr(cap, "live_cvd", None)
    if live is not None:
        held = getattr(live, "rows_held", None)
        if callable(held):
            out["cvd_rows"] = held()
        elif hasattr(live, "_rings"):
            out["cvd_rows"] = sum(r.n for r in list(live._rings.values()))
    return out


def rss_trend(rows: list[dict], speed: float, period_s: float = 60.0) -> dict:
    """Is the RSS flat? The least-squares slope of the interval samples (MB per simulated
    minute) and the highest sample of each rotation period (``parquet_rotate_sec`` of wall
    time): the capture's RSS is a sawtooth over a rotation, so its peaks are what must not
    climb."""
    pts = [(r["t"], r["rss_mb"]) for r in rows]
    if len(pts) < 2:
        return {"slope_mb_per_sim_min": float("nan"), "period_max_mb": []}
    n = len(pts)
    mt, mr = sum(t for t, _ in pts) / n, sum(r for _, r in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts) or 1.0
    slope = sum((t - mt) * (r - mr) for t, r in pts) / var   # MB per wall second
    peaks: dict[int, float] = {}
    for t, r in pts:
        k = int(t // period_s)
        peaks[k] = max(peaks.get(k, 0.0), r)
    return {"slope_mb_per_sim_min": slope * 60 / speed,
            "period_max_mb": [round(peaks[k]) for k in sorted(peaks)]}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


# -- simulator process ------------------------------------------------------------------------
def pregen_block(n: int, sim_seconds: float):
    """The replay block of ``n`` symbols (``sim_seconds`` of the synthetic market), cached."""
    from bench_throughput import pregen
    cache = Path(tempfile.gettempdir()) / f"ofi_bench_universe_{n}_{sim_seconds:g}s.json"
    return pregen(0, cache, tuple(symbols_for(n)), sim_seconds=sim_seconds, seed=7)


def serve(n: int, speed: float, portfile: str, pin: int, source: str = "pregen",
          block_s: float = 60.0) -> None:
    if pin >= 0:
        _pin(pin)
    from ofi_cvd_harvest.sim.server import Simulator

    async def main() -> None:
        if source == "pregen":
            from bench_throughput import LoopedBlock, PregenSource
            src = PregenSource(LoopedBlock(pregen_block(n, block_s)), 0, 10**9,
                               symbols_for(n), speed=speed)
            sim = Simulator(symbols_for(n), source=src, max_backlog=10**7, ping_interval=None)
            src.sim = sim
        else:
            sim = Simulator(symbols_for(n), seed=7, speed=speed, start_ms=START_MS,
                            max_backlog=10**7, ping_interval=None)
        await sim.start()
        src = sim.source
        wall0 = time.time() - (time.monotonic() - src._t0) if source != "pregen" else None
        Path(portfile + ".tmp").write_text(json.dumps({"port": sim.port, "wall0": wall0}))
        os.replace(portfile + ".tmp", portfile)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(sys.stdin.fileno(), stop.set)
        t_cpu = os.times()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
            c = os.times()
            if source == "pregen":
                lag = 0
                if src.wall0 is not None and not os.path.exists(portfile + ".wall0"):
                    Path(portfile + ".wall0").write_text(str(src.wall0))
            else:
                lag = src.server_time_ms() - src.generated_until_ms
            print("SIM " + json.dumps({
                "backlog": max((len(c.queue) for c in sim._clients), default=0),
                "clients": len(sim._clients), "messages": sim.stats["messages"],
                "sent": sim.stats["frames_sent"], "gen_lag_ms": lag,
                "cpu": (c.user + c.system) - (t_cpu.user + t_cpu.system)}), flush=True)
            t_cpu = c
        await sim.stop()

    asyncio.run(main())


# -- capture process --------------------------------------------------------------------------


def bare(n: int, ws: str, seconds: float, warmup: float, pin: int) -> None:
    """The same connections (``plan_connections``, ``WsFeed``) on the same streams, each
    message ``json.loads``-ed and dropped: what receiving alone costs at this rate."""
    if pin >= 0:
        _pin(pin)
    from ofi_cvd_harvest.exchange.ws import WsFeed
    from ofi_cvd_harvest.protocol.streams import plan_connections

    async def main() -> dict:
        cnt = [0]

        def on_message(raw: bytes, recv_ms: int, conn_id: int) -> None:
            json.loads(raw)
            cnt[0] += 1
        syms = symbols_for(n)
        streams = [f"{x.lower()}@aggTrade" for x in syms] + [f"{x.lower()}@depth10@100ms" for x in syms]
        feeds = [WsFeed(p.url, endpoint=p.endpoint, on_message=on_message)
                 for p in plan_connections(ws, streams, 200)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(f.run(stop)) for f in feeds]
        await asyncio.sleep(warmup)
        t0, c0, n0 = time.perf_counter(), os.times(), cnt[0]
        await asyncio.sleep(seconds)
        t1, c1, n1 = time.perf_counter(), os.times(), cnt[0]
        stop.set()
        await asyncio.wait(tasks, timeout=5)
        el = t1 - t0
        return {"seconds": el, "messages": n1 - n0, "msg_s": (n1 - n0) / el,
                "cpu_pct": 100 * ((c1.user + c1.system) - (c0.user + c0.system)) / el}

    print("RESULT " + json.dumps(run_loop(main(), loop_kind())), flush=True)


def loop_kind() -> str:
    """The event loop both sides run on: ``--event-loop`` (``BENCH_EVENT_LOOP``), else the
    capture's default (``capture.event_loop``)."""
    kind = os.environ.get("BENCH_EVENT_LOOP")
    if kind:
        return kind
    try:
        from ofi_cvd_harvest.settings import load_settings
        return load_settings(env={}).event_loop
    except AttributeError:       # code from before the setting: asyncio's loop
        return "asyncio"


def run_loop(main, kind: str):
    """``asyncio.run`` on ``kind``'s loop, the product's way (capture/eventloop.py)."""
    try:
        from ofi_cvd_harvest.capture.eventloop import run
    except ImportError:          # code from before the setting
        if kind != "asyncio":
            raise SystemExit(f"this checkout has no capture.event_loop; cannot run {kind}")
        return asyncio.run(main)
    return run(main, kind)


def msg_per_cpu_s(res: dict) -> float:
    return res["msg_s"] / (res["cpu_pct"] / 100) if res.get("cpu_pct") else float("nan")


# -- driver -----------------------------------------------------------------------------------
