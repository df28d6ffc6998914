"""Benchmark (issue 8.2): a whole-universe capture -- 300 symbols, aggTrade + depth10@100ms, in
one capture process over several connections (<= 200 streams each) -- at the simulator's
realistic per-symbol rates, for ``--sim-minutes`` of simulated time at ``--speed``.

Processes: the simulator (seeded synthetic market: BTCUSDT, ETHUSDT + 298 synthetic names at
1-15 trades/s each, ten depth10 snapshots/s each) runs in its own process; the real
``Capture.run`` runs in this benchmark's child process with these harness hooks (no product
code changed):

* receipt -> buffered (about 160 messages a second are timed -- the first trade after each 5 ms
  lag probe, ~150/s, and the first book frame after one, ~10/s as book frames come in 100 ms
  bursts -- and the others run with no harness code at all, so the harness costs the
  capture's CPU figure nothing measurable): time from entering the capture's message handler
  (right after websockets parsed the frame, inside the TCP read: exchange/direct.py) until
  the row is in
  the columnar buffer -- for trades the synchronous hot path, for book rows including the
  wait in the book queue and the BookHandler;
* event-loop lag: a 5 ms ticker's overshoot, i.e. how long any frame can wait in the socket
  because the loop is busy (rotation, segment flush, metrics) -- an upper bound of the
  "before receipt" part;
* wire latency: buffered time minus the wall time at which the simulator's clock released the
  message (from ``E``, the speed factor and the simulator's start), which adds the
  simulator's 5 ms pacing tick and its own delays -- an upper bound of the whole path;
* backlog: the capture's book queue, its buffered rows, and the simulator's per-client send
  queues (frames the capture has not read yet); CPU % (process, all threads) and RSS.

Memory (issue 8.2): each interval also prints where the capture's memory is -- glibc malloc's
bytes in use and freed-but-retained (``mallinfo2``), live Python blocks, pyarrow's pool, the
rows the live CVD monitor holds, and the per-symbol dedup windows (ids and their
bytes). Diagnostics to attribute RSS growth: ``--no-live-cvd`` (capture without the monitor),
``--live-cvd-impl FILE`` (another live_cvd.py, for before/after), ``--dedup-lru N`` (another
DEDUP_LRU), and ``BENCH_TRACEMALLOC=1`` in the environment (top tracemalloc growers at each
interval -- costly: it slows the capture several times, use it only to find suspects).

    .venv/bin/python benchmarks/bench_universe.py [--symbols 300] [--speed 2.5] [--sim-minutes 10]
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

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from bench_throughput import _pin  # noqa: E402  (one CPU-pinning helper for both benchmarks)
from universe_harness import (START_MS, Hist, bare, loop_kind, mem_diag,  # noqa: E402
                              msg_per_cpu_s, pregen_block, rss_trend, run_loop, serve,
                              symbols_for)


def capture(n: int, speed: float, ws: str, wall0_src: str, seconds: float, warmup: float,
            pin: int, interval: float) -> None:
    if pin >= 0:
        _pin(pin)
    import psutil

    from ofi_cvd_harvest.capture.runner import Capture
    from ofi_cvd_harvest.protocol.records import AggTrade
    from ofi_cvd_harvest.settings import TABLE, load_settings
    BY_KEY_ATTRS = {e.name for e in TABLE}

    tmp = Path(tempfile.mkdtemp(prefix="bench_universe_"))
    rest = ws.replace("ws://", "http://")
    s = load_settings(env={}, symbols=tuple(symbols_for(n)), ws_base_url=ws, rest_base_url=rest,
                      data_dir=tmp / "data", artifacts_dir=tmp / "art", prometheus_port=0,
                      log_level="WARNING",
                      **({"event_loop": os.environ["BENCH_EVENT_LOOP"]}   # (older code: none)
                         if os.environ.get("BENCH_EVENT_LOOP") and "event_loop" in BY_KEY_ATTRS
                         else {}),
                      **({"dedup_lru": int(os.environ["BENCH_DEDUP_LRU"])}
                         if os.environ.get("BENCH_DEDUP_LRU") else {}))
    cap = Capture(s)
    if os.environ.get("BENCH_NO_LIVE_CVD"):   # diagnostic: the capture without the live CVD monitor
        cap.live_cvd = None
    elif os.environ.get("BENCH_LIVE_CVD_IMPL"):   # diagnostic: another live_cvd.py (before/after)
        from bench_live_cvd_memory import load_impl
        impl = load_impl(os.environ["BENCH_LIVE_CVD_IMPL"])(s)
        import inspect
        if len(inspect.signature(impl.add).parameters) < 5:   # before issue 15: no price
            impl.add = lambda sym, e, q, m, price=None, add=impl.add: add(sym, e, q, m)
        cap.live_cvd = impl
    proc = psutil.Process()
    pc = time.perf_counter_ns
    H = {k: Hist() for k in ("trade", "book", "wire", "lag")}      # whole window
    I = {k: Hist() for k in ("trade", "book", "lag")}              # current interval
    wall0_ms = [None]      # simulator wall time (ms) at simulated START_MS, once known
    cur = [0]
    entry: dict[int, int] = {}
    orig_on_message = cap._on_message
    orig_put = cap._book_q.put_nowait
    orig_on_depth = cap.book.on_depth
    orig_add_trade = cap.buffers.add_trade
    speed_ms = speed

    # Sampling without a per-message cost: the timing wrappers are installed for one message
    # at a time. The 5 ms lag probe arms the on_message wrapper, which times the next trade and
    # the next book frame and then takes itself out; until the book frame comes (they arrive in
    # 100 ms bursts) other messages only pass through it. The buffer wrappers are installed
    # around a timed message alone (wrapping every message cost the capture ~6 us each, timing
    # 1 in 8 still ~2 us: charged to its CPU figure).
    sampled = [False]   # the message being handled is a timed one
    want: set = set()   # endpoints still to time since the probe armed the wrappers

    def on_message(raw, recv_ms, conn_id, endpoint, symbols, *rest):
        if endpoint not in want:   # one of each endpoint per arming: trades come more evenly
            return orig_on_message(raw, recv_ms, conn_id, endpoint, symbols, *rest)
        want.discard(endpoint)     # than the 100 ms bursts of book frames
        if not want:
            disarm()
        sampled[0] = True
        wrap_adds()
        t = cur[0] = pc()
        orig_on_message(raw, recv_ms, conn_id, endpoint, symbols, *rest)
        v = (pc() - t) / 1000
        sampled[0] = False
        unwrap_adds()
        if endpoint == "market":
            H["trade"].add(v)
            I["trade"].add(v)
        elif book_sync:   # partial depth buffered inside the handler (no book queue)
            H["book"].add(v)
            I["book"].add(v)

    def put_nowait(item):
        if sampled[0] and type(item[0]) is not str:
            entry[id(item[0])] = cur[0]
        orig_put(item)

    async def on_depth(rec, recv_ms, conn_id):
        rows = await orig_on_depth(rec, recv_ms, conn_id)
        t = entry.pop(id(rec), None)
        if t is not None:
            v = (pc() - t) / 1000
            H["book"].add(v)
            I["book"].add(v)
            if rows and wall0_ms[0] is not None:
                H["wire"].add(time.time() * 1000 - wall0_ms[0]
                              - (rec.event_ts_ms - START_MS) / speed_ms)
        return rows

    def add_trade(recv_ms, rec, source, conn_id):
        orig_add_trade(recv_ms, rec, source, conn_id)
        if sampled[0] and source == "ws" and type(rec) is AggTrade and wall0_ms[0] is not None:
            H["wire"].add(time.time() * 1000 - wall0_ms[0] - (rec.event_ts_ms - START_MS) / speed_ms)

    book_sync = getattr(cap, "_book_sync", False)
    orig_add_rows = getattr(cap, "_add_book_rows", None)

    def add_book_rows(rec, rows, recv_ms):
        orig_add_rows(rec, rows, recv_ms)
        if sampled[0] and rows and book_sync and wall0_ms[0] is not None:
            H["wire"].add(time.time() * 1000 - wall0_ms[0] - (rec.event_ts_ms - START_MS) / speed_ms)

    def arm():
        want.update(("market", "public"))
        cap._on_message = on_message

    def disarm():   # back to the product's own bound method (instance attribute removed)
        cap.__dict__.pop("_on_message", None)

    # the buffer wrappers only around the timed message itself: while armed, every other
    # message passes the on_message wrapper only (add_trade wrapped for all of them was one
    # more harness call per trade, charged to the capture's CPU figure)
    def wrap_adds():
        cap.buffers.add_trade = add_trade
        if orig_add_rows is not None:
            cap._add_book_rows = add_book_rows

    def unwrap_adds():
        cap.buffers.__dict__.pop("add_trade", None)
        cap.__dict__.pop("_add_book_rows", None)

    cap._book_q.put_nowait = put_nowait   # the book queue (diff depth) only: not per message
    cap.book.on_depth = on_depth
    arm()

    async def lag_probe(stop: asyncio.Event) -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            arm()
            v = (time.perf_counter() - t - 0.005) * 1000
            H["lag"].add(v)
            I["lag"].add(v)

    async def main() -> dict:
        stop = asyncio.Event()
        run = asyncio.create_task(cap.run(seconds + warmup + 600, stop))
        probe = asyncio.create_task(lag_probe(stop))
        await asyncio.sleep(warmup)
        for k in H:
            H[k] = Hist()
        for k in I:
            I[k] = Hist()
        try:   # the simulator's wall time at simulated START_MS (known once it started serving)
            wall0_ms[0] = 1000 * (float(wall0_src) if wall0_src != "file" else float(
                Path(os.environ["BENCH_WALL0_FILE"]).read_text()))
        except (OSError, ValueError, KeyError):
            pass
        trace = int(os.environ.get("BENCH_TRACEMALLOC", "0") or 0)   # diagnostic: top growers
        if trace:
            import tracemalloc
            tracemalloc.start(trace)
            snap0 = tracemalloc.take_snapshot()
        t_start = time.perf_counter()
        c_start = os.times()
        n_start = sum(cap.messages.values())
        rss = []
        rows_out = []
        t_prev, c_prev, n_prev = t_start, c_start, n_start
        while time.perf_counter() - t_start < seconds:
            await asyncio.sleep(min(interval, seconds - (time.perf_counter() - t_start)))
            t, c, m = time.perf_counter(), os.times(), sum(cap.messages.values())
            r = proc.memory_info().rss / 2**20
            rss.append(r)
            row = {"t": round(t - t_start), "msg_s": (m - n_prev) / (t - t_prev),
                   "cpu_pct": 100 * ((c.user + c.system) - (c_prev.user + c_prev.system)) / (t - t_prev),
                   "rss_mb": r, "book_q": cap._book_q.qsize(),
                   "buffered": cap.buffers.pending_rows(),
                   "p99_trade_us": I["trade"].q(0.99),
                   "p99_book_us": I["book"].q(0.99),
                   "p99_lag_ms": I["lag"].q(0.99),
                   "load": os.getloadavg()[0], **mem_diag(cap)}
            if trace:
                cur_b, _peak = tracemalloc.get_traced_memory()
                row["traced_mb"] = cur_b / 2**20
                snap = tracemalloc.take_snapshot()
                top = snap.compare_to(snap0, "traceback" if trace > 1 else "lineno")[:12]
                print("TRACE " + json.dumps([f"{st.size_diff / 2**20:+8.1f} MB {st.count_diff:+9d} "
                                             + " <- ".join(str(fr) for fr in st.traceback)
                                             for st in top]), flush=True)
                del snap
            rows_out.append(row)
            print("ROW " + json.dumps(row), flush=True)
            t_prev, c_prev, n_prev = t, c, m
            for k in I:
                I[k] = Hist()
        t_end, c_end, n_end = time.perf_counter(), os.times(), sum(cap.messages.values())
        el = t_end - t_start
        res = {
            "seconds": el, "messages": n_end - n_start, "msg_s": (n_end - n_start) / el,
            "cpu_pct": 100 * ((c_end.user + c_end.system) - (c_start.user + c_start.system)) / el,
            "rss_first_mb": rss[0] if rss else None, "rss_max_mb": max(rss) if rss else None,
            "rss_last_mb": rss[-1] if rss else None,
            "trade_us": {q: H["trade"].q(q) for q in (0.5, 0.99, 0.999)},
            "book_us": {q: H["book"].q(q) for q in (0.5, 0.99, 0.999)},
            "combined_p99_ms": (H["trade"] + H["book"]).q(0.99) / 1000,
            "loop_lag_ms": {"p50": H["lag"].q(0.5), "p99": H["lag"].q(0.99), "max": H["lag"].mx},
            "wire_ms": {"p50": H["wire"].q(0.5), "p99": H["wire"].q(0.99)},
            "feeds": len(cap._feeds), "n_trades": H["trade"].n, "n_book": H["book"].n,
        }
        stop.set()
        summ = await run
        probe.cancel()
        res.update(files=summ.files_written, errors=summ.errors, reconnects=summ.reconnects,
                   trades=sum(x.trades_written for x in summ.symbols.values()),
                   book_rows=sum(x.book_rows for x in summ.symbols.values()),
                   trade_gaps=sum(x.trade_gaps_detected for x in summ.symbols.values()),
                   book_gaps=sum(x.book_gaps for x in summ.symbols.values()))
        return res

    res = run_loop(main(), loop_kind())
    raw = tmp / "data" / "raw"
    res["raw_bytes"] = sum(f.stat().st_size for f in raw.rglob("*.parquet"))
    res["data_dir"] = str(tmp)
    print("RESULT " + json.dumps(res), flush=True)
    if not os.environ.get("BENCH_KEEP"):
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


# -- bare consumer process (the side-by-side reference of issue 15) -----------------------------
def run(n: int, speed: float, seconds: float, warmup: float, interval: float,
        pin: bool = True, quiet: bool = False, source: str = "pregen",
        block_s: float = 60.0, bare_s: float = 0.0) -> tuple[dict, list[dict]]:
    if source == "pregen":
        t0 = time.perf_counter()
        blk = pregen_block(n, block_s)   # generate (or load) the block before timing anything
        if not quiet:
            print(f"replay block: {len(blk):,} messages = {block_s:g} simulated s of {n} symbols "
                  f"({time.perf_counter() - t0:.0f} s to generate/load)", flush=True)
        del blk
    with tempfile.TemporaryDirectory() as d:
        portfile = os.path.join(d, "port")
        srv = subprocess.Popen([sys.executable, str(HERE), "--serve", str(n), str(speed),
                                portfile, "1" if pin else "-1", source, str(block_s)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(900):
                if os.path.exists(portfile) or srv.poll() is not None:
                    break
                time.sleep(0.1)
            info = json.loads(Path(portfile).read_text())
            cmd = [sys.executable, str(HERE), "--capture", str(n), str(speed),
                   f"ws://127.0.0.1:{info['port']}",
                   "file" if info["wall0"] is None else str(info["wall0"]), str(seconds),
                   str(warmup), "0" if pin else "-1", str(interval)]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, BENCH_WALL0_FILE=portfile + ".wall0"))
            res: dict = {}
            rows: list[dict] = []
            for line in p.stdout:
                if line.startswith("ROW "):
                    rows.append(json.loads(line[4:]))
                    if not quiet:
                        r = rows[-1]
                        print(f"  t={r['t']:4d}s {r['msg_s']:8,.0f} msg/s  CPU {r['cpu_pct']:5.1f} %"
                              f"  RSS {r['rss_mb']:6.0f} MB  book_q {r['book_q']:5d}  buffered "
                              f"{r['buffered']:7,d}  p99 trade {r['p99_trade_us']:6.0f} us  book "
                              f"{r['p99_book_us']:7.0f} us  loop lag p99 {r['p99_lag_ms']:5.1f} ms"
                              f"  load {r['load']:.2f}", flush=True)
                        if "malloc_used_mb" in r:
                            print(f"         mem: malloc in use {r['malloc_used_mb']:6.0f} MB (mmap "
                                  f"{r['malloc_mmap_mb']:.0f}), free "
                                  f"retained {r['malloc_free_mb']:6.0f} MB, pyarrow "
                                  f"{r.get('arrow_mb', 0):5.0f} MB, py blocks "
                                  f"{r['py_blocks']:,}, live CVD rows {r.get('cvd_rows', 0):,}, "
                                  f"threads {r['threads']}; dedup {r.get('dedup_ids', 0):,} ids "
                                  f"{r.get('dedup_mb', 0):.0f} MB"
                                  + (f"; traced {r['traced_mb']:.0f} MB" if "traced_mb" in r else ""),
                                  flush=True)
                elif line.startswith("TRACE ") and not quiet:
                    for x in json.loads(line[6:]):
                        print("         trace " + x, flush=True)
                elif line.startswith("RESULT "):
                    res = json.loads(line[7:])
            p.wait(120)
            if bare_s > 0:   # same simulator, same streams, right after the capture
                out_b = subprocess.run([sys.executable, str(HERE), "--bare", str(n),
                                        f"ws://127.0.0.1:{info['port']}", str(bare_s), str(warmup),
                                        "0" if pin else "-1"], stdout=subprocess.PIPE, text=True,
                                       timeout=bare_s + warmup + 120).stdout
                res["bare"] = next((json.loads(x[7:]) for x in out_b.splitlines()
                                    if x.startswith("RESULT ")), None)
        finally:
            srv.stdin.close()
            out = srv.stdout.read()
            try:
                srv.wait(20)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
        sims = [json.loads(x[4:]) for x in out.splitlines() if x.startswith("SIM ")]
    res["sim"] = {"max_backlog": max((x["backlog"] for x in sims), default=None),
                  "last_backlog": sims[-1]["backlog"] if sims else None,
                  "max_gen_lag_ms": max((x["gen_lag_ms"] for x in sims), default=None),
                  "cpu_s_per_s": (sum(x["cpu"] for x in sims) / (5.0 * len(sims))) if sims else None}
    return res, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--speed", type=float, default=2.5, help="simulator speed factor")
    ap.add_argument("--sim-minutes", type=float, default=10.0, help="simulated minutes")
    ap.add_argument("--warmup", type=float, default=8.0, help="wall seconds before measuring")
    ap.add_argument("--interval", type=float, default=20.0, help="report every N wall seconds")
    ap.add_argument("--no-pin", action="store_true", help="do not pin sim/capture to CPUs")
    ap.add_argument("--no-live-cvd", action="store_true",
                    help="diagnostic: run the capture without the live CVD monitor")
    ap.add_argument("--live-cvd-impl", metavar="FILE",
                    help="diagnostic: run the capture with another version of live_cvd.py "
                         "(e.g. the previous one, for a before/after comparison)")
    ap.add_argument("--dedup-lru", type=int, default=None,
                    help="diagnostic: DEDUP_LRU of the capture (default: the settings' 8192); "
                         "shows how much of the RSS the per-symbol dedup windows take")
    ap.add_argument("--source", choices=("pregen", "synthetic"), default="pregen",
                    help="pregen: replay a pre-generated block of the synthetic market, looped "
                         "(cheap to serve); synthetic: the live synthetic market (its generator "
                         "cannot keep up with 300 symbols on a loaded 2-core machine)")
    ap.add_argument("--block-seconds", type=float, default=60.0,
                    help="simulated seconds in the pre-generated block")
    ap.add_argument("--bare-seconds", type=float, default=60.0,
                    help="then run the bare json.loads consumer on the same simulator and "
                         "streams for N wall seconds (0 = not), for the marginal-CPU ratio")
    ap.add_argument("--event-loop", choices=("uvloop", "asyncio"), default=None,
                    help="the event loop of the capture and the bare consumer (default: the "
                         "capture's, capture.event_loop)")
    ap.add_argument("--bare", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--serve", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--capture", nargs=8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        n, speed, portfile, pin, source, block_s = args.serve
        serve(int(n), float(speed), portfile, int(pin), source, float(block_s))
        return 0
    if args.bare:
        n, ws, secs, warm, pin = args.bare
        bare(int(n), ws, float(secs), float(warm), int(pin))
        return 0
    if args.capture:
        n, speed, ws, wall0, secs, warm, pin, interval = args.capture
        capture(int(n), float(speed), ws, wall0, float(secs), float(warm), int(pin),
                float(interval))
        return 0
    if args.no_live_cvd:
        os.environ["BENCH_NO_LIVE_CVD"] = "1"
    if args.live_cvd_impl:
        os.environ["BENCH_LIVE_CVD_IMPL"] = str(Path(args.live_cvd_impl).resolve())
    if args.dedup_lru is not None:
        os.environ["BENCH_DEDUP_LRU"] = str(args.dedup_lru)
    if args.event_loop:
        os.environ["BENCH_EVENT_LOOP"] = args.event_loop
    seconds = args.sim_minutes * 60 / args.speed
    print(f"{args.symbols} symbols x (aggTrade + depth10@100ms), speed {args.speed:g}x: "
          f"{args.sim_minutes:g} simulated min = {seconds:.0f} s wall (+{args.warmup:g} s warm-up); "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; event loop {loop_kind()}"
          + ("; live CVD monitor OFF (diagnostic)" if args.no_live_cvd else "")
          + (f"; DEDUP_LRU={args.dedup_lru} (diagnostic)" if args.dedup_lru is not None else "")
          + (f"; live CVD from {args.live_cvd_impl} (diagnostic)" if args.live_cvd_impl else ""))
    res, rows = run(args.symbols, args.speed, seconds, args.warmup, args.interval,
                    pin=not args.no_pin, source=args.source, block_s=args.block_seconds,
                    bare_s=args.bare_seconds)
    sim = res["sim"]
    print(f"connections {res['feeds']}; {res['msg_s']:,.0f} msg/s received "
          f"({res['msg_s'] / args.speed:,.0f} msg/s per real-time second); "
          f"capture CPU {res['cpu_pct']:.1f} % of one core; RSS first/max/last "
          f"{res['rss_first_mb']:.0f}/{res['rss_max_mb']:.0f}/{res['rss_last_mb']:.0f} MB")
    trend = rss_trend(rows, args.speed)
    print(f"RSS slope {trend['slope_mb_per_sim_min']:+.1f} MB per simulated minute; highest RSS "
          f"per 60 s of wall time (a rotation period): {trend['period_max_mb']} MB")
    print(f"receipt->buffered: trades p50/p99/p99.9 {res['trade_us']['0.5']:.0f}/"
          f"{res['trade_us']['0.99']:.0f}/{res['trade_us']['0.999']:.0f} us; book rows "
          f"{res['book_us']['0.5']:.0f}/{res['book_us']['0.99']:.0f}/{res['book_us']['0.999']:.0f} us;"
          f" all messages p99 {res['combined_p99_ms']:.2f} ms")
    print(f"event-loop lag p50/p99/max {res['loop_lag_ms']['p50']:.2f}/"
          f"{res['loop_lag_ms']['p99']:.2f}/{res['loop_lag_ms']['max']:.1f} ms; wire latency "
          f"(sim release -> buffered, incl. sim tick) p50/p99 {res['wire_ms']['p50']:.1f}/"
          f"{res['wire_ms']['p99']:.1f} ms")
    qs = [r["book_q"] for r in rows]
    print(f"backlog: book queue max {max(qs or [0])}, last {qs[-1] if qs else 0}; simulator "
          f"send queue max {sim['max_backlog']}, last {sim['last_backlog']}; simulator "
          f"generation lag max {sim['max_gen_lag_ms']} ms; simulator CPU "
          f"{sim['cpu_s_per_s'] or 0:.2f} s/s")
    print(f"written: {res['trades']:,} trades, {res['book_rows']:,} book rows, {res['files']} "
          f"files, {res['raw_bytes'] / 1e6:.1f} MB raw; trade gaps {res['trade_gaps']}, book gaps "
          f"{res['book_gaps']}, reconnects {res['reconnects']}, errors {res['errors']}; "
          f"load {os.getloadavg()[0]:.2f}")
    b = res.get("bare")
    if b:
        ratio = msg_per_cpu_s(res) / msg_per_cpu_s(b)
        print(f"side by side (after warm-up, messages per CPU-second): capture "
              f"{msg_per_cpu_s(res):,.0f} ({res['cpu_pct']:.1f} % CPU at {res['msg_s']:,.0f} msg/s), "
              f"bare json.loads consumer {msg_per_cpu_s(b):,.0f} ({b['cpu_pct']:.1f} % CPU at "
              f"{b['msg_s']:,.0f} msg/s): capture / bare = {ratio:.2f}x (target >= 0.7x)")
    ok = res["combined_p99_ms"] < 5 and (sim["last_backlog"] or 0) < 10_000
    print("targets (p99 receipt->buffered < 5 ms, no backlog growth):", "MET" if ok else "NOT MET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
