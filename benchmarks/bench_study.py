"""Benchmark: the signal study of one full simulated day of one symbol (docs/research.md).

Builds the day as ``bench_derive.py`` does (~2,000,000 aggTrades and 864,000 book rows,
synthetic, plus the warm-up tail), derives the five tables once, then runs
``research.run.run_study`` (read the tables and the next day's prices, compute, write the table
and the chart) in a fresh child process and prints its wall time and peak RSS.
Target (issue 20): seconds, not minutes.

    .venv/bin/python benchmarks/bench_study.py [--data-dir DIR] [--trades 2000000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_DERIVE = """
import sys
from ofi_cvd_harvest.settings import Settings
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest.signals.derive import derive_all, write_kind
st = Storage(sys.argv[1])
for kind, df in derive_all(st, Settings(), sys.argv[2], sys.argv[3]).items():
    write_kind(st, sys.argv[2], sys.argv[3], kind, df)
"""
CHILD_STUDY = """
import resource, sys, time
t0 = time.perf_counter()
from ofi_cvd_harvest.storage.fs import Storage
from ofi_cvd_harvest.research.run import run_study
t1 = time.perf_counter()
res = run_study(Storage(sys.argv[1]), sys.argv[2], sys.argv[3])
print(f"study rows={len(res.table)} import {t1 - t0:.2f} s, run_study {res.seconds:.2f} s, "
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
"""


def _bench_derive():
    spec = importlib.util.spec_from_file_location("bench_derive", Path(__file__).with_name("bench_derive.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="reuse/keep data here (default: a temporary directory)")
    ap.add_argument("--trades", type=int, default=2_000_000, help="aggTrades in the day")
    args = ap.parse_args()
    bd = _bench_derive()
    root = args.data_dir or tempfile.mkdtemp(prefix="bench_study_")
    if not os.path.isdir(os.path.join(root, "raw")):
        t0 = time.perf_counter()
        bd.synthesise(root, args.trades)
        print(f"synthesised raw data in {time.perf_counter() - t0:.1f} s under {root}")
    if not os.path.isdir(os.path.join(root, "ofi_cvd", f"date={bd.DATE}", f"symbol={bd.SYMBOL}", "kind=events")):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD_DERIVE, root, bd.DATE, bd.SYMBOL], check=True)
        print(f"derived the five tables in {time.perf_counter() - t0:.1f} s")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD_STUDY, root, bd.DATE, bd.SYMBOL], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(proc.stdout.strip())
    print(f"study {bd.DATE} {bd.SYMBOL}: wall {wall:.2f} s (incl. interpreter start), CPU "
          f"{usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime:.1f} s, "
          f"{os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    ok = wall < 30
    print("target: seconds, not minutes (< 30 s):", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
