"""Quick start (``make demo``): embedded simulator → short capture → derivation → summary.

Shows a new user the whole product on one machine with no internet: where the data landed,
rows per table, and that every trade the simulator generated in the window was captured. Each
run starts from empty directories (:mod:`.demo_dirs`): its simulator is a new exchange.
Derivation goes through the DQ gate like every writer of ``data/ofi_cvd/`` (docs/dq.md,
"The publish rule"): a partition that fails a blocking check is quarantined, and the DQ report
(the precheck's, :func:`ofi_cvd_harvest.precheck.gated_report`) still shows its figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

from .settings import check_value, load_settings
from .storage.fs import Storage


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    p.add_argument("--run-seconds", type=float, default=120.0)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--artifacts-dir", default="artifacts")
    p.add_argument("--seed", type=int, default=7)


def _ground_truth_ids(sim, symbol: str, lo: int, hi: int) -> set[int]:
    ids = {int(t["agg_trade_id"]) for t in sim.ground_truth(symbol)}
    return {i for i in ids if lo <= i <= hi}


def _report(settings, outcomes) -> bool:
    """Print and write the DQ report over the gated partitions, wherever the gate left them
    (``validate`` reads only the published ones); True when it passes."""
    from .dq.report import summary_text, write_report
    from .dq.source import UnusableInput
    from .precheck import gated_report, report_dir

    if not outcomes:
        print("no partition was derived: nothing to report")
        return False
    try:
        report = gated_report(settings, outcomes)
    except UnusableInput as exc:
        print(f"unusable input: {exc}")
        return False
    path = write_report(report, report_dir(settings))
    print(summary_text(report))
    print(f"report: {path}")
    return report["overall"]["verdict"] == "PASS"


def run(args: argparse.Namespace) -> int:
    check_value("--run-seconds", args.run_seconds, "run_hours")   # finite and > 0, exit 2
    from . import demo_dirs

    data_dir, artifacts_dir = Path(args.data_dir), Path(args.artifacts_dir)
    try:
        removed = demo_dirs.claim(data_dir, artifacts_dir)
    except demo_dirs.DirsInUse as exc:
        print(f"ofi-cvd-harvest demo: {exc}", file=sys.stderr)
        return 2
    if removed:
        print(removed)
    try:
        return _run(args, data_dir, artifacts_dir)
    finally:
        demo_dirs.mark(data_dir, artifacts_dir)   # the next run may remove all of this


def _run(args: argparse.Namespace, data_dir: Path, artifacts_dir: Path) -> int:
    from .capture.runner import run_capture_sync
    from .sim.server import SimulatorThread
    from .precheck import gate_captured

    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    with SimulatorThread(list(symbols), seed=args.seed) as sim:
        settings = load_settings(
            symbols=symbols, data_dir=data_dir, artifacts_dir=artifacts_dir,
            ws_base_url=sim.ws_url, rest_base_url=sim.rest_url, prometheus_port=0,
        )
        print(f"simulator: {sim.ws_url} (WebSocket) / {sim.rest_url} (REST)")
        print(f"capturing {', '.join(symbols)} for {args.run_seconds:.0f} s "
              f"into {settings.data_dir.resolve()} ...", flush=True)
        t0 = time.time()
        summary = run_capture_sync(settings, run_seconds=args.run_seconds)
        print(f"capture finished in {time.time() - t0:.0f} s")

        storage = Storage(settings.data_dir)
        print("\nper symbol: raw rows, ground truth check; per partition: derived rows and "
              "the DQ gate's verdict")
        ok = True
        outcomes = []
        for sym in symbols:
            files = storage.list_files("raw")
            trades = [f for f in files if f"symbol={sym}/stream=agg_trade/" in f]
            books = [f for f in files if f"symbol={sym}/stream=book/" in f]
            t = pl.from_arrow(storage.read_parquet(trades)) if trades else pl.DataFrame()
            b_rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in books)
            if t.height:
                lo, hi = int(t["agg_trade_id"].min()), int(t["agg_trade_id"].max())
                got = set(t["agg_trade_id"].to_list())
                truth = _ground_truth_ids(sim, sym, lo, hi)
                missing = len(truth - got)
                ok &= missing == 0
                print(f"  {sym}: agg_trade {t.height} rows ({t['agg_trade_id'].n_unique()} unique ids "
                      f"{lo}..{hi}), simulator generated {len(truth)} in that range, missing {missing}; "
                      f"book {b_rows} rows")
            else:
                ok = False
                print(f"  {sym}: no trades captured")
            dates = sorted({p.split("date=")[1].split("/")[0] for p in trades})
            outcomes += gate_captured(settings, {sym: dates}, run="ofi-cvd-harvest demo")
    print("\ndata-quality report (DoD) on what was captured:", flush=True)
    dq_ok = _report(settings, outcomes) and all(o.published for o in outcomes)
    print(f"\nraw data:     {settings.raw_dir.resolve()}")
    print(f"derived data: {settings.derived_dir.resolve()} (published: passed the gate)")
    if any(not o.published for o in outcomes):
        print(f"quarantined:  {(settings.data_dir / 'quarantine').resolve()} (failed the gate; "
              "dq.json says why)")
    print(f"run logs:     {(settings.artifacts_dir / 'run_logs').resolve()}")
    print(f"checkpoint:   {(settings.artifacts_dir / 'state' / 'checkpoint.json').resolve()}")
    print("next: `make ui` for the Dagster UI; `ofi-cvd-harvest validate --base-dir data/ofi_cvd "
          "--output-dir artifacts/dq_reports` reports on the published partitions; "
          "`ofi-cvd-harvest derive` re-derives through the gate")
    print(f"capture: {summary.messages} messages, {summary.files_written} files, "
          f"{summary.reconnects} reconnects, {summary.write_errors} write errors, "
          f"stopped: {summary.stop_reason}")
    print(f"DQ gate: {'PASS' if dq_ok else 'FAIL (see the gate lines and the report above)'}")
    print("\nDEMO " + ("OK: no trade missing" if ok else "FAILED: see above"))
    return 0 if ok else 1
