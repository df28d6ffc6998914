"""Benchmark (issue 12 "Files"): segment size with and without lz4, and full raw-file
verification speed (every page read, CRCs checked) on first and repeated runs.

1. Capture BTCUSDT + ETHUSDT from the simulator at ``--speed`` for ``--seconds`` (one raw file
   per simulated minute, as in production).
2. Segments: every raw table re-cut into the capture's one-second segment batches (by
   ``recv_ts_ms``; at ``--speed`` one wall second holds ``speed`` simulated seconds, so the
   batches are cut per simulated second) and written as Arrow IPC streams uncompressed and
   with lz4 (``capture/segments.py``): bytes and write time.
3. Verification: ``storage.verify.verify`` over the raw tree, first (reads everything) and
   second run (manifest only): MB/s and files/s.

    .venv/bin/python benchmarks/bench_files.py [--speed 30] [--seconds 40]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    from ofi_cvd_harvest.capture.runner import run_capture_sync
    from ofi_cvd_harvest.settings import load_settings
    from ofi_cvd_harvest.sim.server import SimulatorThread
    from ofi_cvd_harvest.storage import verify
    from ofi_cvd_harvest.storage.fs import Storage

    tmp = Path(tempfile.mkdtemp(prefix="bench_files_"))
    with SimulatorThread(SYMBOLS, seed=3, speed=args.speed, max_backlog=10**7) as sim:
        s = load_settings(env={}, symbols=SYMBOLS, ws_base_url=sim.ws_url,
                          rest_base_url=sim.rest_url, data_dir=tmp / "data",
                          artifacts_dir=tmp / "art", prometheus_port=0,
                          parquet_rotate_sec=60.0 / args.speed, log_level="WARNING")
        run_capture_sync(s, run_seconds=args.seconds)
    storage = Storage(tmp / "data")
    print(f"capture {'+'.join(SYMBOLS)} at {args.speed:g}x for {args.seconds:g} s -> {tmp}")

    print("\nsegments (1-s batches of each raw table, Arrow IPC stream):")
    tot = {"none": 0, "lz4": 0}
    for stream in ("agg_trade", "book", "ops"):
        paths = [p for p in storage.list_files("raw") if f"stream={stream}/" in p]
        if not paths:
            continue
        table = pa.concat_tables([pq.read_table(p) for p in paths]).sort_by("recv_ts_ms")
        sec = (table.column("recv_ts_ms").to_numpy() * (args.speed / 1000)).astype("int64")
        cuts = [0] + [i for i in range(1, len(sec)) if sec[i] != sec[i - 1]] + [len(sec)]
        batches = [table.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
        row = []
        for comp in ("none", "lz4"):
            opts = ipc.IpcWriteOptions(compression=None if comp == "none" else comp)
            buf = io.BytesIO()
            t0 = time.perf_counter()
            w = ipc.new_stream(buf, table.schema, options=opts)
            for b in batches:
                w.write_table(b)
            w.close()
            dt = time.perf_counter() - t0
            n = buf.getbuffer().nbytes
            tot[comp] += n
            row.append(f"{comp}: {n / table.num_rows:6.1f} B/row {dt / len(batches) * 1e3:5.2f} ms/batch")
        print(f"  {stream:9s} {table.num_rows:8d} rows {len(batches):5d} batches  " + "  ".join(row))
    print(f"  total: {tot['none'] / 1e6:.2f} MB uncompressed -> {tot['lz4'] / 1e6:.2f} MB lz4 "
          f"({(1 - tot['lz4'] / tot['none']) * 100:.0f} % smaller)")

    print("\nverification (every page, CRCs, schema):")
    paths = storage.list_files("raw")
    t0 = time.perf_counter()
    v = verify.verify(storage, paths)
    dt = time.perf_counter() - t0
    print(f"  first run : {v.read_files} files, {v.read_bytes / 1e6:.1f} MB in {dt:.2f} s = "
          f"{v.read_bytes / 1e6 / dt:.1f} MB/s, {v.read_files / dt:.0f} files/s, "
          f"damaged={len(v.damaged)}")
    t0 = time.perf_counter()
    v = verify.verify(storage, paths)
    dt = time.perf_counter() - t0
    print(f"  second run: {v.read_files} files read, {len(paths)} files checked in {dt * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
