"""Benchmark (issue 15): this capture side by side with a peer, cryptofeed 2.4, and the bare
``json.loads`` consumer -- same simulator, same seed, same symbols, diff-depth books -- in CPU-µs
per message received.

Three consumers (cryptofeed on two loops), each in a fresh process pinned to one core, each
against a fresh simulator (``universe_harness.serve``: the live seeded synthetic market, seed 7,
``symbols_for(n)``, at ``--speed``; pinned to the other core), streams ``<sym>@aggTrade`` + ``<sym>@depth@100ms``:

* ``bare``       -- the project's ``WsFeed`` connections (``plan_connections``), each frame
  ``json.loads``-ed and dropped: what receiving alone costs at this rate;
* ``capture``    -- the real ``Capture.run`` as ``ofi-cvd-harvest capture --book-source diff``
  runs it (REST snapshot + diff book, dedup, id tracking, live CVD monitor, 1 s segments,
  Parquet rotation); its files are checked at the end;
* ``cryptofeed`` -- cryptofeed's ``BinanceFutures`` feed (TRADES + L2_BOOK, ``depth@100ms`` on a
  REST snapshot, its default uvloop), callbacks that only count (``peer_cryptofeed.py``, run by
  ``--cryptofeed-python``; the adapter that points it at the loopback simulator lives there);
* ``cryptofeed-asyncio`` -- the same on the stdlib asyncio loop, which the other two use: what
  cryptofeed's own code costs, apart from the faster loop it installs by default.

Each consumer counts frames and its process CPU (user + system, all threads) over ``--seconds``
after ``--warmup`` s (connect, exchangeInfo, snapshots, imports excluded) with one function
(``peer_cryptofeed.measure``), and its RSS at the end. ``--repeats`` rounds; the order of the
consumers alternates between rounds to spread the machine's load noise. Prints a markdown table
(medians over the rounds; docs/performance.md, "Side by side with cryptofeed").

cryptofeed is not a project dependency; install it once in its own venv:

    python3 -m venv /work/cfvenv && /work/cfvenv/bin/pip install 'cryptofeed>=2.4,<2.5'
    .venv/bin/python benchmarks/bench_peer.py --cryptofeed-python /work/cfvenv/bin/python \
        [--symbols 2] [--speed 20] [--seconds 30] [--warmup 10] [--repeats 3]

Without ``--cryptofeed-python`` (or ``$CRYPTOFEED_PYTHON``), or if that interpreter cannot import
cryptofeed, the cryptofeed rows are skipped with a message and the other two still run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from peer_cryptofeed import measure  # noqa: E402  (one measurement window for all consumers)
from universe_harness import symbols_for  # noqa: E402  (one symbol set for all benchmarks)

KINDS = ("bare", "capture", "cryptofeed", "cryptofeed-asyncio")


def streams_for(n: int) -> list[str]:
    """What every consumer subscribes to: aggTrade + diff depth at 100 ms (cryptofeed's L2_BOOK)."""
    syms = [s.lower() for s in symbols_for(n)]
    return [f"{s}@aggTrade" for s in syms] + [f"{s}@depth@100ms" for s in syms]


# -- consumer processes (project interpreter) ---------------------------------------------------
def bare(n: int, ws: str, warmup: float, seconds: float) -> dict:
    from ofi_cvd_harvest.exchange.ws import WsFeed
    from ofi_cvd_harvest.protocol.streams import plan_connections

    async def main() -> dict:
        cnt = [0]

        def on_message(raw: bytes, recv_ms: int, conn_id: int) -> None:
            json.loads(raw)
            cnt[0] += 1
        feeds = [WsFeed(p.url, endpoint=p.endpoint, on_message=on_message)
                 for p in plan_connections(ws, streams_for(n), 200)]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(f.run(stop)) for f in feeds]
        out = await measure(lambda: cnt[0], warmup, seconds)
        stop.set()
        await asyncio.wait(tasks, timeout=5)
        return out

    from universe_harness import loop_kind, run_loop   # the capture's loop, both sides
    return run_loop(main(), loop_kind())


def capture(n: int, ws: str, warmup: float, seconds: float) -> dict:
    """``ofi-cvd-harvest capture --book-source diff`` (capture/cli.py) with its settings built
    the same way, in a temporary data directory; rows in the files checked against the summary."""
    import gc
    import shutil

    from ofi_cvd_harvest.capture.runner import Capture
    from ofi_cvd_harvest.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench_peer_"))
    s = load_settings(env={}, symbols=tuple(symbols_for(n)), ws_base_url=ws,
                      rest_base_url=ws.replace("ws://", "http://", 1), book_source="diff",
                      data_dir=tmp / "data", artifacts_dir=tmp / "art", prometheus_port=0,
                      log_level="WARNING")
    gc.freeze()   # as the CLI does before its run

    async def main() -> dict:
        cap = Capture(s)
        stop = asyncio.Event()
        run = asyncio.create_task(cap.run(warmup + seconds + 600, stop))
        out = await measure(lambda: sum(cap.messages.values()), warmup, seconds)
        stop.set()
        summ = await run
        out.update(trades=sum(x.trades_written for x in summ.symbols.values()),
                   book_rows=sum(x.book_rows for x in summ.symbols.values()),
                   book_gaps=sum(x.book_gaps for x in summ.symbols.values()),
                   errors=summ.errors, files=summ.files_written)
        return out

    try:
        from universe_harness import loop_kind, run_loop
        out = run_loop(main(), loop_kind())
        import pyarrow.parquet as pq
        rows = {"agg_trade": 0, "book": 0}
        for f in (tmp / "data" / "raw").rglob("*.parquet"):
            table = f.parent.name.split("=", 1)[1]
            if table in rows:
                rows[table] += pq.ParquetFile(f).metadata.num_rows
        out["files_ok"] = rows["agg_trade"] == out["trades"] and rows["book"] == out["book_rows"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# -- driver -------------------------------------------------------------------------------------
def cryptofeed_python(arg: str | None) -> tuple[str | None, str]:
    """The interpreter to run cryptofeed with, or None and why not."""
    py = arg or os.environ.get("CRYPTOFEED_PYTHON")
    if not py:
        return None, ("cryptofeed rows skipped: no --cryptofeed-python / $CRYPTOFEED_PYTHON "
                      "(install: python3 -m venv /work/cfvenv && /work/cfvenv/bin/pip install "
                      "'cryptofeed>=2.4,<2.5')")
    try:
        v = subprocess.run([py, "-c", "import importlib.metadata as m; "
                            "print(m.version('cryptofeed'))"], capture_output=True, text=True,
                           timeout=60)
    except OSError as exc:
        return None, f"cryptofeed rows skipped: cannot run {py}: {exc}"
    if v.returncode != 0:
        return None, f"cryptofeed rows skipped: {py} cannot import cryptofeed"
    return py, v.stdout.strip()


def pin_pid(pid: int, cpu: int) -> None:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(pid, {cpus[cpu % len(cpus)]})
    except (AttributeError, OSError):
        pass


def one_run(kind: str, args, cf_py: str | None) -> dict:
    """A fresh simulator (pinned to the last core) and one consumer (pinned to core 0)."""
    with tempfile.TemporaryDirectory() as d:
        portfile = os.path.join(d, "port")
        simlog = open(os.path.join(d, "sim.log"), "w+")
        srv = subprocess.Popen([sys.executable, str(HERE), "--serve", str(args.symbols),
                                str(args.speed), portfile, "-1" if args.no_pin else "1"],
                               stdin=subprocess.PIPE, stdout=simlog, text=True)
        try:
            for _ in range(900):
                if os.path.exists(portfile) or srv.poll() is not None:
                    break
                time.sleep(0.1)
            ws = f"ws://127.0.0.1:{json.loads(Path(portfile).read_text())['port']}"
            if kind.startswith("cryptofeed"):
                cmd = [cf_py, str(HERE.parent / "peer_cryptofeed.py"), ws,
                       ",".join(symbols_for(args.symbols)), str(args.warmup), str(args.seconds),
                       "asyncio" if kind.endswith("asyncio") else "uvloop"]
            else:
                cmd = [sys.executable, str(HERE), "--consume", kind, str(args.symbols), ws,
                       str(args.warmup), str(args.seconds)]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=d)
            if not args.no_pin:
                pin_pid(p.pid, 0)
            out, err = p.communicate(timeout=args.warmup + args.seconds + 300)
            line = [x for x in out.splitlines() if x.startswith("RESULT ")]
            if not line:
                raise RuntimeError(f"{kind} consumer failed:\n{out[-2000:]}\n{err[-3000:]}")
            res = json.loads(line[-1][7:])
        finally:
            srv.stdin.close()
            try:
                srv.wait(15)
            except subprocess.TimeoutExpired:
                srv.kill()
        simlog.seek(0)
        sim = [json.loads(x[4:]) for x in simlog if x.startswith("SIM ")]
        simlog.close()
    res["sim_backlog_max"] = max((x["backlog"] for x in sim), default=None)
    res["sim_gen_lag_max_ms"] = max((x["gen_lag_ms"] for x in sim), default=None)
    res["us_per_msg"] = res["cpu_s"] / max(1, res["messages"]) * 1e6
    return res


def table(runs: dict[str, list[dict]]) -> str:
    med = statistics.median
    b = med([r["us_per_msg"] for r in runs["bare"]]) if runs.get("bare") else None
    lines = ["| consumer | runs | messages / run | msg/s | CPU-s / run | CPU-µs per message "
             "(median; min–max) | × bare | RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"bare": "bare `json.loads` consumer", "capture": "this capture (`--book-source diff`)",
             "cryptofeed": "cryptofeed 2.4 (BinanceFutures, TRADES + L2_BOOK; uvloop, its default)",
             "cryptofeed-asyncio": "cryptofeed 2.4, same, on the stdlib asyncio loop"}
    for kind, rs in runs.items():
        if not rs:
            continue
        us = [r["us_per_msg"] for r in rs]
        lines.append(
            f"| {names[kind]} | {len(rs)} | {med([r['messages'] for r in rs]):,.0f} | "
            f"{med([r['messages'] / r['seconds'] for r in rs]):,.0f} | "
            f"{med([r['cpu_s'] for r in rs]):.2f} | {med(us):.1f} ({min(us):.1f}–{max(us):.1f}) | "
            f"{(f'{med(us) / b:.2f}') if b else '–'} | {med([r['rss_mb'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=2, help="BTCUSDT, ETHUSDT, then synthetic names")
    ap.add_argument("--speed", type=float, default=20.0, help="simulated seconds per wall second")
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=10.0, help="excluded start-up")
    ap.add_argument("--repeats", type=int, default=3, help="rounds (order alternates)")
    ap.add_argument("--cryptofeed-python", help="interpreter with cryptofeed 2.4 installed "
                    "(default $CRYPTOFEED_PYTHON; none: cryptofeed skipped)")
    ap.add_argument("--only", choices=KINDS, action="append", help="run only these consumers")
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    ap.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--consume", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        from universe_harness import serve
        n, speed, portfile, pin = args.serve
        serve(int(n), float(speed), portfile, int(pin), source="synthetic")
        return 0
    if args.consume:
        kind, n, ws, warm, secs = args.consume
        res = (bare if kind == "bare" else capture)(int(n), ws, float(warm), float(secs))
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    cf_py, cf_info = cryptofeed_python(args.cryptofeed_python)
    kinds = [k for k in KINDS if (not args.only or k in args.only)
             and (not k.startswith("cryptofeed") or cf_py)]
    if cf_py is None:
        print(cf_info)
    if not kinds:
        return 0
    print(f"{args.symbols} symbols ({','.join(symbols_for(args.symbols)[:3])}…) x (aggTrade + "
          f"depth@100ms), simulator seed 7 at speed {args.speed:g}; window {args.seconds:g} s after "
          f"{args.warmup:g} s warm-up; {args.repeats} rounds, order alternating; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
          + (f"; cryptofeed {cf_info}" if cf_py else ""), flush=True)
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for rnd in range(args.repeats):
        for kind in (kinds if rnd % 2 == 0 else kinds[::-1]):
            r = one_run(kind, args, cf_py)
            runs[kind].append(r)
            extra = ""
            if kind == "capture":
                extra = (f"  trades {r['trades']:,} book rows {r['book_rows']:,} gaps "
                         f"{r['book_gaps']} errors {r['errors']} files "
                         f"{'ok' if r['files_ok'] else 'ROW MISMATCH'}")
            elif kind.startswith("cryptofeed"):
                extra = (f"  trades {r['trades']:,} book updates {r['books']:,} "
                         f"resets {r['resets']} books {'ok' if r['books_ok'] else 'BAD'} "
                         f"loop {r['loop']}")
            print(f"round {rnd + 1} {kind:18s} {r['messages']:8,d} msg in {r['seconds']:.1f} s "
                  f"({r['messages'] / r['seconds']:7,.0f}/s)  CPU {r['cpu_s']:6.2f} s = "
                  f"{r['us_per_msg']:6.1f} µs/msg  RSS {r['rss_mb']:4.0f} MB  load "
                  f"{r['load']:.2f}  sim backlog max {r['sim_backlog_max']} gen lag max "
                  f"{r['sim_gen_lag_max_ms']} ms{extra}", flush=True)
    print()
    print(table(runs))
    print(f"\nload average at the end: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
