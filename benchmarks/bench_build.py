"""Benchmark (issue 15): the capture's per-second bookkeeping at 300 symbols, old vs new in one
run -- the hand-over build (Python column lists -> one Arrow table per stream, io thread), the
ticker (status lines + Prometheus exporter, event loop) and the per-file cost of the rotation's
Parquet writes.

"Old" is the product code at ``--base`` (a git revision, default: the commit before issue 15's
rework), loaded from git into this process next to the current code; both get the same input,
interleaved, and the CPU time of each is reported (median and best of ``--rounds``).

* build: realistic one-second hand-overs -- ``--symbols`` symbols at 1-15 aggTrades/s each and
  ten depth10 rows/s each (the simulator's rates, docs/simulator.md), filled interleaved as the
  capture does -- through ``build_spans``;
* ticker: ``--symbols`` ``SymState``s getting the same trades' latencies, then
  ``StatusReporter.tick`` + ``Exporter.update`` once a simulated second (a status line every
  ``--status-interval`` seconds included);
* write: one minute's raw files of the universe (one per stream and symbol) through
  ``Storage.write_parquet`` into a temporary directory, with fsyncs.

    .venv/bin/python benchmarks/bench_build.py [--symbols 300] [--rounds 15] [--base e3a82ee]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASE = "e3a82ee"   # main before issue 15's rework of build/ticker/write
T0 = 1_721_347_200_000 + 3_600_000


def old_module(rev: str, rel: str, name: str):
    """``rel`` as it was at git revision ``rev``, imported as a module of its package (relative
    imports resolve against the current code)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{rel}"], check=True,
                         capture_output=True, text=True).stdout
    pkg = rel[:-3].replace("/", ".").rsplit(".", 1)[0]
    spec = importlib.util.spec_from_loader(f"{pkg}._old_{name}", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = pkg
    sys.modules[spec.name] = mod
    exec(compile(src, f"{rev}:{rel}", "exec"), mod.__dict__)
    return mod


def fill(buffers_mod, symbols: list[str], sec: int, seed: int):
    """One second of the universe into a fresh RawBuffers of ``buffers_mod``; its hand-over."""
    from ofi_cvd_harvest.protocol.records import AggTrade
    rng = random.Random(seed)
    b = buffers_mod.RawBuffers()
    base = T0 + sec * 1000
    rates = [1 + (hash(s) % 15) for s in symbols]
    for tick in range(10):                    # interleaved as on the wire: 100 ms at a time
        for s, sym in enumerate(symbols):
            for k in range(rates[s] // 10 + (rng.random() < (rates[s] % 10) / 10)):
                E = base + tick * 100 + k
                b.add_trade(E + 4, AggTrade(E, sym, 10**9 + sec * 100 + tick * 10 + k,
                                            100.0 + rng.random(), rng.random(), 1, 2, E - 1,
                                            rng.random() < .5), "ws", 1)
            E = base + tick * 100
            px = 100.0 + rng.random()
            b.add_book_row({"recv_ts_ms": E + 3, "event_ts_ms": E, "transact_ts_ms": E - 1,
                            "symbol": sym, "first_update_id": 10**10 + tick,
                            "final_update_id": 10**10 + tick + 5,
                            "prev_final_update_id": 10**10 + tick - 1,
                            "bid_px": [px - i * .01 for i in range(10)],
                            "bid_qty": [rng.random() for _ in range(10)],
                            "ask_px": [px + .01 + i * .01 for i in range(10)],
                            "ask_qty": [rng.random() for _ in range(10)],
                            "gap": False, "conn_id": 2})
    return b.swap()


def _stats(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {xs[len(xs) // 2] * 1e3:7.2f} ms  best {xs[0] * 1e3:7.2f} ms"


def bench_build(old_buffers, symbols: list[str], rounds: int) -> None:
    from ofi_cvd_harvest.capture import buffers as new_buffers
    times: dict[str, list[float]] = {"old": [], "new": []}
    rows = 0
    for r in range(rounds):
        for label, mod in (("old", old_buffers), ("new", new_buffers)):
            sw = fill(mod, symbols, r, r)
            t = time.process_time()
            spans = mod.build_spans(sw)
            times[label].append(time.process_time() - t)
            rows = sum(s.rows for s in spans)
            del spans, sw
    print(f"build_spans, one hand-over of {len(symbols)} symbols ({rows} rows):")
    for label, xs in times.items():
        print(f"  {label}: {_stats(xs)}   {sorted(xs)[len(xs) // 2] / rows * 1e6:.2f} µs/row")


class _Healer:
    gaps_detected: dict = {}

    def open_gaps(self, symbol=None) -> int:
        return 0


class _Writer:
    files_written = 0
    files: deque = deque(maxlen=1000)


class _FakeCapture:
    """What StatusReporter reads of a Capture."""

    def __init__(self, states: dict):
        self.states = states
        self.healer = _Healer()
        self.writer = _Writer()
        self.storage = type("S", (), {"local": False})()
        self.ops = type("O", (), {"counts": {}})()
        self.log = logging.getLogger("bench_build")
        self.log.addHandler(logging.NullHandler())
        self.log.propagate = False


def bench_ticker(old_status, old_exporter, symbols: list[str], rounds: int, interval: float,
                 seconds: int) -> None:
    from ofi_cvd_harvest.capture import exporter as new_exporter
    from ofi_cvd_harvest.capture import status as new_status
    from ofi_cvd_harvest.capture.symstate import SymState
    from ofi_cvd_harvest.monitoring import metrics
    metrics.init_capture(symbols, ["ws"], [])
    times: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(rounds):
        for label, st_mod, ex_mod in (("old", old_status, old_exporter),
                                      ("new", new_status, new_exporter)):
            rng = random.Random(r)
            states = {s: SymState(1000, s) for s in symbols}
            cap = _FakeCapture(states)
            now0 = time.time()
            rep = st_mod.StatusReporter(cap, interval, now0)
            ex = ex_mod.Exporter(None, cap.log, None, {"ws": 0}, states, int(now0 * 1000))
            spent = 0.0
            for sec in range(1, seconds + 1):
                now = now0 + sec
                for s, (sym, state) in enumerate(states.items()):   # the second's traffic
                    n = rng.randint(1, 15)
                    state.lat.extend(rng.randint(2, 40) for _ in range(n))
                    state.ws_count += n
                    state.book_rows += 10
                    state.last_event_ms = state.last_trade_recv = int(now * 1000) - 5
                    state.last_book_recv = int(now * 1000) - 3
                t = time.process_time()
                rep.tick(now)
                ex.update(int(now * 1000))
                spent += time.process_time() - t
            times[label].append(spent / seconds)
    print(f"ticker (status tick + exporter update), per second with {len(symbols)} symbols "
          f"(a status line every {interval:.0f} s):")
    for label, xs in times.items():
        print(f"  {label}: {_stats(xs)}")


def bench_write(old_fs, symbols: list[str], rounds: int) -> None:
    import os
    from ofi_cvd_harvest.capture import buffers
    from ofi_cvd_harvest.storage import fs as new_fs
    spans = buffers.build_spans(fill(buffers, symbols, 0, 0))
    tables = [(f"raw/{s.stream}/symbol={s.symbol}/f.parquet", s.slice()) for s in spans]
    times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = (("old", old_fs), ("new", new_fs))
            for label, mod in (order if r % 2 == 0 else order[::-1]):   # no drift favours one
                st = mod.Storage(f"{tmp}/{label}{r}")
                t = os.times()
                for rel, table in tables:
                    st.write_parquet(rel, table)
                u = os.times()
                times[label].append(((u.user - t.user) / len(tables),
                                     (u.system - t.system) / len(tables)))
    print(f"write_parquet, {len(tables)} files (a rotation of {len(symbols)} symbols), CPU per "
          "file (user + system, system = the write/fsync/rename calls):")
    for label, xs in times.items():
        tot = sorted(u + s for u, s in xs)
        us, ss = sorted(u for u, _ in xs), sorted(s for _, s in xs)
        print(f"  {label}: median {tot[len(tot) // 2] * 1e6:6.0f} µs (user "
              f"{us[len(us) // 2] * 1e6:4.0f}, system {ss[len(ss) // 2] * 1e6:4.0f})  "
              f"best {tot[0] * 1e6:6.0f} µs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--base", default=BASE, help="git revision of the 'old' code")
    ap.add_argument("--status-interval", type=float, default=60.0)
    ap.add_argument("--ticker-seconds", type=int, default=120)
    ap.add_argument("--only", choices=("build", "ticker", "write"), default=None)
    args = ap.parse_args()
    symbols = ["BTCUSDT", "ETHUSDT"] + [f"S{i:03d}USDT" for i in range(args.symbols - 2)]
    print(f"old = {args.base}, new = the working tree; CPU time (process_time), "
          f"{args.rounds} rounds interleaved")
    if args.only in (None, "build"):
        bench_build(old_module(args.base, "ofi_cvd_harvest/capture/buffers.py", "buffers"),
                    symbols, args.rounds)
    if args.only in (None, "ticker"):
        bench_ticker(old_module(args.base, "ofi_cvd_harvest/capture/status.py", "status"),
                     old_module(args.base, "ofi_cvd_harvest/capture/exporter.py", "exporter"),
                     symbols, max(3, args.rounds // 3), args.status_interval,
                     args.ticker_seconds)
    if args.only in (None, "write"):
        bench_write(old_module(args.base, "ofi_cvd_harvest/storage/fs.py", "fs"), symbols,
                    max(4, args.rounds // 2))


if __name__ == "__main__":
    main()
