"""Benchmark (issue 8.5): how capture CPU grows with symbols and derivation time with rows,
at 1x, 4x and 16x -- it should be linear.

* Capture: ``--base-symbols`` x {1, 4, 16} symbols (aggTrade + depth10@100ms each) against the
  simulator at ``--speed`` for ``--seconds`` (harness of ``bench_universe.py``: simulator and
  capture in separate processes); capture CPU seconds per wall second and CPU-us per message.
* Derivation: one date of one symbol at {1, 4, 16}/16 of the realistic day -- 125 k / 500 k /
  2 M aggTrades and 54 k / 216 k / 864 k book rows (book every 1600 / 400 / 100 ms), plus the
  previous day's warm-up tail at the same density -- derived and written in a fresh process
  (the child of ``bench_derive.py``): wall, CPU and peak RSS.

    .venv/bin/python benchmarks/bench_growth.py [--only capture|derive]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FACTORS = (1, 4, 16)


def capture_growth(base: int, speed: float, seconds: float, warmup: float) -> list[dict]:
    import bench_universe as bu
    out = []
    for k in FACTORS:
        n = base * k
        res, _ = bu.run(n, speed, seconds, warmup, interval=seconds, quiet=True)
        cpu = res["cpu_pct"] / 100
        r = {"factor": k, "symbols": n, "msg_s": res["msg_s"], "cpu_s_per_s": cpu,
             "us_per_msg": cpu / max(1e-9, res["msg_s"]) * 1e6,
             "rss_mb": res["rss_max_mb"], "lag_ms": res["sim"]["max_gen_lag_ms"],
             "load": os.getloadavg()[0]}
        print(f"  capture {n:4d} symbols: {r['msg_s']:8,.0f} msg/s  CPU {cpu:.3f} s/s  "
              f"{r['us_per_msg']:.1f} CPU-us/msg  RSS {r['rss_mb']:.0f} MB  (sim gen lag max "
              f"{r['lag_ms']} ms, load {r['load']:.2f})", flush=True)
        out.append(r)
    return out


def synthesise(root: str, factor: int) -> tuple[int, int]:
    from bench_derive import DATE, SYMBOL
    from ofi_cvd_harvest.signals import synthetic as sy
    from ofi_cvd_harvest.storage.fs import Storage
    from ofi_cvd_harvest.storage.layout import day_bounds_ms

    st = Storage(root)
    d0, d1 = day_bounds_ms(DATE)
    start = d0 - (6 * 3600 + 300) * 1000
    hour = 3_600_000
    per_day = 2_000_000 * factor // 16
    step = 100 * 16 // factor
    next_id = 1
    t = start
    trades = books = 0
    while t < d1:
        end = min(t + hour, d1)
        n = int(per_day * (end - t) / 86_400_000)
        sy.write_raw(st, SYMBOL, "agg_trade", sy.synth_trades(t, end, n, seed=t // hour,
                                                             first_id=next_id))
        b = sy.synth_book(t, end, step_ms=step, seed=t // hour, first_id=10 * next_id)
        sy.write_raw(st, SYMBOL, "book", b)
        if t >= d0:
            trades += n
            books += b.num_rows
        next_id += n
        t = end
    return trades, books


def derive_growth() -> list[dict]:
    from bench_derive import CHILD, DATE, SYMBOL
    out = []
    for k in FACTORS:
        with tempfile.TemporaryDirectory(prefix="bench_growth_") as root:
            trades, books = synthesise(root, k)
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", CHILD, root, DATE, SYMBOL], check=True,
                               capture_output=True, text=True)
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            comp = [x for x in p.stdout.splitlines() if x.startswith("compute")]
            r = {"factor": k, "trades": trades, "book_rows": books, "wall_s": wall,
                 "cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
                 "peak_rss_mb": r1.ru_maxrss / 1024, "detail": comp[0] if comp else "",
                 "load": os.getloadavg()[0]}
            print(f"  derive {trades:>9,} trades + {books:>7,} book rows: wall {wall:5.1f} s "
                  f"(incl. ~1-2 s interpreter start), CPU {r['cpu_s']:5.1f} s, {r['detail']}, "
                  f"load {r['load']:.2f}", flush=True)
            out.append(r)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("capture", "derive"))
    ap.add_argument("--base-symbols", type=int, default=10)
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=6.0)
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    cap = der = None
    if args.only in (None, "capture"):
        cap = capture_growth(args.base_symbols, args.speed, args.seconds, args.warmup)
    if args.only in (None, "derive"):
        der = derive_growth()
    print()
    print("| factor | symbols | capture msg/s | capture CPU s/s | CPU-us/msg | rows (trades + "
          "book) | derive wall s | derive CPU s | CPU-us/row |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, k in enumerate(FACTORS):
        c = cap[i] if cap else None
        d = der[i] if der else None
        cs = (f"{c['symbols']} | {c['msg_s']:,.0f} | {c['cpu_s_per_s']:.3f} | "
              f"{c['us_per_msg']:.1f}") if c else "- | - | - | -"
        rows = d["trades"] + d["book_rows"] if d else 0
        ds = (f"{rows:,} | {d['wall_s']:.1f} | {d['cpu_s']:.1f} | "
              f"{d['cpu_s'] / rows * 1e6:.2f}") if d else "- | - | - | -"
        print(f"| {k}x | {cs} | {ds} |")
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
