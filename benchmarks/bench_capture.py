"""Benchmark: the capture's per-message hot path on one core.

Feeds pre-encoded combined-stream frames (as the WebSocket client hands them over: bytes)
through the real ``Capture._on_message`` path — decode (msgspec fast path) -> dedup window -> trade-id
tracker -> columnar buffers, book frames through the partial-depth handler — with a Parquet
rotation (drain + atomic zstd write) every ``--rotate`` messages, and prints messages/s.
Baselines on the same frames: bare ``json.loads`` and bare ``orjson.loads`` (parse only).
Target (issue 2): >= 20,000 msg/s; issue 8 wants >= 50,000.

    .venv/bin/python benchmarks/bench_capture.py [--messages 300000] [--book-share 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import orjson


def make_frames(n: int, book_share: float, seed: int = 0) -> list[bytes]:
    """Realistic BTCUSDT/ETHUSDT aggTrade and depth10 frames, ids consecutive per symbol,
    with ~0.5 % duplicates (as after a roll-over overlap)."""
    rng = random.Random(seed)
    ids = {"BTCUSDT": 2_000_000_000, "ETHUSDT": 1_000_000_000}
    px = {"BTCUSDT": 64000.0, "ETHUSDT": 3400.0}
    u = 5_000_000_000_000
    last_u = {"BTCUSDT": u, "ETHUSDT": u}
    t = 1_721_347_200_000
    frames: list[bytes] = []
    for _ in range(n):
        sym = "BTCUSDT" if rng.random() < 0.5 else "ETHUSDT"
        t += rng.randint(0, 3)
        if rng.random() < book_share:
            u += rng.randint(1, 5000)
            p = px[sym]
            bids = [[f"{p - 0.1 * (i + 1):.2f}", f"{rng.random() * 5:.3f}"] for i in range(10)]
            asks = [[f"{p + 0.1 * (i + 1):.2f}", f"{rng.random() * 5:.3f}"] for i in range(10)]
            data = {"e": "depthUpdate", "E": t, "T": t - 1, "s": sym, "U": last_u[sym] + 1, "u": u,
                    "pu": last_u[sym], "b": bids, "a": asks}
            last_u[sym] = u
            stream = f"{sym.lower()}@depth10@100ms"
        else:
            ids[sym] += 1
            a = ids[sym]
            if rng.random() < 0.005:
                a -= 1   # a duplicate
            px[sym] *= 1 + rng.gauss(0, 1e-5)
            q = f"{max(0.001, rng.lognormvariate(-4, 1.5)):.3f}"
            data = {"e": "aggTrade", "E": t, "a": a, "s": sym, "p": f"{px[sym]:.2f}", "q": q,
                    "nq": q, "f": a * 3, "l": a * 3 + 2, "T": t - 1, "m": rng.random() < 0.5}
            stream = f"{sym.lower()}@aggTrade"
        frames.append(orjson.dumps({"stream": stream, "data": data}))
    return frames


def bench_baseline(frames: list[bytes], fn) -> float:
    t0 = time.perf_counter()
    for f in frames:
        fn(f)
    return len(frames) / (time.perf_counter() - t0)


def bench_capture(frames: list[bytes], rotate_every: int, tmp: Path) -> tuple[float, int, float]:
    from ofi_cvd_harvest.capture.frames import subscriptions
    from ofi_cvd_harvest.capture.runner import Capture
    from ofi_cvd_harvest.settings import load_settings
    s = load_settings(env={}, data_dir=tmp / "data", artifacts_dir=tmp / "art", prometheus_port=0)
    cap = Capture(s)
    on_message = cap._on_message
    syms = s.symbols
    subscribed = subscriptions([f"{x.lower()}@{k}" for x in syms
                                for k in ("aggTrade", "depth10@100ms")])
    write_time = 0.0
    t0 = time.perf_counter()
    recv = int(time.time() * 1000)
    for i, f in enumerate(frames, 1):
        on_message(f, recv, 1, "market", syms, subscribed)
        if i % 1000 == 0:
            cap._drain_book_queue()
        if i % rotate_every == 0:
            w0 = time.perf_counter()
            for b in cap.buffers.drain():
                cap.writer.write(b)
            write_time += time.perf_counter() - w0
    cap._drain_book_queue()
    for b in cap.buffers.drain():
        cap.writer.write(b)
    elapsed = time.perf_counter() - t0
    cap.runlog.close()
    return len(frames) / elapsed, cap.writer.files_written, write_time / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--book-share", type=float, default=0.3,
                    help="share of depth10 frames (real: ~0.35 of trades+depth10 for BTCUSDT)")
    ap.add_argument("--rotate", type=int, default=60_000, help="messages per Parquet rotation")
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    except (AttributeError, OSError):
        pass
    frames = make_frames(args.messages, args.book_share)
    trades_only = make_frames(args.messages, 0.0, seed=1)
    mb = sum(map(len, frames)) / 1e6
    print(f"frames: {len(frames):,} ({mb:.1f} MB, book share {args.book_share:.0%}), one core")
    print(f"baseline json.loads        : {bench_baseline(frames, json.loads):>10,.0f} msg/s")
    print(f"baseline orjson.loads      : {bench_baseline(frames, orjson.loads):>10,.0f} msg/s")
    with tempfile.TemporaryDirectory() as d:
        rate, files, wshare = bench_capture(trades_only, args.rotate, Path(d) / "t")
        print(f"capture hot path, trades   : {rate:>10,.0f} msg/s  ({files} files, "
              f"{wshare:.0%} of time in Parquet writes)")
        rate, files, wshare = bench_capture(frames, args.rotate, Path(d) / "m")
        print(f"capture hot path, mixed    : {rate:>10,.0f} msg/s  ({files} files, "
              f"{wshare:.0%} of time in Parquet writes)")
    target = 20_000
    print(f"target >= {target:,} msg/s: {'PASS' if rate >= target else 'FAIL'}")


if __name__ == "__main__":
    main()
