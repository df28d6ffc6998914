"""Benchmark: derive all five tables for one simulated full day of one symbol.

Synthesises ~2,000,000 aggTrades and 864,000 ten-level book rows for the day (plus the
6 h 5 min warm-up tail of the previous day that the derivation reads) as raw Parquet, one
file per minute like the capture, then runs ``derive_all`` + ``write_kind`` in a fresh child
process and prints its wall time and peak RSS. Target (issue 3): < 20 s and < 2 GB.

    .venv/bin/python benchmarks/bench_derive.py [--data-dir DIR] [--trades 2000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

DATE = "2025-01-15"
SYMBOL = "BTCUSDT"
CHILD = """
import sys, time
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest.signals.derive import derive_all, write_kind
t0 = time.perf_counter()
st = Storage(sys.argv[1])
tables = derive_all(st, Settings(), sys.argv[2], sys.argv[3])
t1 = time.perf_counter()
for kind, df in tables.items():
    write_kind(st, sys.argv[2], sys.argv[3], kind, df)
t2 = time.perf_counter()
print("rows " + " ".join(f"{k}={len(v)}" for k, v in tables.items()))
print(f"compute {t1 - t0:.2f} s, write {t2 - t1:.2f} s")
"""


def synthesise(root: str, trades_per_day: int) -> None:
    from ofi_cvd_harvest.signals import synthetic as sy
    from ofi_cvd_harvest.storage.fs import Storage
    from ofi_cvd_harvest.storage.layout import day_bounds_ms

    st = Storage(root)
    d0, d1 = day_bounds_ms(DATE)
    start = d0 - (6 * 3600 + 300) * 1000
    hour = 3_600_000
    next_id = 1
    t = start
    while t < d1:  # hour by hour to bound memory
        end = min(t + hour, d1)
        n = int(trades_per_day * (end - t) / 86_400_000)
        sy.write_raw(st, SYMBOL, "agg_trade", sy.synth_trades(t, end, n, seed=t // hour, first_id=next_id))
        sy.write_raw(st, SYMBOL, "book", sy.synth_book(t, end, seed=t // hour, first_id=10 * next_id))
        next_id += n
        t = end


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="reuse/keep data here (default: a temporary directory)")
    ap.add_argument("--trades", type=int, default=2_000_000, help="aggTrades in the day")
    args = ap.parse_args()
    root = args.data_dir or tempfile.mkdtemp(prefix="bench_derive_")
    if not os.path.isdir(os.path.join(root, "raw")):
        t0 = time.perf_counter()
        synthesise(root, args.trades)
        print(f"synthesised raw data in {time.perf_counter() - t0:.1f} s under {root}")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, root, DATE, SYMBOL], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = usage.ru_maxrss / 1024
    print(proc.stdout.strip())
    print(f"derive {DATE} {SYMBOL}: wall {wall:.2f} s (incl. interpreter start), "
          f"CPU {usage.ru_utime + usage.ru_stime:.1f} s, peak RSS {peak_mb:.0f} MB, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    ok = wall < 20 and peak_mb < 2048
    print("target < 20 s and < 2 GB:", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
