"""Benchmark (issue 8.4): bytes per symbol-day, raw and derived, and 72 h of BTCUSDT + ETHUSDT
against the original guide's 2-5 GB estimate.

1. Capture: the real capture against the simulator (BTCUSDT + ETHUSDT at their calibrated
   calm-hour rates, docs/simulator.md) at ``--speed`` for ``--seconds`` of wall time, with the file
   rotation scaled by the speed factor so every raw file holds one *simulated* minute, as in
   production (Parquet compresses per file, so file size matters).
2. Derivation: ``derive_all`` + ``write_kind`` on the captured dates.
3. Bytes per row of each raw and derived table -> bytes per symbol-day at the captured rate
   and at the original guide's "about 2 million aggTrades per day" (plus 864,000 depth10 rows), and the
   72 h BTCUSDT + ETHUSDT total. ``--busy`` scales rows for busy days (rates "several times
   higher").

    .venv/bin/python benchmarks/bench_storage.py [--speed 60] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def table_stats(root: Path) -> dict[tuple[str, str, str], dict]:
    """(area, symbol, table) -> rows, bytes, files (areas: raw, ofi_cvd)."""
    import pyarrow.parquet as pq
    out: dict[tuple[str, str, str], dict] = defaultdict(lambda: {"rows": 0, "bytes": 0,
                                                                 "files": 0})
    for area, key in (("raw", "stream"), ("ofi_cvd", "kind")):
        base = root / area
        if not base.exists():
            continue
        for f in base.rglob("*.parquet"):
            parts = dict(p.split("=", 1) for p in f.relative_to(base).parts[:-1] if "=" in p)
            if key not in parts:
                continue
            st = out[(area, parts["symbol"], parts[key])]
            st["rows"] += pq.ParquetFile(f).metadata.num_rows
            st["bytes"] += f.stat().st_size
            st["files"] += 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--seconds", type=float, default=60.0, help="wall seconds of capture")
    ap.add_argument("--busy", type=float, default=3.0, help="busy-day multiplier for the table")
    ap.add_argument("--data-dir", help="keep the data here (default: temporary)")
    args = ap.parse_args()

    from ofi_cvd_harvest.capture.runner import run_capture_sync
    from ofi_cvd_harvest.settings import load_settings
    from ofi_cvd_harvest.signals.derive import derive_all, write_kind
    from ofi_cvd_harvest.sim.server import SimulatorThread
    from ofi_cvd_harvest.storage.fs import Storage

    root = Path(args.data_dir or tempfile.mkdtemp(prefix="bench_storage_"))
    sim_hours = args.seconds * args.speed / 3600
    print(f"capture {'+'.join(SYMBOLS)} at {args.speed:g}x for {args.seconds:g} s = "
          f"{sim_hours:.2f} simulated h, one raw file per simulated minute; load "
          f"{os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    with SimulatorThread(SYMBOLS, seed=3, speed=args.speed, max_backlog=10**7) as sim:
        s = load_settings(env={}, symbols=SYMBOLS, ws_base_url=sim.ws_url,
                          rest_base_url=sim.rest_url, data_dir=root / "data",
                          artifacts_dir=root / "artifacts", prometheus_port=0,
                          parquet_rotate_sec=60.0 / args.speed, log_level="WARNING")
        summ = run_capture_sync(s, run_seconds=args.seconds)
    print(f"captured in {time.perf_counter() - t0:.0f} s: " + ", ".join(
        f"{k} {v.trades_written:,} trades / {v.book_rows:,} book rows"
        for k, v in summ.symbols.items()) + f"; {summ.files_written} files")

    st = Storage(root / "data")
    dates = sorted(p.name.split("=", 1)[1] for p in (root / "data" / "raw").glob("date=*"))
    t0 = time.perf_counter()
    for date in dates:
        for sym in SYMBOLS:
            for kind, df in derive_all(st, s, date, sym).items():
                write_kind(st, date, sym, kind, df)
    print(f"derived {len(dates)} date(s) x {len(SYMBOLS)} symbols in "
          f"{time.perf_counter() - t0:.1f} s")

    stats = table_stats(root / "data")
    print()
    print("| symbol | table | rows | files | bytes | bytes/row | rows/day (captured rate) | "
          "MB/day (captured rate) |")
    print("|---|---|---|---|---|---|---|---|")
    per_day: dict[str, dict[str, float]] = defaultdict(dict)
    bpr: dict[str, dict[str, float]] = defaultdict(dict)
    rows_of: dict[str, dict[str, int]] = defaultdict(dict)
    for (area, sym, table), v in sorted(stats.items()):
        rate_day = v["rows"] / sim_hours * 24
        b = v["bytes"] / max(1, v["rows"])
        mb_day = v["bytes"] / sim_hours * 24 / 1e6
        name = f"{area}/{table}"
        per_day[sym][name] = mb_day
        bpr[sym][name] = b
        rows_of[sym][name] = v["rows"]
        print(f"| {sym} | {name} | {v['rows']:,} | {v['files']} | {v['bytes']:,} | {b:.1f} | "
              f"{rate_day:,.0f} | {mb_day:.1f} |")
    print()
    # normalised day: 2 M aggTrades (the guide), 864,000 book rows (10/s), derived rows in proportion
    print("| symbol | raw MB/day | derived MB/day | total MB/day | at 2 M trades/day: raw / "
          "derived / total MB |")
    print("|---|---|---|---|---|")
    tot72 = tot72_norm = tot72_busy = 0.0
    trade_driven = ("raw/agg_trade", "ofi_cvd/prices", "ofi_cvd/cvd")
    for sym in SYMBOLS:
        raw = sum(v for k, v in per_day[sym].items() if k.startswith("raw/"))
        der = sum(v for k, v in per_day[sym].items() if k.startswith("ofi_cvd/"))
        trades_day = rows_of[sym].get("raw/agg_trade", 0) / sim_hours * 24
        f_tr = 2_000_000 / max(1.0, trades_day)
        book_day = rows_of[sym].get("raw/book", 0) / sim_hours * 24
        f_bk = 864_000 / max(1.0, book_day)
        norm = {}
        for k, mb in per_day[sym].items():
            norm[k] = mb * (f_tr if k in trade_driven else f_bk if k != "raw/ops" else 1.0)
        nraw = sum(v for k, v in norm.items() if k.startswith("raw/"))
        nder = sum(v for k, v in norm.items() if k.startswith("ofi_cvd/"))
        tot72 += 3 * (raw + der)
        tot72_busy += 3 * sum(mb * (args.busy if k in trade_driven else 1.0)
                              for k, mb in per_day[sym].items())
        tot72_norm += 3 * (nraw + nder)
        print(f"| {sym} | {raw:.1f} | {der:.1f} | {raw + der:.1f} | {nraw:.1f} / {nder:.1f} / "
              f"{nraw + nder:.1f} |")
    print()
    print(f"72 h BTCUSDT + ETHUSDT (raw + derived): {tot72 / 1000:.2f} GB at the captured (calm) "
          f"rate, {tot72_norm / 1000:.2f} GB at 2 M trades/day each, ~{tot72_busy / 1000:.2f}"
          f" GB if every hour had {args.busy:g}x the trades (book rows fixed at 10/s); guide's "
          f"estimate 2-5 GB; load "
          f"{os.getloadavg()[0]:.2f}")
    print(f"data kept in {root}" if args.data_dir else "")
    if not args.data_dir:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
