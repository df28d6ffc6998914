"""Benchmark (issues 8.2, 15): LiveCvd alone -- µs per ``add`` and memory over time with N symbols.

Feeds ``--symbols`` symbols of synthetic trades (Poisson arrivals at ``--rate`` trades/s per
symbol, default 1-15 as the simulator's universe; Pareto sizes; random side; a random-walk
price) into
:class:`LiveCvd` as the capture does: one ``add`` per trade with Python ints/floats/bools (and
the price, when the implementation takes it), ``update_gauges()`` once a simulated second. Simulated time runs ``--speed`` times faster than the wall clock (the feeding itself is
as fast as it goes; the pace is kept by sleeping between simulated seconds), so a long horizon
can be reached in a few minutes. Every ``--every`` simulated seconds it prints the process RSS,
the rows and bytes LiveCvd holds, and the µs per ``add`` over that stretch.

Per-trade figures: first, for each ``--stage-rows`` (1 = the per-row path; 1024 = the default
staging, large chunks in numpy, issue 15 / docs/performance.md §7), ``add`` plus the engine
work it causes (the flushes at ``update_gauges``, once a simulated second, included) over
``--isolated-rows`` trades, best of 3, nothing else running; the paced run then reports the µs
per ``add`` (wall, staged trades flushed by ``update_gauges`` outside that figure).

    .venv/bin/python benchmarks/bench_live_cvd_memory.py [--symbols 300] [--sim-minutes 10] [--speed 10]
    .venv/bin/python benchmarks/bench_live_cvd_memory.py --symbols 2 --rate 2000,4000 --sim-minutes 0
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
T0 = 1_750_000_000_000


def load_impl(path: str | None):
    """The LiveCvd class (``--impl FILE``: another version of live_cvd.py, for before/after)."""
    if not path:
        from ofi_cvd_harvest.monitoring import live_cvd
        return live_cvd.LiveCvd
    spec = importlib.util.spec_from_file_location("ofi_cvd_harvest.monitoring._bench_impl", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.LiveCvd


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Market:
    """One simulated second of trades at a time for all symbols, in event-time order."""

    def __init__(self, n: int, seed: int, rate: tuple[float, float] = (1.0, 15.0)) -> None:
        self.rng = np.random.default_rng(seed)
        self.syms = np.array([f"S{i:03d}USDT" for i in range(n)], dtype=object)
        self.rate = self.rng.uniform(rate[0], rate[1], n)
        self.px = np.full(n, 100.0)

    def second(self, sec: int) -> tuple[list, list, list, list, list]:
        rng = self.rng
        counts = rng.poisson(self.rate)
        total = int(counts.sum())
        sym = np.repeat(np.arange(len(counts)), counts)
        ts = T0 + sec * 1000 + rng.integers(0, 1000, total)
        order = np.argsort(ts, kind="stable")
        qty = np.round(0.001 * (1 + rng.pareto(1.5, total)), 3)
        ibm = rng.random(total) < 0.5
        self.px += rng.normal(0.0, 0.05, len(self.px))          # each symbol's random walk
        price = (self.px[sym] + rng.normal(0.0, 0.01, total))[order]
        return (self.syms[sym[order]].tolist(), ts[order].tolist(), qty[order].tolist(),
                ibm[order].tolist(), price.tolist())


def _adder(live):
    """``add`` taking the price too (the old implementation takes four arguments)."""
    import inspect
    if len(inspect.signature(live.add).parameters) >= 5:
        return live.add
    return lambda a, b, c, d, e, add=live.add: add(a, b, c, d)


def isolated_add_us(LiveCvd, settings, n: int, rows: int, rate: tuple[float, float],
                    repeat: int = 3, **kw) -> float:
    """CPU-µs per trade (thread CPU time, so other load on a shared machine does not count;
    best of ``repeat``): ``add`` for every trade plus the engine work it
    causes, with ``update_gauges`` once a simulated second (it recomputes -- and, for the
    staging monitor, flushes -- every ``recompute_sec`` of the simulated clock), so staged
    trades are paid for inside the figure. ``kw``: constructor arguments (e.g. ``stage_rows=1``:
    the per-row path)."""
    mk = Market(n, seed=1, rate=rate)
    batches, have, sec = [], 0, 0
    while have < rows:
        b = mk.second(sec)
        batches.append(b)
        have += len(b[0])
        sec += 1
    best = float("inf")
    for _ in range(repeat):
        sim = [0.0]
        try:
            live = LiveCvd(settings, clock=lambda: sim[0], **kw)
        except TypeError:          # an implementation without these arguments
            live = LiveCvd(settings, clock=lambda: sim[0])
        add = _adder(live)
        gauges = live.update_gauges
        t = time.thread_time()
        for i, (syms, ts, qty, ibm, px) in enumerate(batches):
            for a, b, c, d, e in zip(syms, ts, qty, ibm, px):
                add(a, b, c, d, e)
            sim[0] = i + 1.0
            gauges()
        live.update_gauges(force=True)
        el = time.thread_time() - t
        t = time.thread_time()
        for syms, ts, qty, ibm, px in batches:   # the loop itself, to subtract
            for a, b, c, d, e in zip(syms, ts, qty, ibm, px):
                pass
        el -= time.thread_time() - t
        best = min(best, el / have * 1e6)
        del live
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--sim-minutes", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=10.0, help="simulated s per wall s")
    ap.add_argument("--every", type=float, default=60.0, help="report every N simulated s")
    ap.add_argument("--isolated-rows", type=int, default=500_000)
    ap.add_argument("--no-isolated", action="store_true")
    ap.add_argument("--impl", help="path of another live_cvd.py to measure (before/after)")
    ap.add_argument("--rate", default="1,15", help="trades/s per symbol: uniform LO,HI")
    ap.add_argument("--stage-rows", default="1,1024",
                    help="isolated figure per staging size (1 = the per-row path)")
    args = ap.parse_args()
    rate = tuple(float(v) for v in args.rate.split(","))

    from ofi_cvd_harvest.settings import Settings
    LiveCvd = load_impl(args.impl)
    s = Settings()
    print(f"{args.symbols} symbols, {args.sim_minutes:g} simulated min at {args.speed:g}x; "
          f"impl {args.impl or 'ofi_cvd_harvest.monitoring.live_cvd'}; load "
          f"{os.getloadavg()[0]:.2f}; RSS at start {rss_mb():.0f} MB", flush=True)
    if not args.no_isolated:
        for n_stage in (int(v) for v in args.stage_rows.split(",")):
            us = isolated_add_us(LiveCvd, s, args.symbols, args.isolated_rows, rate,
                                 stage_rows=n_stage)
            print(f"add + engine, stage_rows={n_stage}: {us:.3f} CPU-µs per trade (best of 3 x "
                  f"{args.isolated_rows:,} trades at {args.rate}/s per symbol, gauges each "
                  f"simulated s; load {os.getloadavg()[0]:.2f})", flush=True)

    sim_now = [0.0]
    live = LiveCvd(s, clock=lambda: sim_now[0])
    mk = Market(args.symbols, seed=2, rate=rate)
    held = getattr(live, "rows_held", None)
    nbytes = getattr(live, "bytes_held", None)
    add = _adder(live)
    add_s = 0.0
    n_add = 0
    total = 0
    wall0 = time.perf_counter()
    rss0 = rss_mb()
    rss_first = None
    for sec in range(int(args.sim_minutes * 60)):
        syms, ts, qty, ibm, px = mk.second(sec)
        t = time.perf_counter()
        for a, b, c, d, e in zip(syms, ts, qty, ibm, px):
            add(a, b, c, d, e)
        add_s += time.perf_counter() - t
        n_add += len(syms)
        total += len(syms)
        sim_now[0] = sec + 1.0
        live.update_gauges()
        ahead = wall0 + (sec + 1) / args.speed - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        if (sec + 1) % int(args.every) == 0:
            r = rss_mb()
            rss_first = r if rss_first is None else rss_first
            print(f"  sim t={sec + 1:5d}s  RSS {r:6.0f} MB (+{r - rss0:5.0f})  trades {total:>10,}"
                  + (f"  held {held():>9,} rows" if held else "")
                  + (f"  {nbytes() / 2**20:6.1f} MB columns" if nbytes else "")
                  + f"  add {add_s / max(n_add, 1) * 1e6:.3f} µs (wall, incl. loop)"
                  + f"  gauges {len(live.stats):4d}  wall {time.perf_counter() - wall0:6.1f} s",
                  flush=True)
            add_s, n_add = 0.0, 0
    live.join(60)
    if rss_first is not None:
        print(f"done: RSS first report {rss_first:.0f} MB, last {rss_mb():.0f} MB; load "
              f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
