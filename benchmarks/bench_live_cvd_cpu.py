"""Benchmark (issue 15): LiveCvd's CPU per trade at the universe's rates, old vs new side by side,
from a cold start to a warm steady state.

Feeds ``--symbols`` symbols (Poisson arrivals, ``--rate`` trades/s per symbol, default 1-15 as the
simulator's universe: every symbol "quiet", i.e. on the per-row path) for ``--sim-minutes``
simulated minutes through two ``LiveCvd`` implementations in one process: each simulated second's
trades are generated once and fed to the baseline, then to the current code (the order rotates
every second; ``--quiet-rows 1,64`` adds the current code with quiet symbols staged), each
followed by ``update_gauges()`` (its ``recompute_sec`` of 10 s on the simulated
clock). Only the ``add`` loop and the gauge call are timed, in **thread CPU time** (other load on a
shared machine does not count); the empty loop over the same trades is subtracted. It prints
CPU-µs per trade per simulated minute for both, so the cost during warm-up (MAD window filling,
divergence window of 15 min not yet ready) and at steady state can be read off; ``--cold-from M``
adds a cold instance of the current code from minute M, so warm and cold state are compared in
the same minutes (the "all" line of a late starter covers only its own minutes).

The baseline is a git revision of the whole ``ofi_cvd_harvest`` package (``--baseline REV``,
default ``e3a82ee``: before this round of per-row work), extracted to a temporary directory and
imported under another package name, its ``settings`` and ``monitoring.metrics`` modules aliased
to the current ones (one Prometheus registry); or ``--baseline FILE.py``, another
``live_cvd.py`` loaded as ``bench_live_cvd_memory.load_impl`` does (on the current signals code).

    .venv/bin/python benchmarks/bench_live_cvd_cpu.py [--symbols 300] [--sim-minutes 12]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))

from bench_live_cvd_memory import Market, load_impl  # noqa: E402

BASE_PKG = "_bench_base_ofi"


def load_baseline(spec: str):
    """``LiveCvd`` of a git revision (whole package) or of one file (``load_impl``)."""
    if spec.endswith(".py"):
        return load_impl(spec)
    tmp = Path(tempfile.mkdtemp(prefix="bench_live_cvd_base_"))
    arch = subprocess.run(["git", "-C", str(ROOT), "archive", spec, "ofi_cvd_harvest"],
                          check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=arch, check=True)
    import ofi_cvd_harvest.monitoring.metrics as metrics
    import ofi_cvd_harvest.settings as settings
    pkg = tmp / "ofi_cvd_harvest"
    sp = importlib.util.spec_from_file_location(BASE_PKG, pkg / "__init__.py",
                                                submodule_search_locations=[str(pkg)])
    mod = importlib.util.module_from_spec(sp)
    sys.modules[BASE_PKG] = mod
    sp.loader.exec_module(mod)
    sys.modules[f"{BASE_PKG}.settings"] = settings          # same Settings class
    sys.modules[f"{BASE_PKG}.monitoring.metrics"] = metrics  # one Prometheus registry
    return importlib.import_module(f"{BASE_PKG}.monitoring.live_cvd").LiveCvd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--sim-minutes", type=float, default=12.0)
    ap.add_argument("--rate", default="1,15", help="trades/s per symbol: uniform LO,HI")
    ap.add_argument("--baseline", default="e3a82ee", help="git revision, or a live_cvd.py file")
    ap.add_argument("--every", type=int, default=60, help="report every N simulated s")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--quiet-rows", default="1",
                    help="comma-separated LiveCvd(quiet_rows=...) of the current code (1 = default)")
    ap.add_argument("--cold-from", type=float, default=None,
                    help="simulated minute at which a second, cold instance of the current code "
                         "starts on the same flow: warm vs cold side by side from then on")
    args = ap.parse_args()
    rate = tuple(float(v) for v in args.rate.split(","))

    from ofi_cvd_harvest.monitoring.live_cvd import LiveCvd as New
    from ofi_cvd_harvest.settings import Settings
    Old = load_baseline(args.baseline)
    s = Settings()
    sim = [0.0]
    impls = {"old": Old(s, clock=lambda: sim[0])}
    for q in (int(v) for v in args.quiet_rows.split(",")):
        impls["new" if q == 1 else f"new q={q}"] = New(s, clock=lambda: sim[0], quiet_rows=q)
    if args.cold_from is not None:
        impls["new cold"] = None                 # created at --cold-from (counted from then)
    names = list(impls)
    ticks: dict[str, list] = {k: [] for k in impls}     # CPU s of each recomputing tick
    cpu = {k: 0.0 for k in impls}
    total = {k: 0.0 for k in impls}
    fed = {k: 0 for k in impls}            # trades fed (per interval), trades fed in all
    fed_all = {k: 0 for k in impls}
    mk = Market(args.symbols, seed=args.seed, rate=rate)
    print(f"{args.symbols} symbols at {args.rate} trades/s each, {args.sim_minutes:g} simulated "
          f"min; baseline {args.baseline} vs working tree; load {os.getloadavg()[0]:.2f}",
          flush=True)
    print(f"{'sim min':>8} {'trades':>10}" + "".join(f" {k + ' µs/trade':>17}" for k in names)
          + "".join(f" {k + '/old':>12}" for k in names[1:]))
    n_int = 0
    n_all = 0
    secs = int(args.sim_minutes * 60)
    for sec in range(secs):
        batch = mk.second(sec)
        syms, ts, qty, ibm, px = batch
        t = time.thread_time()
        for a, b, c, d, e in zip(syms, ts, qty, ibm, px):
            pass
        empty = time.thread_time() - t
        sim[0] = sec + 1.0
        order = names[sec % len(names):] + names[:sec % len(names)]
        if args.cold_from is not None and sec == int(args.cold_from * 60):
            impls["new cold"] = New(s, clock=lambda: sim[0])
        for k in order:
            if impls[k] is None:
                continue
            add = impls[k].add
            gauges = impls[k].update_gauges
            t = time.thread_time()
            for a, b, c, d, e in zip(syms, ts, qty, ibm, px):
                add(a, b, c, d, e)
            g = time.thread_time()
            gauges()
            if getattr(impls[k], "_last_compute", None) == sim[0]:   # it recomputed
                ticks[k].append(time.thread_time() - g)
            el = time.thread_time() - t - empty
            cpu[k] += el
            total[k] += el
            fed[k] += len(syms)
            fed_all[k] += len(syms)
        n_int += len(syms)
        n_all += len(syms)
        if (sec + 1) % args.every == 0 or sec + 1 == secs:
            us = [cpu[k] / fed[k] * 1e6 if fed[k] else math.nan for k in names]
            print(f"{(sec + 1) / 60:8.1f} {n_int:>10,}" + "".join(f" {u:17.3f}" for u in us)
                  + "".join(f" {u / us[0]:12.2f}" for u in us[1:]), flush=True)
            cpu = {k: 0.0 for k in impls}
            fed = {k: 0 for k in impls}
            n_int = 0
    us = [total[k] / fed_all[k] * 1e6 if fed_all[k] else math.nan for k in names]
    print(f"{'all':>8} {n_all:>10,}" + "".join(f" {u:17.3f}" for u in us)
          + "".join(f" {u / us[0]:12.2f}" for u in us[1:]))
    print("gauge ticks (CPU ms, median / max): " + ", ".join(
        f"{k} {statistics.median(ticks[k]) * 1e3:.1f} / {max(ticks[k]) * 1e3:.1f}"
        for k in names if ticks[k])
          + "; errors: " + ", ".join(f"{k} {impls[k].errors}" for k in names if impls[k])
          + f"; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
