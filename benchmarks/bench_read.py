"""Benchmark: reading one partition out of a lake of many — ``read.scan`` (lists only the
matching partition directories) against the glob-everything way (``scan_parquet("raw/**")``
with hive partitioning and a filter), and ``ofi-cvd-harvest sql`` start-up plus a query.

The lake: ``--dates`` UTC dates × ``--symbols`` symbols of raw files written as the capture
writes them (one file per minute and stream, ``--minutes`` minutes per partition; the test
fixture's synthetic rows, ~20 trades/s). Prints wall times (median of ``--repeat``).

    .venv/bin/python benchmarks/bench_read.py [--dates 30] [--symbols 4] [--minutes 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, repeat: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dates", type=int, default=30)
    ap.add_argument("--symbols", type=int, default=4)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", help="reuse/keep the lake here")
    a = ap.parse_args()

    import polars as pl

    from ofi_cvd_harvest import read
    from ofi_cvd_harvest.query import connect
    from ofi_cvd_harvest_tests.orchestration.rawfixtures import write_raw

    root = Path(a.dir or tempfile.mkdtemp(prefix="bench_read_")) / "data"
    syms = [f"S{i:02d}USDT" for i in range(a.symbols)]
    d0 = dt.date(2024, 7, 1)
    dates = [(d0 + dt.timedelta(days=i)).isoformat() for i in range(a.dates)]
    if not (root / "raw").is_dir():
        t0 = time.perf_counter()
        for d in dates:
            for s in syms:
                write_raw(root, d, s, minutes=a.minutes, seed=hash(d + s) % 997)
        print(f"wrote {a.dates}×{a.symbols} partitions in {time.perf_counter() - t0:.0f} s")
    files = sum(1 for _ in (root / "raw").rglob("*.parquet"))
    print(f"lake: {files:,} raw files, load {os.getloadavg()[0]:.2f}")
    date, sym = dates[len(dates) // 2], syms[-1]

    t_scan, n1 = timed(lambda: read.scan("raw_agg_trade", data_dir=root, symbols=[sym],
                                         start=date, end=date).select(pl.len()).collect().item(), a.repeat)
    t_glob, n2 = timed(lambda: pl.scan_parquet(str(root / "raw/**/stream=agg_trade/*.parquet"),
                                               hive_partitioning=True)
                       .filter((pl.col("date") == dt.date.fromisoformat(date)) & (pl.col("symbol") == sym))
                       .select(pl.len()).collect().item(), a.repeat)
    assert n1 == n2, (n1, n2)
    print(f"one partition's trades ({n1:,} rows): read.scan {t_scan * 1000:.0f} ms, "
          f"glob + filter {t_glob * 1000:.0f} ms ({t_glob / t_scan:.1f}×)")
    t_all, n_all = timed(lambda: read.scan("raw_agg_trade", data_dir=root).select(pl.len())
                         .collect().item(), max(1, a.repeat // 2))
    print(f"whole lake's trades ({n_all:,} rows): read.scan {t_all:.2f} s")
    t_con, con = timed(lambda: connect(root), a.repeat)
    print(f"sql: connect (8 views over {files:,} files) {t_con * 1000:.0f} ms")
    q = (f"select symbol, count(*), avg(price) from raw_agg_trade where date = '{date}' "
         f"and symbol = '{sym}' group by 1")
    t_q, _ = timed(lambda: con.execute(q).fetchall(), a.repeat)
    print(f"sql: one partition's trades aggregated {t_q * 1000:.0f} ms")
    q = "select date, count(*) from raw_agg_trade group by 1 order by 1"
    t_q2, _ = timed(lambda: con.execute(q).fetchall(), max(1, a.repeat // 2))
    print(f"sql: count per date over the whole lake {t_q2 * 1000:.0f} ms")


if __name__ == "__main__":
    main()
