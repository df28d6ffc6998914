"""Benchmark (issues 8.3, 14): many date x symbol derivations in parallel under Dagster.

Synthesises ``--partitions`` symbol-days (the ``bench_derive.py`` generator: ``--trades``
aggTrades and 864,000 depth10 rows per day, plus the previous day's warm-up tail), then derives
every partition through the DQ gate as Dagster runs (``dagster job execute``, one run per
partition as a backfill does), ``--concurrent`` runs at a time (dagster.yaml allows 2 derive
runs at once). Each run is one process running the derived multi-asset: compute the five tables
once, stage them, run the DoD checks on the staged tables, publish (run config
``publish_on_fail: true``, because synthetic days need not pass every check; the work is the
same and each run prints its verdict).

Figures before issue 14 (five assets, 4 partitions, 2 at a time): in-process executor 34-41 s /
2.5 GB peak total RSS; multiprocess executor with staging through the disk 83.5 s / 3.3 GB;
multiprocess before staging 148 s / 4.9 GB.

Prints wall time, the sum of CPU time and the peak total RSS of all run processes (sampled
every 0.2 s over the whole process trees), each run's gate verdict, and whether anything was
left staged.

    .venv/bin/python benchmarks/bench_derive_parallel.py [--partitions 4] [--concurrent 2]
        [--trades 2000000]

This file is also the Dagster code location of those runs (``defs`` below).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from ofi_cvd_harvest.orchestration.assets import DERIVED_ORDER, MULTI_ASSET_NAME, derived_assets
from ofi_cvd_harvest.orchestration.resources import RESOURCE_KEY, HarvestSettings

HERE = Path(__file__).resolve()
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT",
           "LTCUSDT")

_sel = dg.AssetSelection.assets(*DERIVED_ORDER)
defs = dg.Definitions(
    assets=list(derived_assets),
    jobs=[dg.define_asset_job("derive", selection=_sel, executor_def=dg.in_process_executor)],
    resources={RESOURCE_KEY: HarvestSettings()},
)


def synthesise(root: str, symbols: list[str], trades: int, date: str) -> None:
    from ofi_cvd_harvest.signals import synthetic as sy
    from ofi_cvd_harvest.storage.fs import Storage
    from ofi_cvd_harvest.storage.layout import day_bounds_ms

    st = Storage(root)
    d0, d1 = day_bounds_ms(date)
    hour = 3_600_000
    for k, sym in enumerate(symbols):
        t = d0 - (6 * 3600 + 300) * 1000
        next_id = 1
        while t < d1:
            end = min(t + hour, d1)
            n = int(trades * (end - t) / 86_400_000)
            seed = t // hour + 1000 * k
            tr = sy.synth_trades(t, end, n, seed=seed, first_id=next_id, symbol=sym)
            sy.write_raw(st, sym, "agg_trade", tr)
            sy.write_raw(st, sym, "book", sy.synth_book(t, end, seed=seed, first_id=10 * next_id,
                                                        symbol=sym))
            next_id += n
            t = end


def _tree_rss(procs) -> tuple[int, int]:
    import psutil
    rss = n = 0
    for p in procs:
        try:
            pp = psutil.Process(p.pid)
            for q in [pp, *pp.children(recursive=True)]:
                try:
                    rss += q.memory_info().rss
                    n += 1
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
    return rss, n


def run_all(keys: list[str], concurrent: int, env: dict) -> dict:
    job = "derive"
    cfg = {"ops": {MULTI_ASSET_NAME: {"config": {"publish_on_fail": True}}}}
    cfg_path = Path(env["DAGSTER_HOME"]) / f"{job}.json"
    cfg_path.write_text(json.dumps(cfg))
    todo = list(keys)
    running: list[tuple[subprocess.Popen, str, float]] = []
    done = []
    peak = peak_n = 0
    t0 = time.perf_counter()
    import resource
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    while todo or running:
        while todo and len(running) < concurrent:
            key = todo.pop(0)
            cmd = [sys.executable, "-m", "dagster", "job", "execute", "-f", str(HERE), "-a", "defs",
                   "-j", job, "--tags", json.dumps({"dagster/partition": key}),
                   "-c", str(cfg_path)]
            running.append((subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True), key,
                            time.perf_counter()))
        rss, n = _tree_rss([p for p, _, _ in running])
        if rss > peak:
            peak, peak_n = rss, n
        time.sleep(0.2)
        for item in list(running):
            p, key, ts = item
            if p.poll() is not None:
                out = p.stdout.read()
                running.remove(item)
                verdict = next((line.split(f"gate {key}: ", 1)[1]
                                for line in out.splitlines() if f"gate {key}: " in line), "?")
                done.append((key, p.returncode, time.perf_counter() - ts, verdict))
                if p.returncode != 0 or "RUN_SUCCESS" not in out:
                    tail = "\n".join(out.splitlines()[-25:])
                    raise RuntimeError(f"run {key} failed ({p.returncode}):\n{tail}")
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20,
            "peak_procs": peak_n, "cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
            "runs": [(k, round(t, 1)) for k, _, t, _ in done],
            "verdicts": {k: v for k, _, _, v in done}, "load": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--concurrent", type=int, default=2, help="runs at a time")
    ap.add_argument("--trades", type=int, default=2_000_000, help="aggTrades per day")
    ap.add_argument("--date", default="2025-01-15")
    ap.add_argument("--data-dir", help="reuse/keep data here")
    args = ap.parse_args()
    syms = list(SYMBOLS[:args.partitions])
    root = args.data_dir or tempfile.mkdtemp(prefix="bench_derive_par_")
    if not os.path.isdir(os.path.join(root, "raw")):
        t0 = time.perf_counter()
        synthesise(root, syms, args.trades, args.date)
        print(f"synthesised {len(syms)} symbol-days ({args.trades:,} trades + 864,000 book rows "
              f"each, plus warm-up) in {time.perf_counter() - t0:.0f} s under {root}")
    home = tempfile.mkdtemp(prefix="bench_dagster_home_")
    env = dict(os.environ, DAGSTER_HOME=home, DATA_DIR=root, SYMBOLS=",".join(syms),
               PARTITIONS_START_DATE="2025-01-01")
    # create the instance's SQLite storage once (concurrent first runs would race on it) and
    # its symbol partitions (dynamic: docs/dagster.md "Partitions"), as definitions.py does
    subprocess.run([sys.executable, "-c", "from ofi_cvd_harvest.orchestration.partitions import "
                    "register_configured_symbols as r; r()"], env=env, check=True)
    keys = [f"{args.date}|{s}" for s in syms]
    print(f"{len(keys)} partitions, {args.concurrent} runs at a time; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    r = run_all(keys, args.concurrent, env)
    staged = Path(root, ".staging")
    left = sorted(str(p.relative_to(staged)) for p in staged.rglob("*.parquet")) if staged.exists() else []
    print(f"gate (one process per run): wall {r['wall_s']:.1f} s for {len(keys)} partitions, CPU "
          f"{r['cpu_s']:.0f} s, peak total RSS {r['peak_rss_mb']:,.0f} MB over "
          f"{r['peak_procs']} processes; per run {r['runs']}; load {r['load']:.2f}; "
          f"left staged: {left or 'nothing'}", flush=True)
    for key, verdict in r["verdicts"].items():
        print(f"  {key}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
