"""Benchmark (issue 15): the capture io thread's staging cost per hand-over -- the crash-safe
segment appends plus the staging area (``Persistence._stage_io``) -- at ``--symbols`` symbols,
shared segment files (one per stream and date, today's layout) against one file per (stream,
date, symbol) (the earlier layout: one append and flush per partition, the same file names).

Hand-overs are built once with ``build_spans`` from synthetic rows at the simulator's realistic
rates (ten depth10 rows and 3-12 trades per symbol a second, a few ops rows); then each layout
stages all of them into real files under ``--dir`` (default: a temporary directory), three
rounds interleaved. Reports CPU and wall time, files and bytes.

    .venv/bin/python benchmarks/bench_segments.py [--symbols 300] [--handovers 60] [--dir D]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ofi_cvd_harvest.capture.buffers import RawBuffers, Span, build_spans  # noqa: E402
from ofi_cvd_harvest.capture.segments import SegmentLog, frames  # noqa: E402
from ofi_cvd_harvest.capture.staging import StagingArea  # noqa: E402
from ofi_cvd_harvest.protocol.records import AggTrade  # noqa: E402

T0 = 1_721_340_000_000


def handover(buf: RawBuffers, symbols: list[str], sec: int, rng: random.Random) -> list[Span]:
    t0 = T0 + sec * 1000
    for k, sym in enumerate(symbols):
        for j in range(10):   # depth10 @ 100 ms
            e, u = t0 + j * 100, sec * 100 + j
            buf.add_book_row({
                "recv_ts_ms": e + 3, "event_ts_ms": e, "transact_ts_ms": e - 1, "symbol": sym,
                "first_update_id": u, "final_update_id": u + 1, "prev_final_update_id": u - 1,
                "gap": False, "conn_id": k % 4, "bid_px": [100 - i * 0.1 for i in range(10)],
                "bid_qty": [rng.random() for _ in range(10)],
                "ask_px": [100 + i * 0.1 for i in range(10)],
                "ask_qty": [rng.random() for _ in range(10)]})
        for j in range(rng.randint(3, 12)):
            i, e = 10**9 + sec * 100 + j, t0 + j * 50
            buf.add_trade(e + 2, AggTrade(e, sym, i, 100 + rng.random(), rng.random(), i, i, e,
                                          rng.random() < 0.5), "ws", k % 4)
        if rng.random() < 0.02:
            buf.add_ops(t0, sym, sym, "gap_detected", '{"n": 1}')
    return build_spans(buf.swap())


def stage_shared(log: SegmentLog, area: StagingArea, spans: list[Span]) -> None:
    """What ``Persistence._stage_io`` does."""
    paths = {key: log.append(key, table) for key, table in frames(spans).items()}
    for span in spans:
        area.add(span, paths.get((span.stream, span.date)))


def stage_per_symbol(log: SegmentLog, area: StagingArea, spans: list[Span]) -> None:
    """The earlier layout: ``<run>-g<gen>n<n>-<stream>-<date>-<symbol>.arrows``, one append each."""
    for span in spans:
        area.add(span, log.append((span.stream, f"{span.date}-{span.symbol}"), span.slice()))


def run(stage, handovers: list, base: str | None) -> tuple[float, float, int, int]:
    d = Path(tempfile.mkdtemp(dir=base))
    log, area = SegmentLog(d, "1x1"), StagingArea()
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    for spans in handovers:
        stage(log, area, spans)
    log.roll()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    segs = list((d / "_segments").iterdir())
    out = (wall, cpu, len(segs), sum(p.stat().st_size for p in segs))
    shutil.rmtree(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--handovers", type=int, default=60)
    ap.add_argument("--dir", default=None, help="where the segment files go (a temp dir)")
    args = ap.parse_args()
    symbols = [f"S{i:03d}USDT" for i in range(args.symbols)]
    rng, buf = random.Random(1), RawBuffers()
    hos = [handover(buf, symbols, s, rng) for s in range(args.handovers)]
    rows = sum(s.rows for h in hos for s in h)
    print(f"{args.handovers} hand-overs of {args.symbols} symbols: {rows} rows "
          f"({rows / args.handovers:.0f} a hand-over), "
          f"{sum(map(len, hos)) / args.handovers:.0f} partitions a hand-over")
    layouts = {"per-symbol files": stage_per_symbol, "shared files": stage_shared}
    res: dict[str, list] = {k: [] for k in layouts}
    for _ in range(3):
        for name, stage in layouts.items():
            res[name].append(run(stage, hos, args.dir))
    for name, rs in res.items():
        wall, cpu, nfiles, size = min(rs, key=lambda r: r[1])
        rounds = ", ".join(f"{r[1]:.2f}" for r in rs)
        print(f"{name:>17}: CPU {cpu / len(hos) * 1e3:7.2f} ms a hand-over "
              f"({cpu / rows * 1e6:5.2f} µs a row; rounds {rounds} s), "
              f"wall {wall / len(hos) * 1e3:7.2f} ms, {nfiles} files, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
